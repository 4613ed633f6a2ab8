package resource

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confit-dev/confit/backends"
)

func TestDecodeConfigEveryField(t *testing.T) {
	const data = `
[template]
src = "app.tmpl"
dest = "/etc/app.conf"
keys = ["/db", "/cache"]
prefix = "/app"
uid = 10
gid = 20
owner = "nobody"
group = "nogroup"
mode = "0600"
check_cmd = "app -t {{.src}}"
reload_cmd = "app -s reload"
check_cmd_timeout = "5s"
reload_cmd_timeout = "1m"
wait = "2s:10s"
rollback = false

[backend]
backend = "consul"
nodes = ["https://a:8500", "https://b:8500"]
scheme = "https"
client_cert = "c.pem"
client_key = "k.pem"
client_cakeys = "ca.pem"
client_insecure = true
basic_auth = true
username = "u"
password = "p"
auth_token = "tok"
srv_domain = "example.com"
srv_record = "_consul._tcp.example.com"
datacenter = "dc1"
consul_stale = true
`
	c, err := DecodeConfig("conf.d/app.toml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	ten, twenty, no := 10, 20, false
	wantT := TemplateConfig{
		Src: "app.tmpl", Dest: "/etc/app.conf", Keys: []string{"/db", "/cache"}, Prefix: "/app",
		UID: &ten, GID: &twenty, Owner: "nobody", Group: "nogroup", Mode: "0600",
		CheckCmd: "app -t {{.src}}", ReloadCmd: "app -s reload",
		CheckCmdTimeout: "5s", ReloadCmdTimeout: "1m", Wait: "2s:10s", Rollback: &no,
	}
	if !reflect.DeepEqual(c.Template, wantT) {
		t.Errorf("template:\ngot  %+v\nwant %+v", c.Template, wantT)
	}
	wantB := &backends.Spec{Backend: "consul", Settings: backends.Settings{
		"node": {"https://a:8500", "https://b:8500"}, "scheme": {"https"},
		"client-cert": {"c.pem"}, "client-key": {"k.pem"}, "client-ca-keys": {"ca.pem"}, "client-insecure": {"true"},
		"basic-auth": {"true"}, "username": {"u"}, "password": {"p"}, "auth-token": {"tok"},
		"srv-domain": {"example.com"}, "srv-record": {"_consul._tcp.example.com"},
		"datacenter": {"dc1"}, "consul-stale": {"true"},
	}}
	if !reflect.DeepEqual(c.spec, wantB) {
		t.Errorf("backend:\ngot  %+v\nwant %+v", c.spec, wantB)
	}
}

func TestDecodeConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []string // substrings of the error
		line int
		key  string
	}{
		{
			name: "unknown key",
			data: "[template]\nsrc = \"a\"\ndest = \"b\"\nchek_cmd = \"true\"\n",
			want: []string{`conf.d/app.toml:4: unknown key "template.chek_cmd"`},
			line: 4,
		},
		{
			name: "unknown table",
			data: "[template]\nsrc = \"a\"\n[templat]\nx = 1\ny = 2\n",
			want: []string{`unknown key "templat"`},
			line: 3,
		},
		{
			name: "several unknown keys",
			data: "[template]\nsrc = \"a\"\nfoo = 1\nbar = 2\n",
			want: []string{`unknown key "template.foo"`, `also unknown: "template.bar"`},
			line: 3,
		},
		{
			name: "unknown backend key",
			data: "[template]\nsrc = \"a\"\n[backend]\nnodez = [\"x\"]\n",
			want: []string{`unknown key "backend.nodez"`},
			line: 4,
		},
		{
			name: "two spellings of one key",
			data: "[template]\nsrc = \"a\"\nSrc = \"b\"\n",
			want: []string{`key "template.Src" is also set as "template.src"`},
			line: 3,
		},
		{
			name: "typo in a capitalised key",
			data: "[template]\nSrc = \"a\"\nDestt = \"b\"\n",
			want: []string{`unknown key "template.Destt"`},
			line: 3,
		},
		{
			name: "syntax error",
			data: "[template]\nsrc = \"a\"\n\ndest = /etc/x\n",
			want: []string{"conf.d/app.toml:4: "},
			line: 4,
		},
		{
			name: "unterminated string",
			data: "[template]\nsrc = \"a\nmode = \"0644\"\n",
			want: []string{"conf.d/app.toml:2: "},
			line: 2,
		},
		{
			name: "wrong type",
			data: "[template]\nsrc = \"a\"\n\nuid = \"root\"\n",
			want: []string{"conf.d/app.toml:4: template.uid: incompatible types"},
			line: 4,
			key:  "template.uid",
		},
		{
			name: "wrong type in list",
			data: "[template]\nsrc = \"a\"\n[backend]\nfile = [1]\n",
			want: []string{"backend.file", "want a string or an array of strings"},
			line: 4,
			key:  "backend.file",
		},
		{
			name: "setting of another backend",
			data: "[template]\nsrc = \"a\"\n[backend]\nbackend = \"file\"\nfile = \"v.yaml\"\ndatacenter = \"dc1\"\n",
			want: []string{`unknown key "backend.datacenter" (backend "file" has: file, filter)`},
			line: 6,
		},
		{
			name: "no backend name",
			data: "[template]\nsrc = \"a\"\n[backend]\nnodes = [\"x\"]\n",
			want: []string{`backend: missing backend = "NAME"`},
			line: 3,
			key:  "backend",
		},
		{
			name: "unknown backend",
			data: "[template]\nsrc = \"a\"\n[backend]\nbackend = \"etcd4\"\n",
			want: []string{`backend.backend: unknown backend "etcd4"`},
			line: 4,
			key:  "backend.backend",
		},
		{
			name: "backend's own check",
			data: "[template]\nsrc = \"a\"\n[backend]\nbackend = \"file\"\n",
			want: []string{"backend: file: no file given"},
			line: 3,
			key:  "backend",
		},
		{
			name: "wrong type of bool",
			data: "[template]\nsrc = \"a\"\n[backend]\nbackend = \"consul\"\nconsul_stale = \"yes\"\n",
			want: []string{"backend.consul_stale: want true or false"},
			line: 5,
			key:  "backend.consul_stale",
		},
		{
			name: "no template table",
			data: "# nothing\n",
			want: []string{"conf.d/app.toml: missing [template] table"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeConfig("conf.d/app.toml", []byte(tc.data))
			if err == nil {
				t.Fatal("got no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("error %T is not a *LoadError", err)
			}
			if le.Line != tc.line {
				t.Errorf("line: got %d, want %d (%v)", le.Line, tc.line, err)
			}
			if tc.key != "" && le.Key != tc.key {
				t.Errorf("key: got %q, want %q", le.Key, tc.key)
			}
		})
	}
}

