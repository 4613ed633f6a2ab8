package etcd

import "time"

// SetPageSize changes how many keys one range request returns, so tests can
// exercise pagination with few keys.
func SetPageSize(c *Client, n int64) { c.pageSize = n }

// Endpoints exposes endpoint resolution to tests.
var Endpoints = endpoints

// SetJitter replaces how the client draws its reconnect-jitter waits.
func SetJitter(c *Client, f func(window time.Duration) time.Duration) { c.jitter = f }
