package integration

// End-to-end: the confit binary against a real Consul agent.

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/confit-dev/confit/internal/testserver"
	"github.com/hashicorp/consul/api"
)

func consulPut(t *testing.T, c *api.Client, key, value string) {
	t.Helper()
	if _, err := c.KV().Put(&api.KVPair{Key: strings.TrimPrefix(key, "/"), Value: []byte(value)}, nil); err != nil {
		t.Fatalf("consul put %s: %v", key, err)
	}
}

// consulPutRetry puts until a restarted agent accepts it (bounded).
func consulPutRetry(t *testing.T, c *api.Client, key, value string) {
	t.Helper()
	var err error
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		if _, err = c.KV().Put(&api.KVPair{Key: strings.TrimPrefix(key, "/"), Value: []byte(value)}, nil); err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("consul put %s after restart: %v", key, err)
}

// TestDaemonConsulKV: the compatibility fixtures render the same over
// Consul KV as over the file backend (one-shot); in watch mode a put, an
// update and a delete each reach the destination; killing the agent leaves
// the files untouched and confit running, and after the agent is back the
// files follow the store again.
func TestDaemonConsulKV(t *testing.T) {
	s := testserver.Consul(t, testserver.ConsulOptions{Dev: true})
	admin := consulAdmin(t, s)
	for k, v := range compatData {
		consulPut(t, admin, k, v)
	}

	t.Run("one-shot matches the file backend", func(t *testing.T) {
		checkMatchesFileBackend(t, "consul", "-backend", "consul", "-node", s.Addr())
	})

	t.Run("watch", func(t *testing.T) {
		out, confdir := t.TempDir(), t.TempDir()
		dest := filepath.Join(out, "kv.conf")
		writeFiles(t, confdir, map[string]string{
			"conf.d/kv.toml":    resourceTOML("kv.tmpl", dest, "/cw", "/"),
			"templates/kv.tmpl": "{{range gets \"/*\"}}{{base .Key}}={{.Value}}\n{{end}}",
		})
		consulPut(t, admin, "/cw/keep", "k")
		d := startConfitDaemon(t, "-backend", "consul", "-node", s.Addr(), "-confdir", confdir)
		waitFile(t, dest, "keep=k\n")

		consulPut(t, admin, "/cw/a", "1")
		waitFile(t, dest, "a=1\nkeep=k\n")
		consulPut(t, admin, "/cw/a", "2")
		waitFile(t, dest, "a=2\nkeep=k\n")
		if _, err := admin.KV().Delete("cw/a", nil); err != nil {
			t.Fatal(err)
		}
		waitFile(t, dest, "keep=k\n")

		// The agent dies: files stay, confit stays.
		consulPut(t, admin, "/cw/keep", "before-kill")
		waitFile(t, dest, "keep=before-kill\n")
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
		stayUnchanged(t, d, map[string]string{dest: "keep=before-kill\n"}, 5*time.Second)
		code, body, err := d.health()
		t.Logf("/health during the outage: %d %q (err %v)", code, body, err)
		if err != nil {
			t.Errorf("/health during the outage: %v", err)
		}
		t.Run("converges after the agent restarts", func(t *testing.T) {
			// A -dev agent comes back empty, with a Consul index lower than
			// the one confit last saw; the file must follow what is put then.
			if err := s.Start(t.Context()); err != nil {
				t.Fatalf("restart consul: %v", err)
			}
			consulPutRetry(t, admin, "/cw/keep", "after-restart")
			waitFile(t, dest, "keep=after-restart\n")
			if !d.alive() {
				t.Fatal("confit exited")
			}
		})
	})
}
