//go:build !confit_no_consul

package main

// The Consul backend; build with -tags confit_no_consul to leave it out.
import _ "github.com/confit-dev/confit/backends/consul"
