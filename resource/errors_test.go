package resource

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/confit-dev/confit/template"
)

// TestRenderErrorMessages checks the exact messages of a render: the
// template's path once, and for a missing key the store key behind a
// prefix and whether the key lies outside the resource's keys.
func TestRenderErrorMessages(t *testing.T) {
	tests := []struct {
		name, prefix, tmpl, want string
	}{
		{name: "outside the keys", tmpl: `{{getv "/db/host"}}`,
			want: `resource web.toml: render TMPL:1:2: executing "web.tmpl" at <getv "/db/host">: error calling getv: key does not exist: /db/host (not under this resource's keys [/web])`},
		{name: "under the keys", tmpl: `{{getv "/web/nope"}}`,
			want: `resource web.toml: render TMPL:1:2: executing "web.tmpl" at <getv "/web/nope">: error calling getv: key does not exist: /web/nope`},
		{name: "prefix, under the keys", prefix: "/app", tmpl: `{{getv "/web/a"}}`,
			want: `resource web.toml: render TMPL:1:2: executing "web.tmpl" at <getv "/web/a">: error calling getv: key does not exist: /web/a (store key /app/web/a)`},
		{name: "prefix, outside the keys", prefix: "/app", tmpl: `{{getv "/a"}}`,
			want: `resource web.toml: render TMPL:1:2: executing "web.tmpl" at <getv "/a">: error calling getv: key does not exist: /a (store key /app/a, not under this resource's keys [/app/web])`},
		{name: "get", tmpl: `{{(get "/db").Value}}`,
			want: `resource web.toml: render TMPL:1:3: executing "web.tmpl" at <get "/db">: error calling get: key does not exist: /db (not under this resource's keys [/web])`},
		{name: "not a missing key", tmpl: `{{atoi (getv "/web/port")}}`,
			want: `resource web.toml: render TMPL:1:2: executing "web.tmpl" at <atoi (getv "/web/port")>: error calling atoi: value of /web/port (6 bytes) is not an integer (invalid syntax)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := confDir(t, map[string]string{
				"conf.d/web.toml":    "[template]\nsrc = \"web.tmpl\"\ndest = \"/nonexistent/web.conf\"\nkeys = [\"/web\"]\n",
				"templates/web.tmpl": tc.tmpl,
			})
			r, err := Load(filepath.Join(dir, "conf.d", "web.toml"), Options{ConfDir: dir, Prefix: tc.prefix})
			if err != nil {
				t.Fatal(err)
			}
			kvs := map[string]string{"/web/port": "s3cr3t", "/app/web/port": "s3cr3t", "/db/host": "h", "/app/a": "a"}
			_, _, err = r.Render(kvs)
			want := strings.ReplaceAll(tc.want, "TMPL", r.Src)
			if err == nil || err.Error() != want {
				t.Errorf("got  %v\nwant %s", err, want)
			}
			if strings.Contains(tc.want, "does not exist") && !errors.Is(err, template.ErrNotExist) {
				t.Errorf("%v does not wrap template.ErrNotExist", err)
			}
		})
	}
}

// TestParseErrorMessage checks that a parse error names the template's
// path once, at load and at a deferred parse.
func TestParseErrorMessage(t *testing.T) {
	dir := confDir(t, map[string]string{
		"conf.d/web.toml":    "[template]\nsrc = \"web.tmpl\"\ndest = \"/nonexistent/web.conf\"\nkeys = [\"/web\"]\n",
		"templates/web.tmpl": "a\nb\n{{nope}}\n",
	})
	file := filepath.Join(dir, "conf.d", "web.toml")
	src := filepath.Join(dir, "templates", "web.tmpl")
	_, err := Load(file, Options{ConfDir: dir})
	if want := file + `: parse ` + src + `:3: function "nope" not defined`; err == nil || err.Error() != want {
		t.Errorf("load: got  %v\nwant %s", err, want)
	}
	r, err := Load(file, Options{ConfDir: dir, DeferParse: true})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = r.Render(nil)
	if want := `resource web.toml: parse ` + src + `:3: function "nope" not defined`; err == nil || err.Error() != want {
		t.Errorf("deferred: got  %v\nwant %s", err, want)
	}
}
