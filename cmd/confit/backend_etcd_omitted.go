//go:build confit_no_etcd

package main

import "github.com/confit-dev/confit/backends"

func init() {
	for _, name := range []string{"etcd", "etcdv3"} {
		backends.RegisterOmitted(name, "built with -tags confit_no_etcd")
	}
}
