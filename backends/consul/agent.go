package consul

import "github.com/hashicorp/consul/api"

// API returns the client's Consul API client for reads and short requests
// (not blocking queries), for packages that need more of Consul than a
// Backend offers (register mode: the local agent's service and check
// endpoints). It is built from backends.Config by New (address, TLS, ACL
// token) and stays owned by c: Close releases its connections.
func (c *Client) API() *api.Client { return c.read }
