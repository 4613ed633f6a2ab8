package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/resource"
)

// required are the settings a backend cannot be built without, given
// alongside the one under test so that its Validate passes.
var required = map[string]backends.Settings{
	"file": {"file": {"/values.yaml"}},
}

// samples are test values for the settings that take one of a few words.
var samples = map[string][]string{
	"redis-watch": {"keyspace"},
}

// sample returns test values for a setting of kind k: two for a list, so
// that repeating is tested too.
func sample(s backends.Setting) []string {
	if v, ok := samples[s.Name]; ok {
		return v
	}
	switch s.Kind {
	case backends.KindBool:
		return []string{"true"}
	case backends.KindInt:
		return []string{"7"}
	case backends.KindDuration:
		return []string{"3s"}
	case backends.KindList:
		return []string{"v1-" + s.Name, "v2-" + s.Name}
	}
	return []string{"v-" + s.Name}
}

// tomlValue spells vals as a TOML value of the setting's kind.
func tomlValue(s backends.Setting, vals []string) string {
	switch s.Kind {
	case backends.KindBool, backends.KindInt:
		return vals[0]
	case backends.KindList:
		q := make([]string, len(vals))
		for i, v := range vals {
			q[i] = fmt.Sprintf("%q", v)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	return fmt.Sprintf("%q", vals[0])
}

// TestBackendSettingsEveryPath walks every registered backend's declared
// settings and sets each through the four paths a user has — a flag, a
// CONFIT_* variable, the config file and a resource's [backend] table —
// and checks that the value reaches the options the backend's factory is
// built with (backends.Decode, which backends.New hands the factory).
func TestBackendSettingsEveryPath(t *testing.T) {
	for _, name := range backends.Names() {
		for _, s := range backends.SettingsOf(name) {
			want := sample(s)
			t.Run(name+"/"+s.Name, func(t *testing.T) {
				dir := t.TempDir()
				base := []string{"-backend", name, "-config-file", os.DevNull}
				var reqArgs []string
				reqEnv := map[string]string{}
				reqTOML := ""
				for rn, rv := range required[name] {
					if rn == s.Name {
						continue
					}
					for _, v := range rv {
						reqArgs = append(reqArgs, "-"+rn, v)
					}
					reqEnv[envName(rn)] = strings.Join(rv, ",")
					reqTOML += fmt.Sprintf("%s = %q\n", strings.ReplaceAll(rn, "-", "_"), rv[0])
				}
				noEnv := func(string) string { return "" }

				paths := map[string]func(t *testing.T) backends.Spec{
					"flag": func(t *testing.T) backends.Spec {
						args := append(append([]string{}, base...), reqArgs...)
						for _, v := range want {
							args = append(args, "-"+s.Name+"="+v)
						}
						o, err := parseOptions(args, noEnv, func() []string { return nil }, io.Discard)
						if err != nil {
							t.Fatal(err)
						}
						return o.backendSpec(noEnv)
					},
					"env": func(t *testing.T) backends.Spec {
						env := map[string]string{envName(s.Name): strings.Join(want, ",")}
						for k, v := range reqEnv {
							env[k] = v
						}
						getenv := func(k string) string { return env[k] }
						o, err := parseOptions([]string{"-backend", name, "-config-file", os.DevNull}, getenv, func() []string { return nil }, io.Discard)
						if err != nil {
							t.Fatal(err)
						}
						return o.backendSpec(getenv)
					},
					"config file": func(t *testing.T) backends.Spec {
						cfg := filepath.Join(dir, "confd.toml")
						data := fmt.Sprintf("backend = %q\n%s = %s\n%s", name, s.TableKey(), tomlValue(s, want), reqTOML)
						if err := os.WriteFile(cfg, []byte(data), 0o644); err != nil {
							t.Fatal(err)
						}
						o, err := parseOptions([]string{"-config-file", cfg}, noEnv, func() []string { return nil }, io.Discard)
						if err != nil {
							t.Fatal(err)
						}
						return o.backendSpec(noEnv)
					},
					"[backend] table": func(t *testing.T) backends.Spec {
						confd := filepath.Join(dir, "confdir")
						for _, d := range []string{"conf.d", "templates"} {
							if err := os.MkdirAll(filepath.Join(confd, d), 0o755); err != nil {
								t.Fatal(err)
							}
						}
						res := fmt.Sprintf("[template]\nsrc = \"t.tmpl\"\ndest = %q\n[backend]\nbackend = %q\n%s = %s\n%s",
							filepath.Join(dir, "out"), name, s.TableKey(), tomlValue(s, want), reqTOML)
						if err := os.WriteFile(filepath.Join(confd, "conf.d", "r.toml"), []byte(res), 0o644); err != nil {
							t.Fatal(err)
						}
						if err := os.WriteFile(filepath.Join(confd, "templates", "t.tmpl"), []byte("x"), 0o644); err != nil {
							t.Fatal(err)
						}
						rs, errs := resource.LoadDir(resource.Options{ConfDir: confd})
						if len(errs) > 0 || len(rs) != 1 || rs[0].Backend == nil {
							t.Fatalf("LoadDir: %v (%d resources)", errs, len(rs))
						}
						return *rs[0].Backend
					},
				}
				for path, get := range paths {
					spec := get(t)
					opts, err := backends.Decode(spec)
					if err != nil {
						t.Fatalf("%s: Decode: %v", path, err)
					}
					got := backends.SpecOf(name, opts).Settings[s.Name]
					if !reflect.DeepEqual(got, want) {
						t.Errorf("%s: the backend got %s = %q, want %q", path, s.Name, got, want)
					}
				}
			})
		}
	}
}

// TestBackendSettingsDeclared: every backend this build has declares its
// settings in a way the flags can carry, and every declared setting is a
// flag with the declared help.
func TestBackendSettingsDeclared(t *testing.T) {
	o := &options{}
	fs := newFlagSet(o, io.Discard)
	for _, s := range backends.AllSettings() {
		f := fs.Lookup(s.Name)
		if f == nil {
			t.Errorf("setting %q (of %v) has no flag", s.Name, s.Backends)
			continue
		}
		if f.Usage != s.Usage || s.Usage == "" {
			t.Errorf("-%s: usage %q, want the declaration's %q (not empty)", s.Name, f.Usage, s.Usage)
		}
	}
	for _, name := range []string{"etcd", "consul", "file"} {
		if backends.Check(name) == nil && len(backends.SettingsOf(name)) == 0 {
			t.Errorf("backend %s declares no settings", name)
		}
	}
}
