package daemon

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// healthKind is the kind of thing whose health /health reports.
type healthKind uint8

const (
	backendThing  healthKind = iota + 1 // a store's snapshot reads
	watchThing                          // a store's watch of one prefix
	resourceThing                       // a resource's render, commit or reload
)

// healthKey names one thing whose health /health reports.
type healthKey struct {
	kind   healthKind
	name   string // the backend's name, or the resource's
	prefix string // the watched prefix (watchThing)
	// store is the client's pool key (backendThing, watchThing): two
	// clients of one backend (two etcd configurations) are two things,
	// though /health names both by the backend.
	store string
}

func backendHealth(s *store) healthKey {
	return healthKey{kind: backendThing, name: s.name, store: s.key}
}
func watchHealth(s *store, prefix string) healthKey {
	return healthKey{kind: watchThing, name: s.name, prefix: prefix, store: s.key}
}
func resourceHealth(name string) healthKey { return healthKey{kind: resourceThing, name: name} }

// String is the thing as /health names it: "backend etcd", "watch etcd
// /app", "resource web.toml".
func (k healthKey) String() string {
	switch k.kind {
	case backendThing:
		return "backend " + k.name
	case watchThing:
		return "watch " + k.name + " " + k.prefix
	case resourceThing:
		return "resource " + k.name
	}
	return fmt.Sprintf("health kind %d %s", k.kind, k.name)
}

// health is what is failing now, served on /health. Safe for concurrent
// use: the engine sets it, the HTTP server reads it.
type health struct {
	mu      sync.Mutex
	failing map[healthKey]string // -> why
}

func newHealth() *health { return &health{failing: map[healthKey]string{}} }

// set records whether k is healthy (err nil) or why not. It returns true
// when the state changed (healthy or not, or another reason), so callers
// log once per change rather than once per retry.
func (h *health) set(k healthKey, err error) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	old, was := h.failing[k]
	if err == nil {
		delete(h.failing, k)
		return was
	}
	h.failing[k] = err.Error()
	return !was || old != err.Error()
}

// count returns how many things are failing now.
func (h *health) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.failing)
}

// forgetResources forgets the failures of resources whose names are not in
// keep: what failed in a resource that no longer exists is no longer a
// health problem.
func (h *health) forgetResources(keep map[string]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k := range h.failing {
		if k.kind == resourceThing && !keep[k.name] {
			delete(h.failing, k)
		}
	}
}

// ServeHTTP answers "ok" when nothing fails, else 503 and one line per
// failing thing, "THING: REASON", sorted.
func (h *health) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.write(w, nil, 0) }

// write is ServeHTTP with the lines of what runs beside the daemon
// (Reporter) after the daemon's own; failing of them make it a 503 too.
func (h *health) write(w http.ResponseWriter, extra []string, failing int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	defer func() {
		for _, l := range extra {
			fmt.Fprintln(w, l)
		}
	}()
	if len(h.failing) == 0 && failing == 0 {
		fmt.Fprintln(w, "ok")
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	lines := make([]string, 0, len(h.failing))
	for k, why := range h.failing {
		thing := k.String()
		if strings.HasPrefix(why, thing+": ") {
			// "resource web.toml: resource web.toml: render ..." once.
			lines = append(lines, why)
			continue
		}
		lines = append(lines, thing+": "+why)
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}
