//go:build !confit_no_etcd

package main

// The etcd backend; build with -tags confit_no_etcd to leave it (and the
// gRPC stack it brings, ~5 MB of every run's RSS) out.
import _ "github.com/confit-dev/confit/backends/etcd"
