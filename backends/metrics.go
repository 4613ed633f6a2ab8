package backends

// MetricsReporter is implemented by backends that count things worth
// exporting (requests made, empty lists held back, ...). The daemon serves
// each counter on /metrics as confit_backend_<name>{backend="..."}.
// Names are snake_case and end in _total for counters.
type MetricsReporter interface {
	Metrics() map[string]uint64
}
