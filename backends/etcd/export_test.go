package etcd

// SetPageSize changes how many keys one range request returns, so tests can
// exercise pagination with few keys.
func SetPageSize(c *Client, n int64) { c.pageSize = n }

// Endpoints exposes endpoint resolution to tests.
var Endpoints = endpoints
