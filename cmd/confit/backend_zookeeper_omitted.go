//go:build confit_no_zookeeper

package main

import "github.com/confit-dev/confit/backends"

func init() {
	backends.RegisterOmitted("zookeeper", "built with -tags confit_no_zookeeper")
}
