package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/confit-dev/confit/internal/testserver"
	"github.com/hashicorp/consul/api"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestRegisterBesideWatch: confit -watch with a conf.d holding a template
// resource and a file with only a [register] table renders the one and
// keeps the other registered in the same process; /health and /metrics
// show the registration; SIGTERM deletes the key, drains and exits 0.
func TestRegisterBesideWatch(t *testing.T) {
	etcd := testserver.Etcd(t, testserver.EtcdOptions{})
	admin := etcdAdmin(t, etcd, "", "")
	var healthy atomic.Bool
	healthy.Store(true)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer app.Close()

	dir := t.TempDir()
	files := map[string]string{
		"conf.d/app.toml":      "[template]\nsrc = \"app.tmpl\"\ndest = \"" + filepath.Join(dir, "app.conf") + "\"\nkeys = [\"/services/web\"]\n",
		"templates/app.tmpl":   "{{range gets \"/services/web/*\"}}{{base .Key}}={{.Value}}\n{{end}}",
		"conf.d/register.toml": "[register]\nkey = \"/services/web/self\"\nvalue = \"" + strings.TrimPrefix(app.URL, "http://") + "\"\nttl = \"5s\"\ndrain = \"1s\"\n[register.check]\nhttp = \"" + app.URL + "/health\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1\n",
	}
	writeFiles(t, dir, files)
	d := startConfitDaemon(t, "-backend", "etcd", "-node", etcd.Endpoint(), "-confdir", dir)

	// The registration feeds the same process's template.
	waitFile(t, filepath.Join(dir, "app.conf"), "self="+strings.TrimPrefix(app.URL, "http://")+"\n")
	health := func() (int, string) {
		resp, err := metricsClient.Get(d.metrics + "/health")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, "/health shows the registration up", func() (bool, string) {
		code, body := health()
		return code == 200 && strings.Contains(body, "ok\n") && strings.Contains(body, "register "+filepath.Join(dir, "conf.d", "register.toml")+" (key /services/web/self): up"), fmt.Sprint(code, body)
	})
	m, err := d.scrape()
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := sumMetric(m, "confit_register_up"); !ok || v != 1 {
		t.Errorf("confit_register_up = %v (%v), want 1", v, ok)
	}

	// The check fails: the key goes, /health stays 200 (the service is
	// down, not confit) and says why.
	healthy.Store(false)
	waitFile(t, filepath.Join(dir, "app.conf"), "")
	waitFor(t, "/health shows the registration down", func() (bool, string) {
		code, body := health()
		return code == 200 && strings.Contains(body, "): down (http check") && strings.Contains(body, "status 503"), fmt.Sprint(code, body)
	})
	healthy.Store(true)
	waitFile(t, filepath.Join(dir, "app.conf"), "self="+strings.TrimPrefix(app.URL, "http://")+"\n")

	wch := admin.Watch(t.Context(), "/services/web/self")
	start := time.Now()
	d.signal(t, os.Interrupt)
	select {
	case wr := <-wch:
		if len(wr.Events) == 0 || wr.Events[0].Type != clientv3.EventTypeDelete {
			t.Fatalf("first event after SIGINT: %+v, want the delete", wr.Events)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no delete within 15 s of SIGINT")
	}
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		t.Fatal("confit did not exit within 15 s of SIGINT")
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit %d, want 0\n%s", code, d.log.String())
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("exited %v after SIGINT, before the 1 s drain", took)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if resp, err := admin.Get(ctx, "/services/web/self"); err != nil || len(resp.Kvs) != 0 {
		t.Errorf("key after exit: %v, %v", resp, err)
	}
}

// sumMetric sums every series of name.
func sumMetric(m map[string]float64, name string) (float64, bool) {
	var sum float64
	found := false
	for k, v := range m {
		if n, _, _ := strings.Cut(k, "{"); n == name {
			sum += v
			found = true
		}
	}
	return sum, found
}

// startRegisterAlone starts the real binary as `confit register` (alone:
// no -watch, no daemon) with args, its /metrics on a free port, and waits
// until /metrics answers; it is stopped by its PID when t ends.
func startRegisterAlone(t *testing.T, args ...string) *confitDaemon {
	t.Helper()
	return startConfitProcess(t, "confit register", nil, []string{"register", "-confdir", t.TempDir()}, args)
}

// kill9 sends SIGKILL to the confit process (by its PID) and waits until
// it is gone, checking that the signal, not a clean exit, ended it.
func (d *confitDaemon) kill9(t *testing.T) {
	t.Helper()
	d.signal(t, syscall.SIGKILL)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		t.Fatal("confit still running 10 s after SIGKILL")
	}
	if ws, ok := d.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("confit ended with %v, want killed by SIGKILL", d.cmd.ProcessState)
	}
}

