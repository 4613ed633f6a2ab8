package backends

import "strings"

// Service discovery is part of the key space, so that the engine, its
// shared watches and dependency tracking, and the templates need not know
// which store serves it. A backend with service health (Consul) serves these
// virtual prefixes; every key starting with "/@" is reserved for them and is
// never made relative to a resource's prefix.
const (
	// ServicePrefix + "/<name>/<instance>" holds the JSON of a
	// ServiceInstance for each instance whose health checks pass.
	ServicePrefix = "/@service"
	// ServiceAnyPrefix + "/<name>/<instance>" holds every instance,
	// whatever its health, with Status set.
	ServiceAnyPrefix = "/@service-any"
	// ServicesPrefix + "/<name>" holds the JSON list of the service's tags,
	// for every service in the catalog.
	ServicesPrefix = "/@services"
)

// ServiceInstance is one instance of a service, as stored under
// ServicePrefix and ServiceAnyPrefix (JSON, field names as here).
type ServiceInstance struct {
	// ID is the service instance ID.
	ID string
	// Name is the service name.
	Name string
	// Address is the service address, or the node's address when the
	// service registered none.
	Address string
	// Port is the service port.
	Port int
	// Tags are the service tags, sorted.
	Tags []string
	// Meta is the service metadata.
	Meta map[string]string
	// Node is the name of the node the instance runs on.
	Node string
	// Status is the aggregated health of the instance's checks: "passing",
	// "warning", "critical" or "maintenance".
	Status string
}

// IsVirtual reports whether key belongs to the reserved "/@" key space of
// service discovery.
func IsVirtual(key string) bool {
	return strings.HasPrefix(key, "/@")
}
