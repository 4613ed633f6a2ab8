//go:build !confit_no_zookeeper

package main

// The ZooKeeper backend; build with -tags confit_no_zookeeper to leave it out.
import _ "github.com/confit-dev/confit/backends/zookeeper"
