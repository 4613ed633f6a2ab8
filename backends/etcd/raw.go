package etcd

import clientv3 "go.etcd.io/etcd/client/v3"

// Raw returns the client's etcd connection, for packages that need more of
// etcd than a Backend offers (register mode: leases and transactions). The
// connection is built from backends.Config by New (nodes, TLS, auth) and
// stays owned by c: Close closes it, callers must not.
func (c *Client) Raw() *clientv3.Client { return c.cli }
