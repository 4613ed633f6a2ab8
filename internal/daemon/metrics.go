package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/confit-dev/confit/backends"
)

// metrics are the daemon's counters, served in Prometheus' text format on
// /metrics. The standard library is enough for a handful of counters.
type metrics struct {
	renders   atomic.Uint64 // template executions
	writes    atomic.Uint64 // destinations replaced
	reloads   atomic.Uint64 // reload commands run
	failures  atomic.Uint64 // failed syncs (render, check, write or reload)
	rollbacks atomic.Uint64 // destinations restored after a failed reload
	storeGets atomic.Uint64 // snapshot reads from a backend
	updates   atomic.Uint64 // watch updates received

	// health is what is failing now, on /health.
	health *health

	// backends lists the backend clients whose own counters are exported
	// (backends.MetricsReporter); set by the daemon.
	backends func() map[string]backends.Backend
	// reporters are Config.Reporters.
	reporters []Reporter
}

// Reporter is something running beside the daemon in the same process
// (register mode, exec mode's child) whose state /metrics and /health show.
type Reporter interface {
	// WriteMetrics writes its metrics in Prometheus' text format.
	WriteMetrics(w io.Writer)
	// Health returns one line per thing it reports on, and how many of
	// them are failing (which makes /health answer 503).
	Health() (lines []string, failing int)
}

func newMetrics() *metrics {
	return &metrics{health: newHealth()}
}

func (m *metrics) serveHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	for _, c := range []struct {
		name, help string
		v          *atomic.Uint64
	}{
		{"confit_renders_total", "Template executions.", &m.renders},
		{"confit_writes_total", "Destination files replaced.", &m.writes},
		{"confit_reloads_total", "reload_cmd runs.", &m.reloads},
		{"confit_failures_total", "Failed syncs (render, check, write or reload).", &m.failures},
		{"confit_rollbacks_total", "Destinations restored after a failed reload_cmd.", &m.rollbacks},
		{"confit_store_gets_total", "Snapshot reads from backends.", &m.storeGets},
		{"confit_watch_updates_total", "Watch updates received from backends.", &m.updates},
	} {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", c.name, c.help, c.name, c.name, c.v.Load())
	}
	if m.backends != nil {
		writeBackendMetrics(w, m.backends())
	}
	for _, r := range m.reporters {
		r.WriteMetrics(w)
	}
	fmt.Fprintf(w, "# HELP confit_unhealthy Things failing now (backend watches, resources).\n# TYPE confit_unhealthy gauge\nconfit_unhealthy %d\n", m.health.count())
}

// serveHealth answers /health: the daemon's failures and each reporter's
// lines (register mode, exec mode's child).
func (m *metrics) serveHealth(w http.ResponseWriter, r *http.Request) {
	var extra []string
	failing := 0
	for _, r := range m.reporters {
		lines, n := r.Health()
		extra, failing = append(extra, lines...), failing+n
	}
	m.health.write(w, extra, failing)
}

// serve starts the metrics server; the returned func stops it.
func (m *metrics) serve(addr string, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", m.serveHTTP)
	mux.HandleFunc("/health", m.serveHealth)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// writeBackendMetrics writes the counters of the backends that report
// some, one family per counter name, labelled by backend.
func writeBackendMetrics(w io.Writer, clients map[string]backends.Backend) {
	families := map[string][]string{}
	for name, b := range clients {
		r, ok := b.(backends.MetricsReporter)
		if !ok {
			continue
		}
		for k, v := range r.Metrics() {
			families[k] = append(families[k], fmt.Sprintf("confit_backend_%s{backend=%q} %d", k, name, v))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(families)) {
		lines := families[k]
		slices.Sort(lines)
		fmt.Fprintf(w, "# TYPE confit_backend_%s counter\n%s\n", k, strings.Join(lines, "\n"))
	}
}

// named returns the pool's clients labelled by backend name ("etcd",
// "consul"; "consul#2" for a second client of the same kind).
func (p *pool) named() map[string]backends.Backend {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]backends.Backend{}
	for _, k := range slices.Sorted(maps.Keys(p.clients)) {
		name := p.specs[k].Backend
		label := name
		for i := 2; out[label] != nil; i++ {
			label = fmt.Sprintf("%s#%d", name, i)
		}
		out[label] = p.clients[k]
	}
	return out
}
