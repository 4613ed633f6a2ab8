package register

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func decodeRegister(t *testing.T, data string) (*Registration, error) {
	t.Helper()
	var raw struct {
		Register map[string]any `toml:"register"`
	}
	if _, err := toml.Decode(data, &raw); err != nil {
		t.Fatalf("toml: %v", err)
	}
	return FromTable("web.toml", []byte(data), raw.Register, nil)
}

func TestFromTable(t *testing.T) {
	r, err := decodeRegister(t, `
[register]
service = "web"
address = "10.0.0.5"
port = 8080
tags = ["blue"]
meta = {version = "1.4"}
ttl = "20s"
drain = "0s"
deregister_critical_after = "2m"
flap_limit = 3
flap_window = "1m"
[register.check]
http = "http://127.0.0.1:8080/health"
status = 204
interval = "1s"
timeout = "500ms"
rise = 1
fall = 4
`)
	if err != nil {
		t.Fatal(err)
	}
	d := r.WithDefaults()
	want := Registration{Name: "web.toml", Service: "web", ID: "web-10.0.0.5-8080", Address: "10.0.0.5", Port: 8080,
		Tags: []string{"blue"}, Meta: map[string]string{"version": "1.4"}, TTL: 20 * time.Second, Drain: 0,
		DeregisterAfter: 2 * time.Minute, FlapLimit: 3, FlapWindow: time.Minute,
		Check: Check{HTTP: "http://127.0.0.1:8080/health", Status: 204, Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 1, Fall: 4}}
	if d.ID != want.ID || d.Drain != 0 || d.TTL != want.TTL || !reflect.DeepEqual(d.Check, want.Check) || d.FlapLimit != 3 || d.Meta["version"] != "1.4" || d.DeregisterAfter != want.DeregisterAfter {
		t.Errorf("got %+v\nwant %+v", d, want)
	}
	if err := d.Validate("consul"); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestFromTableErrors(t *testing.T) {
	for _, tc := range []struct{ name, data, want string }{
		{"unknown key", "[register]\nkey = \"/a\"\nkye = 1\n", "web.toml:3: register.kye: unknown key (known: address, check, "},
		{"wrong type", "[register]\nport = \"80\"\n", "web.toml:2: register.port: want an integer, not string"},
		{"bad duration", "[register]\n[register.check]\ninterval = \"fast\"\n", `web.toml:3: register.check.interval: "fast": want a duration`},
		{"check not a table", "[register]\ncheck = \"http\"\n", "web.toml:2: register.check: want a table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeRegister(t, tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := Registration{Key: "/services/web/a", Service: "web", Check: Check{TCP: "127.0.0.1:80"}}
	for _, tc := range []struct {
		name    string
		backend string
		edit    func(r *Registration)
		want    string
	}{
		{"ok etcd", "etcd", func(*Registration) {}, ""},
		{"ok consul", "consul", func(*Registration) {}, ""},
		{"no check", "etcd", func(r *Registration) { r.Check.TCP = "" }, "check: want one of http, tcp or cmd"},
		{"two checks", "etcd", func(r *Registration) { r.Check.Cmd = []string{"true"} }, "want only one of"},
		{"timeout over interval", "etcd", func(r *Registration) { r.Check.Interval, r.Check.Timeout = time.Second, 2*time.Second }, "check.timeout: 2s"},
		{"short ttl", "etcd", func(r *Registration) { r.TTL = time.Second }, "ttl: 1s: want at least 3s"},
		{"fractional ttl", "etcd", func(r *Registration) { r.TTL = 3500 * time.Millisecond }, "want whole seconds"},
		{"relative key", "etcd", func(r *Registration) { r.Key = "services/a" }, `key: "services/a": want an absolute clean path`},
		{"dot key", "etcd", func(r *Registration) { r.Key = "/services/../a" }, "want an absolute clean path"},
		{"no key", "etcd", func(r *Registration) { r.Key = "" }, "key: required with the etcd backend"},
		{"no service", "consul", func(r *Registration) { r.Service = "" }, "service: required with the consul backend"},
		{"consul minimum", "consul", func(r *Registration) { r.DeregisterAfter = 30 * time.Second }, "Consul's minimum is 1m0s"},
		{"bad url, password hidden", "etcd", func(r *Registration) { r.Check.TCP, r.Check.HTTP = "", "ftp://u:hunter2@h/" }, `check.http: "ftp://u:xxxxx@h/"`},
		{"file backend", "file", func(*Registration) {}, `backend "file": register mode supports etcd and consul`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			tc.edit(&r)
			r = r.WithDefaults()
			err := r.Validate(tc.backend)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestProbes: each check kind passes and fails as documented, and a
// failing check's message never carries the URL's password.
func TestProbes(t *testing.T) {
	h := newHealthServer(t)
	client := newHTTPClient()
	ctx := context.Background()
	if err := probeHTTP(ctx, client, h.srv.URL, 0); err != nil {
		t.Errorf("http 200: %v", err)
	}
	if err := probeHTTP(ctx, client, h.srv.URL, 204); err == nil || !strings.Contains(err.Error(), "status 200, want 204") {
		t.Errorf("http want 204: %v", err)
	}
	h.ok.Store(false)
	withPass := strings.Replace(h.srv.URL, "http://", "http://u:hunter2@", 1)
	if err := probeHTTP(ctx, client, withPass, 0); err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "status 503") {
		t.Errorf("http 503: %v", err)
	}
	if err := probeTCP(ctx, strings.TrimPrefix(h.srv.URL, "http://")); err != nil {
		t.Errorf("tcp: %v", err)
	}
	h.srv.Close()
	if err := probeTCP(ctx, strings.TrimPrefix(h.srv.URL, "http://")); err == nil {
		t.Error("tcp to a closed port passed")
	}
	if err := probeCmd(ctx, []string{"true"}); err != nil {
		t.Errorf("cmd true: %v", err)
	}
	if err := probeCmd(ctx, []string{"sh", "-c", "echo not ready; exit 3"}); err == nil || !strings.Contains(err.Error(), "exit status 3: not ready") {
		t.Errorf("cmd exit 3: %v", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := probeCmd(tctx, []string{"sleep", "30"}); err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("cmd timeout: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cmd timeout took %v", d)
	}
}

// FuzzFromTable: any TOML document's [register] table either decodes or is
// an error naming the file; a decoded one validates without panicking.
func FuzzFromTable(f *testing.F) {
	f.Add("[register]\nkey = \"/services/web/a\"\n[register.check]\ntcp = \"127.0.0.1:80\"\n")
	f.Add("[register]\nservice = \"web\"\nport = 8080\ntags = [\"a\"]\nmeta = {a = \"b\"}\n[register.check]\nhttp = \"http://127.0.0.1/\"\nrise = 1\n")
	f.Fuzz(func(t *testing.T, data string) {
		var raw struct {
			Register map[string]any `toml:"register"`
		}
		if _, err := toml.Decode(data, &raw); err != nil || raw.Register == nil {
			return
		}
		r, err := FromTable("web.toml", []byte(data), raw.Register, nil)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "web.toml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		d := r.WithDefaults()
		_ = d.Validate("etcd")
		_ = d.Validate("consul")
	})
}