// registerKill9TTL is the TTL of the kill -9 tests; the bound on the
// detection is the TTL plus registerKill9Slack (the store's expiry tick,
// a loaded machine): a bound, not a timing.
const (
	registerKill9TTL   = 3 * time.Second
	registerKill9Slack = 10 * time.Second
)

// TestRegisterKill9Etcd: `confit register` (the real binary) registers a
// key on its lease against a real etcd; kill -9 of confit (no drain, no
// delete: nothing runs) makes the key disappear within the TTL, as the
// lease expires: the failure detector of issue 15.
func TestRegisterKill9Etcd(t *testing.T) {
	etcd := testserver.Etcd(t, testserver.EtcdOptions{})
	admin := etcdAdmin(t, etcd, "", "")
	app := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer app.Close()
	key := "/services/web/kill9"
	d := startRegisterAlone(t, "-backend", "etcd", "-node", etcd.Endpoint(), "-key", key, "-value", "10.0.0.5:8080",
		"-check-http", app.URL, "-check-interval", "100ms", "-check-timeout", "100ms", "-rise", "1",
		"-ttl", registerKill9TTL.String(), "-drain", "5s")

	var lease int64
	waitFor(t, "the key registered", func() (bool, string) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		resp, err := admin.Get(ctx, key)
		if err != nil || len(resp.Kvs) == 0 {
			return false, fmt.Sprint(resp, err)
		}
		lease = resp.Kvs[0].Lease
		return string(resp.Kvs[0].Value) == "10.0.0.5:8080" && lease != 0, fmt.Sprintf("%q lease %x", resp.Kvs[0].Value, lease)
	})
	if ttl, err := admin.TimeToLive(t.Context(), clientv3.LeaseID(lease)); err != nil || ttl.GrantedTTL != int64(registerKill9TTL/time.Second) {
		t.Fatalf("lease %x: %+v, %v; want granted TTL %v", lease, ttl, err, registerKill9TTL)
	}

	d.kill9(t)
	killed := time.Now()
	deadline := killed.Add(registerKill9TTL + registerKill9Slack)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		resp, err := admin.Get(ctx, key)
		cancel()
		if err == nil && len(resp.Kvs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("key still there %v after kill -9 (TTL %v): %v, %v", time.Since(killed), registerKill9TTL, resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("key gone %v after kill -9 of confit (TTL %v)", time.Since(killed).Round(time.Millisecond), registerKill9TTL)
	if strings.Contains(d.log.String(), "registration draining") {
		t.Errorf("confit drained: it was not killed before it could act\n%s", d.log.String())
	}
}

// TestRegisterKill9Consul: `confit register` (the real binary) registers
// a service with a TTL check on a real Consul agent; kill -9 of confit
// makes the check critical within the TTL (the heartbeats stop), and the
// service stays until deregister_critical_service_after.
func TestRegisterKill9Consul(t *testing.T) {
	s := testserver.Consul(t, testserver.ConsulOptions{Dev: true})
	admin := consulAdmin(t, s)
	app := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer app.Close()
	d := startRegisterAlone(t, "-backend", "consul", "-node", s.Addr(), "-service", "web", "-id", "web-kill9",
		"-address", "127.0.0.1", "-port", "8080", "-check-http", app.URL, "-check-interval", "100ms",
		"-check-timeout", "100ms", "-rise", "1", "-ttl", registerKill9TTL.String(), "-drain", "5s")

	status := func() string {
		entries, _, err := admin.Health().Service("web", "", false, nil)
		if err != nil {
			return "error: " + err.Error()
		}
		for _, e := range entries {
			if e.Service.ID == "web-kill9" {
				return e.Checks.AggregatedStatus()
			}
		}
		return "not registered"
	}
	waitFor(t, "the service passing", func() (bool, string) {
		st := status()
		return st == api.HealthPassing, st
	})

	d.kill9(t)
	killed := time.Now()
	deadline := killed.Add(registerKill9TTL + registerKill9Slack)
	for {
		st := status()
		if st == api.HealthCritical {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("check %s %v after kill -9 (TTL %v), want critical", st, time.Since(killed), registerKill9TTL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("check critical %v after kill -9 of confit (TTL %v)", time.Since(killed).Round(time.Millisecond), registerKill9TTL)
	checks, err := admin.Agent().Checks()
	if c := checks["confit:web-kill9"]; err != nil || c == nil || !strings.Contains(c.Output, "TTL expired") {
		t.Errorf("check after kill -9 = %+v, %v; want critical by its TTL expiring (no confit left to fail it)", c, err)
	}
}
