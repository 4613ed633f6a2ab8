package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/confit-dev/confit/internal/testserver"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// registerTable is a conf.d [register] table for key=value, checked by an
// HTTP GET of url (rise 1).
func registerTable(key, value, url string) string {
	return "[register]\nkey = \"" + key + "\"\nvalue = \"" + value + "\"\nttl = \"5s\"\ndrain = \"0s\"\n" +
		"[register.check]\nhttp = \"" + url + "\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1\n"
}

// TestRegisterSIGHUPEtcd: SIGHUP applies conf.d's [register] tables to a
// running confit -watch. A table whose key stays but whose value changed
// is written again without ever being deleted (the instance stays in the
// pool); a removed table's key is deleted; a new table's key appears. A
// table that does not load changes nothing, and says so.
func TestRegisterSIGHUPEtcd(t *testing.T) {
	etcd := testserver.Etcd(t, testserver.EtcdOptions{})
	admin := etcdAdmin(t, etcd, "", "")
	app := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer app.Close()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"conf.d/a.toml": registerTable("/svc/a", "a1", app.URL),
		"conf.d/b.toml": registerTable("/svc/b", "b1", app.URL),
	})
	d := startConfitDaemon(t, "-backend", "etcd", "-node", etcd.Endpoint(), "-confdir", dir)
	defer d.stop(t)
	keys := func() map[string]string {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		resp, err := admin.Get(ctx, "/svc/", clientv3.WithPrefix())
		if err != nil {
			return map[string]string{"error": err.Error()}
		}
		m := map[string]string{}
		for _, kv := range resp.Kvs {
			m[string(kv.Key)] = string(kv.Value)
		}
		return m
	}
	waitKeys := func(what string, want map[string]string) {
		t.Helper()
		waitFor(t, what, func() (bool, string) {
			got := keys()
			return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprint(got)
		})
	}
	waitKeys("both registered", map[string]string{"/svc/a": "a1", "/svc/b": "b1"})

	// Every event on /svc/a from here on: the change must be a put, never
	// a delete then a put.
	wctx, stopWatch := context.WithCancel(t.Context())
	defer stopWatch()
	events := admin.Watch(wctx, "/svc/a")

	writeFiles(t, dir, map[string]string{
		"conf.d/a.toml": registerTable("/svc/a", "a2", app.URL),
		"conf.d/c.toml": registerTable("/svc/c", "c1", app.URL),
	})
	if err := os.Remove(filepath.Join(dir, "conf.d/b.toml")); err != nil {
		t.Fatal(err)
	}
	d.signal(t, syscall.SIGHUP)
	waitKeys("a changed, b gone, c added", map[string]string{"/svc/a": "a2", "/svc/c": "c1"})
	stopWatch()
	var seen []string
	for wr := range events {
		for _, ev := range wr.Events {
			seen = append(seen, ev.Type.String()+" "+string(ev.Kv.Value))
		}
	}
	if slices.Contains(seen, "DELETE ") || !slices.Contains(seen, "PUT a2") {
		t.Errorf("events on /svc/a across the reload: %q, want a put of a2 and no delete", seen)
	}
	if log := d.log.String(); !strings.Contains(log, "registrations reloaded added=1 changed=1 removed=1 unchanged=0") {
		t.Errorf("log does not report the reload:\n%s", log)
	}

	// A table that does not load: the registrations in use stay.
	writeFiles(t, dir, map[string]string{"conf.d/c.toml": "[register]\nkey = 3\n"})
	if err := os.Remove(filepath.Join(dir, "conf.d/a.toml")); err != nil {
		t.Fatal(err)
	}
	d.signal(t, syscall.SIGHUP)
	waitFor(t, "the refused reload logged", func() (bool, string) {
		log := d.log.String()
		return strings.Contains(log, "registrations not reloaded, the ones in use stay") && strings.Contains(log, "c.toml"), log
	})
	time.Sleep(500 * time.Millisecond) // a reload that went wrong would have acted by now
	if got := keys(); fmt.Sprint(got) != fmt.Sprint(map[string]string{"/svc/a": "a2", "/svc/c": "c1"}) {
		t.Errorf("after a refused reload: %v, want both kept", got)
	}
}

