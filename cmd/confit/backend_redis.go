//go:build !confit_no_redis

package main

// The Redis backend; build with -tags confit_no_redis to leave it (and the
// rueidis client) out.
import _ "github.com/confit-dev/confit/backends/redis"
