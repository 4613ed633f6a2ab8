package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/confit-dev/confit/internal/testserver"
)

// TestConsulACLThroughConfit runs the real binary against an ACL-enabled
// agent: a token that can read the prefix renders; one that cannot (and
// CONSUL_HTTP_TOKEN, read from the environment) fails with a permission
// error naming the prefix, exit 1, and the destination untouched.
func TestConsulACLThroughConfit(t *testing.T) {
	const mgmt = "aaaaaaaa-2222-3333-4444-555555555555"
	s := testserver.Consul(t, testserver.ConsulOptions{Dev: true, ACLToken: mgmt})
	admin := consulAdmin(t, s)
	consulPutRetry(t, admin, "/app/db", "postgres://db")
	pol, _, err := admin.ACL().PolicyCreate(&api.ACLPolicy{Name: "read-other", Rules: `key_prefix "other/" { policy = "read" }`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	weak, _, err := admin.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: pol.ID}}}, nil)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	dest := filepath.Join(dir, "out", "app.conf")
	writeFiles(t, dir, map[string]string{
		"conf.d/app.toml":    resourceTOML("app.tmpl", dest, "/app", "/db"),
		"templates/app.tmpl": `db={{getv "/db"}}` + "\n",
		"out/app.conf":       "db=previous\n",
	})

	// Allowed: the management token, given as -auth-token.
	runConfitOnce(t, "-backend", "consul", "-node", s.Addr(), "-auth-token", mgmt, "-confdir", dir)
	if got := readFile(t, dest); got != "db=postgres://db\n" {
		t.Fatalf("with a token that can read: %q", got)
	}
	if err := os.WriteFile(dest, []byte("db=previous\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// Denied: a token without read on /app, from CONSUL_HTTP_TOKEN.
	cmd := confitCmd(t, "-onetime", "-backend", "consul", "-node", s.Addr(), "-confdir", dir)
	cmd.Env = append(cmd.Env, "CONSUL_HTTP_TOKEN="+weak.SecretID)
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("exit %d (%v), want 1:\n%s", code, err, out)
	}
	if !strings.Contains(string(out), "permission denied") || !strings.Contains(string(out), "/app/db") {
		t.Errorf("error does not name the permission problem and the prefix:\n%s", out)
	}
	if got := readFile(t, dest); got != "db=previous\n" {
		t.Errorf("destination changed on a permission error: %q", got)
	}
}