// TestDecodeConfigAnyCase reads keys spelt with capitals as confd does
// (BurntSushi/toml matches field names case-insensitively), each with a
// warning naming the file, the line, the key and its lower-case spelling.
func TestDecodeConfigAnyCase(t *testing.T) {
	data := "[Template]\nSrc = \"web.tmpl\"\nDest = \"/etc/web.conf\"\nKeys = [\"/web\"]\n" +
		"Prefix = \"/app\"\nMode = \"0600\"\nCheck_cmd = \"check {{.src}}\"\nReload_CMD = \"reload\"\n"
	c, err := DecodeConfig("conf.d/web.toml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := TemplateConfig{Src: "web.tmpl", Dest: "/etc/web.conf", Keys: []string{"/web"}, Prefix: "/app",
		Mode: "0600", CheckCmd: "check {{.src}}", ReloadCmd: "reload"}
	if !reflect.DeepEqual(c.Template, want) {
		t.Errorf("template: got %+v, want %+v", c.Template, want)
	}
	wantWarn := []string{
		`conf.d/web.toml:1: key "Template" read as "template", as confd reads it; write it in lower case`,
		`conf.d/web.toml:2: key "Template.Src" read as "template.src", as confd reads it; write it in lower case`,
		`conf.d/web.toml:3: key "Template.Dest" read as "template.dest", as confd reads it; write it in lower case`,
		`conf.d/web.toml:4: key "Template.Keys" read as "template.keys", as confd reads it; write it in lower case`,
		`conf.d/web.toml:5: key "Template.Prefix" read as "template.prefix", as confd reads it; write it in lower case`,
		`conf.d/web.toml:6: key "Template.Mode" read as "template.mode", as confd reads it; write it in lower case`,
		`conf.d/web.toml:7: key "Template.Check_cmd" read as "template.check_cmd", as confd reads it; write it in lower case`,
		`conf.d/web.toml:8: key "Template.Reload_CMD" read as "template.reload_cmd", as confd reads it; write it in lower case`,
	}
	if !reflect.DeepEqual(c.Warnings, wantWarn) {
		t.Errorf("warnings:\ngot  %q\nwant %q", c.Warnings, wantWarn)
	}
	c, err = DecodeConfig("x.toml", []byte("[template]\nsrc = \"a\"\n"))
	if err != nil || c.Warnings != nil {
		t.Errorf("lower case: got warnings %q, error %v; want none", c.Warnings, err)
	}
}

