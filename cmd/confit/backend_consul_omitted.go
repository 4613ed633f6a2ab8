//go:build confit_no_consul

package main

import "github.com/confit-dev/confit/backends"

func init() {
	backends.RegisterOmitted("consul", "built with -tags confit_no_consul")
}
