package integration

// End-to-end: the confit binary against a real etcd, as a new user would
// run it.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/confit-dev/confit/internal/testserver"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// compatData is the store content of the compatibility fixtures, as flat
// keys (etcd, Consul) and as the YAML the file backend reads.
var compatData = map[string]string{
	"/app/name":               "shop",
	"/app/port":               "8080",
	"/app/db/url":             "postgres://db:5432/shop?sslmode=disable",
	"/app/db/pool":            "10",
	"/app/upstreams/b":        "10.0.0.2:80",
	"/app/upstreams/a":        "10.0.0.1:80",
	"/app/upstreams/c":        "10.0.0.3:80",
	"/app/services/web/port":  "80",
	"/app/services/web/host":  "web.local",
	"/app/services/api/port":  "9000",
	"/app/config":             `{"debug":true,"level":"info","peers":["p1","p2"]}`,
	"/app/list":               `["x","y","z"]`,
	"/app/unicode":            "héllo wörld ✓",
	"/app/foobar":             "sibling, never under /app/foo",
	"/app/foo/inner":          "inside /app/foo",
	"/other/ignored/entirely": "not read",
}

const compatYAML = `app:
  name: "shop"
  port: "8080"
  db:
    url: "postgres://db:5432/shop?sslmode=disable"
    pool: "10"
  upstreams:
    b: "10.0.0.2:80"
    a: "10.0.0.1:80"
    c: "10.0.0.3:80"
  services:
    web:
      port: "80"
      host: "web.local"
    api:
      port: "9000"
  config: '{"debug":true,"level":"info","peers":["p1","p2"]}'
  list: '["x","y","z"]'
  unicode: "héllo wörld ✓"
  foobar: "sibling, never under /app/foo"
  foo:
    inner: "inside /app/foo"
other:
  ignored:
    entirely: "not read"
`

// compatTemplates use confd's functions: getv with and without a default,
// exists, gets, getvs, ls, lsdir, json, jsonArray, and keys relative to a
// resource prefix.
var compatTemplates = map[string]string{
	"all.tmpl": `name={{getv "/app/name"}} port={{getv "/app/port"}}
missing={{getv "/app/missing" "fallback"}}
{{if exists "/app/db/url"}}db={{getv "/app/db/url"}} pool={{getv "/app/db/pool"}}{{end}}
{{range gets "/app/upstreams/*"}}server {{base .Key}} {{.Value}}
{{end}}{{range getvs "/app/upstreams/*"}}value {{.}}
{{end}}{{range ls "/app/upstreams"}}ls {{.}}
{{end}}{{range lsdir "/app/services"}}service {{.}} port {{getv (printf "/app/services/%s/port" .)}}
{{end}}{{range ls "/app/services/web"}}web key {{.}}
{{end}}{{$c := json (getv "/app/config")}}debug={{$c.debug}} level={{$c.level}}{{range $c.peers}} peer={{.}}{{end}}
{{range jsonArray (getv "/app/list")}}item {{.}}
{{end}}unicode={{getv "/app/unicode"}}
{{range gets "/app/foo/*"}}foo {{.Key}}={{.Value}}
{{end}}`,
	"rel.tmpl": `url={{getv "/db/url"}}
{{range gets "/upstreams/*"}}{{base .Key}}={{.Value}}
{{end}}{{range lsdir "/"}}dir {{.}}
{{end}}`,
}

// compatConfdir writes the fixtures' conf.d rendering into out.
func compatConfdir(t *testing.T, out string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"conf.d/all.toml": resourceTOML("all.tmpl", filepath.Join(out, "all.conf"), "/", "/app"),
		"conf.d/rel.toml": resourceTOML("rel.tmpl", filepath.Join(out, "rel.conf"), "/app", "/db", "/upstreams", "/services"),
	}
	for name, body := range compatTemplates {
		files["templates/"+name] = body
	}
	writeFiles(t, dir, files)
	return dir
}

func etcdPutAll(t *testing.T, c *clientv3.Client, kvs map[string]string) {
	t.Helper()
	for k, v := range kvs {
		mustPut(t, c, k, v)
	}
}

// TestDaemonEtcdMatchesFileBackend: the compatibility fixtures render the
// same bytes from etcd as from a YAML file holding the same data.
func TestDaemonEtcdMatchesFileBackend(t *testing.T) {
	s := testserver.Etcd(t, testserver.EtcdOptions{})
	etcdPutAll(t, etcdAdmin(t, s, "", ""), compatData)
	checkMatchesFileBackend(t, "etcd", "-backend", "etcd", "-node", s.Endpoint())
}

