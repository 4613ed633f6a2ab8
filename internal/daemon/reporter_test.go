package daemon

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type fakeReporter struct {
	lines   []string
	failing int
}

func (f fakeReporter) WriteMetrics(w io.Writer) { fmt.Fprintln(w, "confit_register_up 1") }
func (f fakeReporter) Health() ([]string, int)  { return f.lines, f.failing }

// TestReporters: a Reporter's metrics are on /metrics, its lines on
// /health, and its failures make /health answer 503.
func TestReporters(t *testing.T) {
	for _, tc := range []struct {
		name     string
		rep      fakeReporter
		wantCode int
		wantBody string
	}{
		{"healthy", fakeReporter{lines: []string{"register a: up"}}, 200, "ok\nregister a: up\n"},
		{"failing", fakeReporter{lines: []string{"register a: up: store: refused"}, failing: 1}, 503, "register a: up: store: refused\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMetrics()
			m.reporters = []Reporter{tc.rep}
			rec := httptest.NewRecorder()
			m.serveHealth(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
			if rec.Code != tc.wantCode || rec.Body.String() != tc.wantBody {
				t.Errorf("/health = %d %q, want %d %q", rec.Code, rec.Body.String(), tc.wantCode, tc.wantBody)
			}
			rec = httptest.NewRecorder()
			m.serveHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
			if !strings.Contains(rec.Body.String(), "confit_register_up 1\n") {
				t.Errorf("/metrics lacks the reporter's metric:\n%s", rec.Body.String())
			}
		})
	}
}
