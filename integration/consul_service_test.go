package integration

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/confit-dev/confit/internal/testserver"
)

// TestConsulServiceHealth renders a load-balancer style template from a
// real agent's service health: only passing instances are listed, check
// flips are followed both ways, tag filters narrow the list, and a list that
// drops to empty is held back for the grace period before it renders.
func TestConsulServiceHealth(t *testing.T) {
	s := testserver.Consul(t, testserver.ConsulOptions{Dev: true})
	admin := consulAdmin(t, s)
	register := func(id string, port int, tags ...string) {
		t.Helper()
		err := admin.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: id, Name: "web", Address: "127.0.0.1", Port: port, Tags: tags,
			Check: &api.AgentServiceCheck{CheckID: "check-" + id, TTL: "10m"},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	setHealth := func(id, status string) {
		t.Helper()
		if err := admin.Agent().UpdateTTL("check-"+id, "test", status); err != nil {
			t.Fatal(err)
		}
	}
	register("web1", 8081, "canary")
	register("web2", 8082)
	setHealth("web1", api.HealthPassing)
	setHealth("web2", api.HealthPassing)

	dir := t.TempDir()
	dest := filepath.Join(dir, "out", "lb.cfg")
	writeFiles(t, dir, map[string]string{
		"conf.d/lb.toml": resourceTOML("lb.tmpl", dest, "/"),
		"templates/lb.tmpl": `{{range service "web"}}server {{.ID}} {{.Address}}:{{.Port}}
{{end}}canary:{{range service "web" "canary"}} {{.ID}}{{end}}
services:{{range services}} {{.Name}}{{end}}
`,
	})
	both := "server web1 127.0.0.1:8081\nserver web2 127.0.0.1:8082\ncanary: web1\nservices: consul web\n"

	// One-shot sees the passing instances.
	runConfitOnce(t, "-backend", "consul", "-node", s.Addr(), "-confdir", dir)
	if got := readFile(t, dest); got != both {
		t.Fatalf("one-shot render:\n%s\nwant:\n%s", got, both)
	}

	d := startConfitDaemonEnv(t, []string{"CONFIT_CONSUL_EMPTY_GRACE=2s"}, "-backend", "consul", "-node", s.Addr(), "-confdir", dir)
	waitFile(t, dest, both)

	setHealth("web2", api.HealthCritical)
	waitFile(t, dest, "server web1 127.0.0.1:8081\ncanary: web1\nservices: consul web\n")
	setHealth("web2", api.HealthPassing)
	waitFile(t, dest, both)

	// Everything critical: held back for the grace period, then rendered
	// (a real scale-to-zero).
	setHealth("web1", api.HealthCritical)
	setHealth("web2", api.HealthCritical)
	waitFile(t, dest, "canary:\nservices: consul web\n")
	if !strings.Contains(d.log.String(), "empty") {
		t.Errorf("no log line about holding back an empty list:\n%s", d.log.String())
	}
}