// checkMatchesFileBackend renders the compatibility fixtures one-shot from
// a YAML file holding compatData and from the store named by storeArgs
// (already loaded with compatData), and checks the outputs are the same
// bytes and exercise what they claim to.
func checkMatchesFileBackend(t *testing.T, store string, storeArgs ...string) {
	t.Helper()
	values := filepath.Join(t.TempDir(), "values.yaml")
	writeFiles(t, filepath.Dir(values), map[string]string{"values.yaml": compatYAML})
	fileOut, storeOut := t.TempDir(), t.TempDir()
	runConfitOnce(t, "-backend", "file", "-file", values, "-confdir", compatConfdir(t, fileOut))
	runConfitOnce(t, append(storeArgs, "-confdir", compatConfdir(t, storeOut))...)

	for _, name := range []string{"all.conf", "rel.conf"} {
		fromFile := readFile(t, filepath.Join(fileOut, name))
		fromStore := readFile(t, filepath.Join(storeOut, name))
		if fromStore != fromFile {
			t.Errorf("%s differs:\n--- file backend ---\n%s\n--- %s ---\n%s", name, fromFile, store, fromStore)
		}
	}
	// The fixtures must exercise what they claim to, not render blanks.
	all := readFile(t, filepath.Join(storeOut, "all.conf"))
	for _, want := range []string{
		"name=shop port=8080", "missing=fallback", "server a 10.0.0.1:80\nserver b", "ls c",
		"service api port 9000\nservice web port 80", "debug=true level=info peer=p1 peer=p2",
		"item z", "unicode=héllo wörld ✓", "foo /app/foo/inner=inside /app/foo\n",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("all.conf from %s lacks %q:\n%s", store, want, all)
		}
	}
	if strings.Contains(all, "sibling") {
		t.Errorf("all.conf from %s: /app/foo matched /app/foobar:\n%s", store, all)
	}
	if rel := readFile(t, filepath.Join(storeOut, "rel.conf")); !strings.Contains(rel, "url=postgres://") || !strings.Contains(rel, "dir services") {
		t.Errorf("rel.conf from %s:\n%s", store, rel)
	}
}

// TestDaemonEtcdWatch: put, update and delete each reach the destination; a
// burst of 1000 puts renders the final state in a handful of renders; an
// etcd outage leaves the files alone and confit running, and after etcd
// returns the files follow the store again.
func TestDaemonEtcdWatch(t *testing.T) {
	s := testserver.Etcd(t, testserver.EtcdOptions{})
	admin := etcdAdmin(t, s, "", "")
	out := t.TempDir()
	confdir := t.TempDir()
	kvDest, burstDest := filepath.Join(out, "kv.conf"), filepath.Join(out, "burst.conf")
	writeFiles(t, confdir, map[string]string{
		"conf.d/kv.toml":       resourceTOML("kv.tmpl", kvDest, "/w", "/"),
		"conf.d/burst.toml":    resourceTOML("burst.tmpl", burstDest, "/burst", "/"),
		"templates/kv.tmpl":    "{{range gets \"/*\"}}{{base .Key}}={{.Value}}\n{{end}}",
		"templates/burst.tmpl": "{{range gets \"/*\"}}{{base .Key}}={{.Value}}\n{{end}}",
	})
	mustPut(t, admin, "/w/keep", "k")
	d := startConfitDaemon(t, "-backend", "etcd", "-node", s.Endpoint(), "-confdir", confdir, "-wait", "200ms:2s")
	waitFile(t, kvDest, "keep=k\n")
	waitFile(t, burstDest, "")

	t.Run("put update delete", func(t *testing.T) {
		mustPut(t, admin, "/w/a", "1")
		waitFile(t, kvDest, "a=1\nkeep=k\n")
		mustPut(t, admin, "/w/a", "2")
		waitFile(t, kvDest, "a=2\nkeep=k\n")
		if _, err := admin.Delete(t.Context(), "/w/a"); err != nil {
			t.Fatal(err)
		}
		waitFile(t, kvDest, "keep=k\n")
	})

	t.Run("burst of 1000 puts", func(t *testing.T) {
		before := d.counter(t, "confit_renders_total")
		const writers, perWriter = 10, 100
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perWriter {
					ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
					_, err := admin.Put(ctx, fmt.Sprintf("/burst/k%d", w), fmt.Sprintf("v%d", i))
					cancel()
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("put: %v", err)
		}
		var want strings.Builder
		for w := range writers {
			fmt.Fprintf(&want, "k%d=v%d\n", w, perWriter-1)
		}
		waitFile(t, burstDest, want.String())
		// Renders after the last one would show up within the wait's max.
		time.Sleep(2500 * time.Millisecond)
		renders := d.counter(t, "confit_renders_total") - before
		t.Logf("1000 puts → %.0f renders", renders)
		if renders < 1 || renders > 3 {
			t.Errorf("1000 puts with -wait 200ms:2s caused %.0f renders, want 1 to 3", renders)
		}
		if got := readFile(t, burstDest); got != want.String() {
			t.Errorf("after the burst: %q, want %q", got, want.String())
		}
	})

	t.Run("etcd killed and restarted", func(t *testing.T) {
		// A value changed just before the outage is rendered.
		mustPut(t, admin, "/w/keep", "before-kill")
		waitFile(t, kvDest, "keep=before-kill\n")
		files := map[string]string{kvDest: readFile(t, kvDest), burstDest: readFile(t, burstDest)}
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
		stayUnchanged(t, d, files, 5*time.Second)
		waitFor(t, "/health 503 during the outage", func() (bool, string) {
			code, body, err := d.health()
			return err == nil && code == 503 && strings.Contains(body, "etcd"), fmt.Sprintf("%d %q %v", code, body, err)
		})
		if err := s.Start(t.Context()); err != nil {
			t.Fatalf("restart etcd: %v", err)
		}
		retryPut(t, admin, "/w/keep", "after-restart")
		retryPut(t, admin, "/w/new", "n")
		waitFile(t, kvDest, "keep=after-restart\nnew=n\n")
		waitFor(t, "/health ok after the outage", func() (bool, string) {
			code, body, err := d.health()
			return err == nil && code == 200, fmt.Sprintf("%d %q %v", code, body, err)
		})
	})
}

