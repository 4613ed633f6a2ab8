//go:build confit_no_redis

package main

import "github.com/confit-dev/confit/backends"

func init() {
	backends.RegisterOmitted("redis", "built with -tags confit_no_redis")
}
