// Package register is confit's register mode: each registration announces
// one service instance in a store while a local health check passes, and
// withdraws it when the check fails or confit stops.
//
// A registration (a conf.d [register] table, see FromTable, or the confit
// register flags) names what to announce (an etcd key and value; a Consul
// service, ID, address, port, tags and meta) and how to check it: an http
// GET (2xx or the given status), a tcp connect, or a command run without a
// shell (exit 0), every Interval with a Timeout. Rise consecutive passes
// mark it up, Fall consecutive failures down; it may come up at most
// FlapLimit times per FlapWindow (going down is never delayed).
//
// Stores:
//
//   - etcd: one lease per process and store (the shortest TTL of its
//     registrations), kept alive by the client (TTL/3). Up puts the key
//     with the lease in a transaction that succeeds only if the key is
//     missing or carries a lease of this process: another owner's key is
//     an ErrConflict, never overwritten. Down deletes the key only if it
//     carries the lease. A lost lease (outage longer than the TTL, a store
//     that lost its data) is granted again and every up key put again. A
//     kill -9 of confit leaves the lease to expire: the keys disappear
//     within the TTL.
//   - Consul: the service is registered with the local agent with one TTL
//     check (initially critical unless the instance is already up,
//     deregister_critical_service_after DeregisterAfter); confit passes it
//     every TTL/3 while up and fails it while down, with a constant note;
//     an agent that forgot the service gets it registered again.
//
// A store error never deletes anything: it is retried with jittered
// backoff while the checks go on, and the desired state (not a remembered
// transition) is asserted again when the store answers. On shutdown Run
// marks every registration down, waits the longest Drain of those that
// were up, deregisters (etcd: revoke the lease; Consul: remove the
// service) and returns. While Run runs, Reload (confit's SIGHUP) replaces
// the registrations: one the store holds by the same etcd key or Consul
// ID keeps its state and is set again with its new settings; a removed one
// is retired as at shutdown; a new one starts down.
package register