// TestDaemonEtcdSIGHUP: after SIGHUP an added resource renders, a changed
// one renders its new form, a broken one is reported and its previous
// version keeps rendering; existing watches keep working.
func TestDaemonEtcdSIGHUP(t *testing.T) {
	s := testserver.Etcd(t, testserver.EtcdOptions{})
	admin := etcdAdmin(t, s, "", "")
	etcdPutAll(t, admin, map[string]string{"/h/a": "A", "/h/b": "B", "/h/c": "C"})
	out, confdir := t.TempDir(), t.TempDir()
	dest := func(n string) string { return filepath.Join(out, n+".conf") }
	writeFiles(t, confdir, map[string]string{
		"conf.d/changed.toml":  resourceTOML("v.tmpl", dest("changed"), "/h", "/a"),
		"conf.d/broken.toml":   resourceTOML("v2.tmpl", dest("broken"), "/h", "/c"),
		"templates/v.tmpl":     "a={{getv \"/a\"}}\n",
		"templates/v2.tmpl":    "c={{getv \"/c\"}}\n",
		"templates/added.tmpl": "b={{getv \"/b\"}}\n",
		"templates/new.tmpl":   "new a={{getv \"/a\"}} b={{getv \"/b\"}}\n",
	})
	d := startConfitDaemon(t, "-backend", "etcd", "-node", s.Endpoint(), "-confdir", confdir)
	waitFile(t, dest("changed"), "a=A\n")
	waitFile(t, dest("broken"), "c=C\n")

	writeFiles(t, confdir, map[string]string{
		"conf.d/added.toml":   resourceTOML("added.tmpl", dest("added"), "/h", "/b"),
		"conf.d/changed.toml": resourceTOML("new.tmpl", dest("changed"), "/h", "/a", "/b"),
		"conf.d/broken.toml":  "[template]\nsrc = \"v2.tmpl\"\ndest = ", // not TOML
	})
	d.signal(t, syscall.SIGHUP)
	waitFile(t, dest("added"), "b=B\n")
	waitFile(t, dest("changed"), "new a=A b=B\n")
	waitFor(t, "the broken file reported in the log", func() (bool, string) {
		return strings.Contains(d.log.String(), "broken.toml"), "no line naming broken.toml"
	})
	if !d.alive() {
		t.Fatal("confit exited after SIGHUP with a broken resource")
	}
	// Watches work for all three, the broken one in its previous version.
	mustPut(t, admin, "/h/b", "B2")
	mustPut(t, admin, "/h/c", "C2")
	waitFile(t, dest("added"), "b=B2\n")
	waitFile(t, dest("changed"), "new a=A b=B2\n")
	waitFile(t, dest("broken"), "c=C2\n")
	if _, err := os.Stat(dest("broken")); err != nil {
		t.Fatal(err)
	}
}