// consulTable is a conf.d [register] table for Consul service web, ID id,
// with tags, checked by an HTTP GET of url (rise 1).
func consulTable(id, tags, url string) string {
	return "[register]\nservice = \"web\"\nid = \"" + id + "\"\naddress = \"127.0.0.1\"\nport = 8080\ntags = [" + tags + "]\nttl = \"5s\"\ndrain = \"0s\"\n" +
		"[register.check]\nhttp = \"" + url + "\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1\n"
}

// TestRegisterSIGHUPConsul: on SIGHUP a service whose tags changed is
// registered again with them while its check stays passing; a removed
// table's service is deregistered and a new one's registered.
func TestRegisterSIGHUPConsul(t *testing.T) {
	s := testserver.Consul(t, testserver.ConsulOptions{Dev: true})
	admin := consulAdmin(t, s)
	app := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer app.Close()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"conf.d/a.toml": consulTable("web-1", `"v1"`, app.URL),
		"conf.d/b.toml": consulTable("web-2", `"v1"`, app.URL),
	})
	d := startConfitDaemon(t, "-backend", "consul", "-node", s.Addr(), "-confdir", dir)
	defer d.stop(t)
	services := func() string {
		entries, _, err := admin.Health().Service("web", "", false, nil)
		if err != nil {
			return "error: " + err.Error()
		}
		var out []string
		for _, e := range entries {
			out = append(out, fmt.Sprintf("%s%v:%s", e.Service.ID, e.Service.Tags, e.Checks.AggregatedStatus()))
		}
		slices.Sort(out)
		return strings.Join(out, " ")
	}
	waitFor(t, "both passing", func() (bool, string) {
		got := services()
		return got == "web-1[v1]:passing web-2[v1]:passing", got
	})

	writeFiles(t, dir, map[string]string{
		"conf.d/a.toml": consulTable("web-1", `"v2"`, app.URL),
		"conf.d/c.toml": consulTable("web-3", `"v1"`, app.URL),
	})
	if err := os.Remove(filepath.Join(dir, "conf.d/b.toml")); err != nil {
		t.Fatal(err)
	}
	d.signal(t, syscall.SIGHUP)
	var seen []string
	waitFor(t, "web-1 retagged, web-2 gone, web-3 added", func() (bool, string) {
		got := services()
		seen = append(seen, got)
		return got == "web-1[v2]:passing web-3[v1]:passing", got
	})
	for _, st := range seen {
		if !strings.Contains(st, "web-1[v1]:passing") && !strings.Contains(st, "web-1[v2]:passing") {
			t.Errorf("web-1 left the passing pool during the reload: %q", seen)
			break
		}
	}
}

// TestRegisterSIGHUPNoneAtStart: a confit started without [register]
// tables does not start registering on SIGHUP; it says that the tables
// now in conf.d run after a restart.
func TestRegisterSIGHUPNoneAtStart(t *testing.T) {
	etcd := testserver.Etcd(t, testserver.EtcdOptions{})
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"conf.d/app.toml":    "[template]\nsrc = \"app.tmpl\"\ndest = \"" + filepath.Join(dir, "app.conf") + "\"\nkeys = [\"/app\"]\n",
		"templates/app.tmpl": "x\n",
	})
	d := startConfitDaemon(t, "-backend", "etcd", "-node", etcd.Endpoint(), "-confdir", dir)
	defer d.stop(t)
	waitFile(t, filepath.Join(dir, "app.conf"), "x\n")
	writeFiles(t, dir, map[string]string{"conf.d/reg.toml": registerTable("/svc/a", "a1", "http://127.0.0.1:1/")})
	d.signal(t, syscall.SIGHUP)
	waitFor(t, "the restart asked for", func() (bool, string) {
		log := d.log.String()
		return strings.Contains(log, "conf.d has [register] tables now, but confit started without any: they run after a restart") && strings.Contains(log, "reg.toml"), log
	})
	if strings.Contains(d.log.String(), "registrations not reloaded") {
		t.Errorf("a confit without registrations reports registrations not reloaded:\n%s", d.log.String())
	}
}
