package register

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Status is a registration's state as /health and /metrics show it.
type Status struct {
	// Name is the registration's name; What names what it registers
	// ("key /services/web/a", "service web id web-1"); Key, Service and ID
	// are the same, as set.
	Name, What       string
	Key, Service, ID string
	// State is what the checks decided (up, down, held, draining).
	State State
	// InStore reports whether the store said so at the last request.
	InStore bool
	// StoreErr is the last store error (nil after a success); CheckErr the
	// last check's failure (nil after a pass).
	StoreErr, CheckErr error
	// LastCheck is when the last check completed (zero before the first).
	LastCheck time.Time
	// Interval is the check interval.
	Interval time.Duration
	// Transitions, Passes and Failures count state changes and checks.
	Transitions, Passes, Failures uint64
}

// Status returns every registration's status, in configuration order.
func (r *Runner) Status() []Status {
	regs := r.current()
	out := make([]Status, 0, len(regs))
	for _, rs := range regs {
		rs.mu.Lock()
		out = append(out, Status{
			Name: rs.reg.Name, What: rs.reg.what(), Key: rs.reg.Key, Service: rs.reg.Service, ID: rs.reg.ID,
			State: rs.state, InStore: rs.inStore,
			StoreErr: rs.storeErr, CheckErr: rs.checkErr, LastCheck: rs.lastCheck, Interval: rs.reg.Check.Interval,
			Transitions: rs.transitions, Passes: rs.passes, Failures: rs.failures,
		})
		rs.mu.Unlock()
	}
	return out
}

// failing says why confit itself is unhealthy for st ("" when it is not):
// the store refuses what the checks decided, or checks stopped completing
// (none for 3 intervals plus the timeout). An instance that is down because
// its check fails is the service's health, not confit's.
func (st Status) failing(now time.Time) string {
	switch {
	case st.StoreErr != nil:
		return "store: " + st.StoreErr.Error()
	case !st.LastCheck.IsZero() && now.Sub(st.LastCheck) > 3*st.Interval+10*time.Second:
		return fmt.Sprintf("no check completed for %v", now.Sub(st.LastCheck).Round(time.Second))
	}
	return ""
}

// Health returns one line per registration ("register NAME (WHAT): up")
// and how many of them make confit unhealthy (their line says why).
func (r *Runner) Health() (lines []string, failing int) {
	now := time.Now()
	for _, st := range r.Status() {
		line := fmt.Sprintf("register %s (%s): %s", st.Name, st.What, st.State)
		if why := st.failing(now); why != "" {
			failing++
			line += ": " + why
		} else if st.CheckErr != nil && st.State != Up {
			line += " (" + st.CheckErr.Error() + ")"
		}
		lines = append(lines, line)
	}
	return lines, failing
}

// WriteMetrics writes the registrations' gauges and counters in
// Prometheus' text format, labelled by registration and key (etcd) or
// service and id (Consul).
func (r *Runner) WriteMetrics(w io.Writer) {
	sts := r.Status()
	label := func(st Status) string {
		l := `{registration="` + escapeLabel(st.Name) + `"`
		if st.Key != "" {
			l += `,key="` + escapeLabel(st.Key) + `"`
		} else {
			l += `,service="` + escapeLabel(st.Service) + `",id="` + escapeLabel(st.ID) + `"`
		}
		return l + "}"
	}
	fmt.Fprintln(w, "# HELP confit_register_up Whether the registration is announced as up (1) or not (0).")
	fmt.Fprintln(w, "# TYPE confit_register_up gauge")
	for _, st := range sts {
		fmt.Fprintf(w, "confit_register_up%s %d\n", label(st), b2i(st.State == Up))
	}
	fmt.Fprintln(w, "# HELP confit_register_state The registration's state: 0 down, 1 up, 2 held by the flap limit, 3 draining.")
	fmt.Fprintln(w, "# TYPE confit_register_state gauge")
	for _, st := range sts {
		fmt.Fprintf(w, "confit_register_state%s %d\n", label(st), int(st.State))
	}
	fmt.Fprintln(w, "# HELP confit_register_store_ok Whether the store accepted the registration's state at the last request.")
	fmt.Fprintln(w, "# TYPE confit_register_store_ok gauge")
	for _, st := range sts {
		fmt.Fprintf(w, "confit_register_store_ok%s %d\n", label(st), b2i(st.InStore))
	}
	for _, c := range []struct {
		name, help string
		v          func(Status) uint64
	}{
		{"confit_register_transitions_total", "State changes decided by the checks.", func(s Status) uint64 { return s.Transitions }},
		{"confit_register_checks_passed_total", "Checks that passed.", func(s Status) uint64 { return s.Passes }},
		{"confit_register_checks_failed_total", "Checks that failed.", func(s Status) uint64 { return s.Failures }},
	} {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", c.name, c.help, c.name)
		for _, st := range sts {
			fmt.Fprintf(w, "%s%s %d\n", c.name, label(st), c.v(st))
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func escapeLabel(s string) string {
	s = strconv.Quote(s)
	return strings.ReplaceAll(s[1:len(s)-1], `\'`, `'`)
}

// Handler serves /metrics and /health for a process that runs register
// mode alone (confit register without -watch). /health answers 200 with
// "ok" and one line per registration, or 503 when one of them is failing.
func (r *Runner) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		r.WriteMetrics(w)
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		lines, failing := r.Health()
		if failing > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		} else {
			fmt.Fprintln(w, "ok")
		}
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	})
	return mux
}