func TestDecodeConfigStringList(t *testing.T) {
	for _, tc := range []struct{ table, setting, want string }{
		{"backend = \"file\"\nfile = \"one.yaml\"\n", "file", "one.yaml"},
		{"backend = \"consul\"\nnodes = \"n:1\"\n", "node", "n:1"},
	} {
		c, err := DecodeConfig("x.toml", []byte("[template]\nsrc=\"a\"\n[backend]\n"+tc.table))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := c.spec.Settings[tc.setting], []string{tc.want}; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %q, want %q", tc.setting, got, want)
		}
	}
}

func TestParseMode(t *testing.T) {
	tests := []struct {
		in      string
		want    os.FileMode
		wantErr bool
	}{
		{in: "644", want: 0o644},
		{in: "0644", want: 0o644},
		{in: "00644", want: 0o644},
		{in: "600", want: 0o600},
		{in: "0", want: 0},
		{in: "4755", want: 0o755 | os.ModeSetuid},
		{in: "2750", want: 0o750 | os.ModeSetgid},
		{in: "1777", want: 0o777 | os.ModeSticky},
		{in: "", wantErr: true},
		{in: "0x1a4", wantErr: true},
		{in: "0o644", wantErr: true},
		{in: "rw-r--r--", wantErr: true},
		{in: "648", wantErr: true},
		{in: "-644", wantErr: true},
		{in: "17777", wantErr: true},
		{in: " 644", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseMode(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseMode(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Errorf("parseMode(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseWait(t *testing.T) {
	tests := []struct {
		in      string
		want    Wait
		wantErr bool
	}{
		{in: "", want: Wait{}},
		{in: "2s:10s", want: Wait{2 * time.Second, 10 * time.Second}},
		{in: "2s", want: Wait{2 * time.Second, 8 * time.Second}},
		{in: "500ms:500ms", want: Wait{500 * time.Millisecond, 500 * time.Millisecond}},
		{in: "10s:2s", wantErr: true},
		{in: "2", wantErr: true},
		{in: "2s:x", wantErr: true},
		{in: "-1s", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseWait(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseWait(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("ParseWait(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

// loadOne writes toml as conf.d/app.toml (and a template app.tmpl) and loads it.
func loadOne(t *testing.T, toml string, opts Options) (*Resource, error) {
	t.Helper()
	dir := confDir(t, map[string]string{
		"conf.d/app.toml":    toml,
		"templates/app.tmpl": `{{getv "/x"}}`,
	})
	opts.ConfDir = dir
	return Load(filepath.Join(dir, "conf.d", "app.toml"), opts)
}

func TestLoad(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Skip(err)
	}
	myUID, _ := strconv.Atoi(me.Uid)
	myGID, _ := strconv.Atoi(me.Gid)
	grp, err := user.LookupGroupId(me.Gid)
	if err != nil {
		t.Skip(err)
	}
	const base = "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/x\"\n"
	tests := []struct {
		name  string
		toml  string
		opts  Options
		check func(t *testing.T, r *Resource)
		err   string
	}{
		{
			name: "defaults",
			toml: base,
			check: func(t *testing.T, r *Resource) {
				if r.UID != -1 || r.GID != -1 || r.ModeSet || !r.AutoRollback || r.Backend != nil {
					t.Errorf("got %+v", r)
				}
				if r.CheckCmdTimeout != DefaultCmdTimeout || r.ReloadCmdTimeout != DefaultCmdTimeout {
					t.Errorf("timeouts: got %v, %v", r.CheckCmdTimeout, r.ReloadCmdTimeout)
				}
				if r.Prefix != "/" || r.Name != "app.toml" || !filepath.IsAbs(r.File) {
					t.Errorf("prefix %q name %q file %q", r.Prefix, r.Name, r.File)
				}
			},
		},
		{
			name: "mode 644 is octal",
			toml: base + "mode = \"644\"\n",
			check: func(t *testing.T, r *Resource) {
				if !r.ModeSet || r.Mode != 0o644 {
					t.Errorf("mode: got %v", r.Mode)
				}
			},
		},
		{
			name: "mode 0644",
			toml: base + "mode = \"0644\"\n",
			check: func(t *testing.T, r *Resource) {
				if r.Mode != 0o644 {
					t.Errorf("mode: got %v", r.Mode)
				}
			},
		},
		{
			name: "options timeout is the default",
			toml: base + "check_cmd_timeout = \"3s\"\n",
			opts: Options{CmdTimeout: 7 * time.Second},
			check: func(t *testing.T, r *Resource) {
				if r.CheckCmdTimeout != 3*time.Second || r.ReloadCmdTimeout != 7*time.Second {
					t.Errorf("timeouts: got %v, %v", r.CheckCmdTimeout, r.ReloadCmdTimeout)
				}
			},
		},
		{
			name: "owner and group names",
			toml: base + "owner = \"" + me.Username + "\"\ngroup = \"" + grp.Name + "\"\n",
			check: func(t *testing.T, r *Resource) {
				if r.UID != myUID || r.GID != myGID {
					t.Errorf("uid/gid: got %d/%d, want %d/%d", r.UID, r.GID, myUID, myGID)
				}
			},
		},
		{
			name: "uid and gid win over owner and group",
			toml: base + "owner = \"" + me.Username + "\"\ngroup = \"" + grp.Name + "\"\nuid = 4242\ngid = 4343\n",
			check: func(t *testing.T, r *Resource) {
				if r.UID != 4242 || r.GID != 4343 {
					t.Errorf("uid/gid: got %d/%d", r.UID, r.GID)
				}
			},
		},
		{
			name: "rollback false, wait, backend",
			toml: base + "rollback = false\nwait = \"1s\"\n[backend]\nbackend = \"file\"\nfile = [\"/a.yaml\"]\n",
			check: func(t *testing.T, r *Resource) {
				if r.AutoRollback || r.Wait != (Wait{time.Second, 4 * time.Second}) {
					t.Errorf("rollback %v wait %+v", r.AutoRollback, r.Wait)
				}
				if r.Backend == nil || r.Backend.Backend != "file" || len(r.Backend.Settings["file"]) != 1 {
					t.Errorf("backend: got %+v", r.Backend)
				}
			},
		},
		{name: "missing src", toml: "[template]\ndest = \"/x\"\n", err: "app.toml: template.src: empty src template"},
		{name: "missing dest", toml: "[template]\nsrc = \"app.tmpl\"\n", err: "app.toml: template.dest: empty dest"},
		{name: "invalid mode", toml: base + "mode = \"rw\"\n", err: `template.mode: invalid mode "rw"`},
		{name: "mode too large", toml: base + "mode = \"77777\"\n", err: `template.mode: invalid mode`},
		{name: "invalid wait", toml: base + "wait = \"soon\"\n", err: `template.wait: invalid wait`},
		{name: "invalid timeout", toml: base + "reload_cmd_timeout = \"30\"\n", err: `template.reload_cmd_timeout: invalid duration "30"`},
		{name: "negative uid", toml: base + "uid = -5\n", err: `template.uid: invalid uid -5`},
		{name: "unknown owner", toml: base + "owner = \"no-such-user-xyz\"\n", err: `template.owner: unknown owner "no-such-user-xyz"`},
		{name: "unknown group", toml: base + "group = \"no-such-group-xyz\"\n", err: `template.group: unknown group`},
		{name: "bad check_cmd", toml: base + "check_cmd = \"x {{.source}}\"\n", err: `template.check_cmd: `},
		{name: "bad reload_cmd", toml: base + "reload_cmd = \"x {{\"\n", err: `template.reload_cmd: `},
		{name: "missing template", toml: "[template]\nsrc = \"nope.tmpl\"\ndest = \"/x\"\n", err: "nope.tmpl"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := loadOne(t, tc.toml, tc.opts)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, r)
		})
	}
}

func TestLoadTemplateParseError(t *testing.T) {
	dir := confDir(t, map[string]string{
		"conf.d/app.toml":    "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/x\"\n",
		"templates/app.tmpl": "line one\nline two\n{{getv \"/x\"\n",
	})
	file := filepath.Join(dir, "conf.d", "app.toml")
	_, err := Load(file, Options{ConfDir: dir})
	if err == nil {
		t.Fatal("got no error")
	}
	for _, want := range []string{file, "app.tmpl:3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestPrefix(t *testing.T) {
	tests := []struct {
		name       string
		prefix     string // resource's
		global     string
		keys       string
		wantPrefix string
		wantKeys   []string
	}{
		{name: "none", keys: `["/db", "cache/"]`, wantPrefix: "/", wantKeys: []string{"/db", "/cache"}},
		{name: "resource", prefix: "app", keys: `["/db", "//cache/"]`, wantPrefix: "/app", wantKeys: []string{"/app/db", "/app/cache"}},
		{name: "global replaces", prefix: "/app", global: "/other", keys: `["/db"]`, wantPrefix: "/other", wantKeys: []string{"/other/db"}},
		{name: "global without slash", global: "other/", keys: `["db"]`, wantPrefix: "/other", wantKeys: []string{"/other/db"}},
		{name: "root key", prefix: "/app/", keys: `["/"]`, wantPrefix: "/app", wantKeys: []string{"/app"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			toml := "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/x\"\nprefix = \"" + tc.prefix + "\"\nkeys = " + tc.keys + "\n"
			r, err := loadOne(t, toml, Options{Prefix: tc.global})
			if err != nil {
				t.Fatal(err)
			}
			if r.Prefix != tc.wantPrefix {
				t.Errorf("prefix: got %q, want %q", r.Prefix, tc.wantPrefix)
			}
			if !reflect.DeepEqual(r.Keys, tc.wantKeys) {
				t.Errorf("keys: got %q, want %q", r.Keys, tc.wantKeys)
			}
		})
	}
}

func TestLoadDir(t *testing.T) {
	ok := "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/x\"\n"
	dir := confDir(t, map[string]string{
		"conf.d/b.toml":        ok,
		"conf.d/a.toml":        ok,
		"conf.d/sub/c.toml":    ok,
		"conf.d/broken.toml":   ok + "mode = 0644\n\nbogus = = 1\n",
		"conf.d/README.md":     "not a resource",
		"templates/app.tmpl":   "x",
		"templates/other.tmpl": "y",
	})
	rs, errs := LoadDir(Options{ConfDir: dir})
	var names []string
	for _, r := range rs {
		names = append(names, r.Name)
	}
	if want := []string{"a.toml", "b.toml", "sub/c.toml"}; !reflect.DeepEqual(names, want) {
		t.Errorf("loaded %q, want %q", names, want)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), filepath.Join(dir, "conf.d", "broken.toml")+":4") {
		t.Errorf("errors: got %v, want one naming broken.toml:4", errs)
	}
}

func TestLoadDirMissing(t *testing.T) {
	dir := t.TempDir()
	_, errs := LoadDir(Options{ConfDir: dir})
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), filepath.Join(dir, "conf.d")) {
		t.Errorf("got %v, want an error naming the conf.d directory", errs)
	}
}

func TestDeferParse(t *testing.T) {
	dir := confDir(t, map[string]string{
		"conf.d/bad.toml":     "[template]\nsrc = \"bad.tmpl\"\ndest = \"/tmp/x\"\nkeys = [\"/a\"]\n",
		"templates/bad.tmpl":  "one\ntwo\n{{if}}{{end}}\n",
		"conf.d/open.toml":    "[template]\nsrc = \"open.tmpl\"\ndest = \"/tmp/w\"\nkeys = [\"/a\"]\n",
		"templates/open.tmpl": "{{getv \"/a\" }\n",
		"conf.d/ok.toml":      "[template]\nsrc = \"ok.tmpl\"\ndest = \"/tmp/y\"\nprefix = \"/p\"\nkeys = [\"/a\"]\n",
		"templates/ok.tmpl":   "[service]\na = {{getv \"/a\"}}\n",
		"conf.d/svc.toml":     "[template]\nsrc = \"svc.tmpl\"\ndest = \"/tmp/z\"\nkeys = [\"/a\"]\n",
		"templates/svc.tmpl":  "{{range service \"web\"}}{{.Address}}{{end}}\n",
	})
	opts := Options{ConfDir: dir, DeferParse: true}
	byName := map[string]*Resource{}
	rs, errs := LoadDir(opts)
	// An action that is not closed is parsed at load (the scan for
	// service calls cannot follow it), so that error comes at once.
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "open.tmpl:1") {
		t.Fatalf("load errors %v, want just open.tmpl's", errs)
	}
	for _, r := range rs {
		byName[r.Name] = r
	}

	// The syntax error comes with the render, naming file and line.
	if _, _, err := byName["bad.toml"].Render(map[string]string{"/a": "1"}); err == nil || !strings.Contains(err.Error(), "bad.tmpl:3") {
		t.Errorf("render of a broken deferred template: %v, want an error naming bad.tmpl:3", err)
	}
	// A deferred template renders like an eager one, every time.
	ok := byName["ok.toml"]
	if ok.tmpl != nil {
		t.Error("ok.tmpl was parsed at load")
	}
	for range 2 {
		out, _, err := ok.Render(map[string]string{"/p/a": "v"})
		if err != nil || string(out) != "[service]\na = v\n" {
			t.Errorf("Render = %q, %v", out, err)
		}
	}
	// A template that reads service discovery is parsed at load, so its
	// service keys are fetched.
	svc := byName["svc.toml"]
	if svc.tmpl == nil || !slices.Contains(svc.Keys, "/@service/web") {
		t.Errorf("svc.tmpl: parsed %v, keys %v; want parsed at load with its service key", svc.tmpl != nil, svc.Keys)
	}
}

// TestSharedTemplates: resources that render the same template file share
// one parse, eagerly or deferred, and still render each its own keys.
func TestSharedTemplates(t *testing.T) {
	files := map[string]string{
		"templates/shared.tmpl": "v={{getv \"/v\"}}\n",
		"templates/own.tmpl":    "own={{getv \"/v\"}}\n",
	}
	for i, name := range []string{"a", "b", "c"} {
		src := "shared.tmpl"
		if name == "c" {
			src = "own.tmpl"
		}
		files["conf.d/"+name+".toml"] = fmt.Sprintf("[template]\nsrc = %q\ndest = \"/tmp/%s\"\nprefix = \"/%d\"\nkeys = [\"/v\"]\n", src, name, i)
	}
	dir := confDir(t, files)
	kvs := map[string]string{"/0/v": "zero", "/1/v": "one", "/2/v": "two"}
	want := map[string]string{"a.toml": "v=zero\n", "b.toml": "v=one\n", "c.toml": "own=two\n"}
	for _, deferred := range []bool{false, true} {
		rs, errs := LoadDir(Options{ConfDir: dir, DeferParse: deferred})
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		byName := map[string]*Resource{}
		for _, r := range rs {
			byName[r.Name] = r
		}
		a, b, c := byName["a.toml"], byName["b.toml"], byName["c.toml"]
		if a.shared != b.shared || a.shared == c.shared {
			t.Fatalf("deferred=%v: a and b should share their template entry, c not", deferred)
		}
		var wg sync.WaitGroup
		for range 4 {
			for _, r := range rs {
				wg.Go(func() {
					out, _, err := r.Render(kvs)
					if err != nil || string(out) != want[r.Name] {
						t.Errorf("deferred=%v: %s rendered %q, %v; want %q", deferred, r.Name, out, err, want[r.Name])
					}
				})
			}
		}
		wg.Wait()
		ta, _ := a.template()
		tb, _ := b.template()
		if ta != tb {
			t.Errorf("deferred=%v: a and b render different parses of one template", deferred)
		}
		if deferred && c.shared.tmpl != nil {
			t.Error("a deferred template only c uses was kept after its render")
		}
	}
}
