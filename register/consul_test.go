//go:build !confit_no_consul

package register

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/internal/testserver"
	"github.com/hashicorp/consul/api"
)

func consulAdmin(t *testing.T, s *testserver.ConsulServer) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: s.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func consulSpec(s *testserver.ConsulServer) backends.Spec {
	return backends.Spec{Backend: "consul", Settings: backends.Settings{"node": {s.Addr()}}}
}

// waitHealth waits until the instance id of service has the check status
// want ("" = not registered at all) and returns how long it took.
func waitHealth(t *testing.T, c *api.Client, service, id, want string) time.Duration {
	t.Helper()
	start := time.Now()
	got := "?"
	for time.Since(start) < waitFor {
		entries, _, err := c.Health().Service(service, "", false, nil)
		if err == nil {
			got = ""
			for _, e := range entries {
				if e.Service.ID == id {
					got = e.Checks.AggregatedStatus()
				}
			}
			if got == want {
				return time.Since(start)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s/%s: status %q, want %q within %v", service, id, got, want, waitFor)
	return 0
}

// TestConsulUpDownDrain against a real agent: the service is registered
// with a TTL check that turns passing after rise passes, critical after
// fall failures, passing again; on shutdown critical, then after the drain
// the service is gone.
func TestConsulUpDownDrain(t *testing.T) {
	s := testserver.Consul(t, testserver.ConsulOptions{Dev: true})
	adm := consulAdmin(t, s)
	h := newHealthServer(t)
	reg := &Registration{Name: "web.toml", Service: "web", Address: "127.0.0.1", Port: 8080, Tags: []string{"blue"},
		Meta: map[string]string{"version": "1"}, Check: fastCheck(h.srv.URL), TTL: 5 * time.Second, Drain: time.Second}
	var log logLines
	_, stop, done := startRunnerLog(t, log.logger(), consulSpec(s), reg)
	id := "web-127.0.0.1-8080"
	t.Logf("passing after %v", waitHealth(t, adm, "web", id, api.HealthPassing))
	svc, _, err := adm.Agent().Service(id, nil)
	if err != nil || svc.Port != 8080 || svc.Meta["version"] != "1" || len(svc.Tags) != 1 {
		t.Fatalf("agent service = %+v, %v", svc, err)
	}
	checks, err := adm.Agent().Checks()
	if c := checks["confit:"+id]; err != nil || c == nil || c.Output != notePassing {
		t.Fatalf("check = %+v, %v; want the constant note", c, err)
	}

	h.ok.Store(false)
	took := waitHealth(t, adm, "web", id, api.HealthCritical)
	t.Logf("critical after %v", took)
	within(t, "critical", took, downBound(reg.Check))
	h.ok.Store(true)
	took = waitHealth(t, adm, "web", id, api.HealthPassing)
	t.Logf("passing again after %v", took)
	within(t, "passing again", took, upBound(reg.Check))

	// The agent forgets the service (as an agent restarted without its
	// state): confit registers it again at the next heartbeat.
	if err := adm.Agent().ServiceDeregister(id); err != nil {
		t.Fatal(err)
	}
	t.Logf("registered again after %v", waitHealth(t, adm, "web", id, api.HealthPassing))

	start := time.Now()
	go stop()
	waitHealth(t, adm, "web", id, api.HealthCritical)
	critical := time.Since(start)
	waitHealth(t, adm, "web", id, "")
	gone := time.Since(start)
	t.Logf("shutdown: critical after %v, deregistered after %v (drain 1s)", critical, gone)
	if gone-critical < 800*time.Millisecond {
		t.Errorf("deregistered %v after going critical, want the drain (1s) between", gone-critical)
	}
	<-done
	checkTransitionsLogged(t, &log)
}

// TestConsulCheckDefinition: the agent holds the TTL check with the TTL
// and deregister_critical_service_after as configured. Its HTTP API shows
// neither for a TTL check (Definition is empty), so the test reads the
// definition a persistent agent (not -dev) keeps in its data directory,
// checks/<hash>: {"ChkType": {"TTL": ns, "DeregisterCriticalServiceAfter": ns}}.
func TestConsulCheckDefinition(t *testing.T) {
	dir := t.TempDir()
	s := testserver.Consul(t, testserver.ConsulOptions{Dir: dir})
	adm := consulAdmin(t, s)
	h := newHealthServer(t)
	reg := &Registration{Name: "web.toml", Service: "web", ID: "web-def", Check: fastCheck(h.srv.URL),
		TTL: 7 * time.Second, DeregisterAfter: 90 * time.Second}
	startRunner(t, consulSpec(s), reg)
	waitHealth(t, adm, "web", "web-def", api.HealthPassing)

	files, err := filepath.Glob(filepath.Join(dir, "data*", "checks", "*"))
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var persisted struct {
			ChkType *struct {
				CheckID                        string
				TTL                            time.Duration
				DeregisterCriticalServiceAfter time.Duration
			}
		}
		if json.Unmarshal(b, &persisted) != nil || persisted.ChkType == nil {
			continue // the directory's state file
		}
		c := persisted.ChkType
		found = append(found, c.CheckID)
		if c.CheckID != checkID(reg) {
			continue
		}
		if c.TTL != reg.TTL || c.DeregisterCriticalServiceAfter != reg.DeregisterAfter {
			t.Errorf("the agent's check: TTL %v, deregister_critical_service_after %v; want %v and %v",
				c.TTL, c.DeregisterCriticalServiceAfter, reg.TTL, reg.DeregisterAfter)
		}
		return
	}
	t.Fatalf("no definition of check %q in the agent's data directory (found %q in %q)", checkID(reg), found, files)
}

// TestConsulKill9: a child process registers, is killed with SIGKILL, and
// the TTL check goes critical within the TTL (the service stays until
// deregister_critical_service_after).
func TestConsulKill9(t *testing.T) {
	s := testserver.Consul(t, testserver.ConsulOptions{Dev: true})
	adm := consulAdmin(t, s)
	h := newHealthServer(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRegisterConsul$")
	cmd.Env = append(os.Environ(), "CONFIT_REGISTER_HELPER=1", "HELPER_CONSUL="+s.Addr(), "HELPER_URL="+h.srv.URL)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitHealth(t, adm, "k9", "k9", api.HealthPassing)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	took := waitHealth(t, adm, "k9", "k9", api.HealthCritical)
	t.Logf("critical %v after kill -9 (TTL 3s)", took)
	if took > 3*time.Second+10*time.Second {
		t.Errorf("critical after %v, want within the TTL (3s; bound 13s on a busy machine)", took)
	}
}

// TestHelperRegisterConsul is the child process of TestConsulKill9.
func TestHelperRegisterConsul(t *testing.T) {
	if os.Getenv("CONFIT_REGISTER_HELPER") != "1" {
		t.Skip("helper process")
	}
	r, err := New([]*Registration{{Name: "helper", Service: "k9", ID: "k9",
		Check: fastCheck(os.Getenv("HELPER_URL")), TTL: 3 * time.Second}},
		Options{Backend: backends.Spec{Backend: "consul", Settings: backends.Settings{"node": {os.Getenv("HELPER_CONSUL")}}}})
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Run(t.Context())
}
