package backends

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

type testOptions struct {
	Config
	Count   int           `setting:"test-count" default:"3" usage:"a count"`
	Every   time.Duration `setting:"test-every" usage:"a period"`
	Names   []string      `setting:"test-name" alias:"test_names" usage:"names"`
	NoFlag  string        // not a setting
	Require bool          `setting:"test-require" usage:"fail Validate unless test-name is given"`
}

func (o *testOptions) Validate() error {
	if o.Require && len(o.Names) == 0 {
		return errors.New("test: test-name is required")
	}
	return nil
}

func init() {
	Register("settings-test", func(_ context.Context, o *testOptions, _ *slog.Logger) (Backend, error) {
		return nil, nil
	})
}

func TestDecodeSettings(t *testing.T) {
	tests := []struct {
		name     string
		settings Settings
		want     testOptions
		err      string
	}{
		{name: "defaults", want: testOptions{Config: Config{Scheme: "http"}, Count: 3}},
		{
			name:     "every kind",
			settings: Settings{"node": {"a", "b"}, "basic-auth": {"true"}, "test-count": {"9"}, "test-every": {"2s"}, "test-name": {"x"}, "password": {"pw"}},
			want:     testOptions{Config: Config{Nodes: []string{"a", "b"}, Scheme: "http", BasicAuth: true, Password: "pw"}, Count: 9, Every: 2 * time.Second, Names: []string{"x"}},
		},
		{name: "ignores others' settings", settings: Settings{"file": {"x"}}, want: testOptions{Config: Config{Scheme: "http"}, Count: 3}},
		{name: "bad int", settings: Settings{"test-count": {"many"}}, err: `settings-test: setting test-count: "many": want an integer`},
		{name: "duration without unit", settings: Settings{"test-every": {"5"}}, err: "want a duration with a unit"},
		{name: "validate", settings: Settings{"test-require": {"true"}}, err: "test-name is required"},
		{name: "unknown backend", settings: nil, err: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "unknown backend" {
				if _, err := Decode(Spec{Backend: "no-such"}); !errors.Is(err, ErrUnknownBackend) {
					t.Errorf("Decode of an unknown backend: %v", err)
				}
				return
			}
			got, err := Decode(Spec{Backend: "settings-test", Settings: tc.settings})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got.(*testOptions), tc.want) {
				t.Errorf("got %+v\nwant %+v", *got.(*testOptions), tc.want)
			}
			if back := SpecOf("settings-test", got); !reflect.DeepEqual(mustDecode(t, back), got) {
				t.Errorf("SpecOf round trip: %+v", back)
			}
		})
	}
}

func mustDecode(t *testing.T, s Spec) any {
	t.Helper()
	v, err := Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSettingsDeclared(t *testing.T) {
	var names []string
	for _, s := range SettingsOf("settings-test") {
		names = append(names, s.Name)
	}
	want := "auth-token basic-auth client-ca-keys client-cert client-insecure client-key node password reconnect-jitter scheme srv-domain srv-record test-count test-every test-name test-require username"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("SettingsOf = %s\nwant %s", got, want)
	}
	for _, s := range AllSettings() {
		if s.Name == "node" && !strings.Contains(strings.Join(s.Backends, ","), "settings-test") {
			t.Errorf("AllSettings: node's backends %v lack settings-test", s.Backends)
		}
		if s.Name == "password" && !s.Secret {
			t.Error("password is not secret")
		}
	}
	var s Setting
	for _, x := range SettingsOf("settings-test") {
		if x.Name == "test-name" {
			s = x
		}
	}
	for _, k := range []string{"test-name", "test_name", "TestName", "test_names"} {
		if !s.Matches(k) {
			t.Errorf("test-name does not match %q", k)
		}
	}
	if s.Matches("test-namez") {
		t.Error("test-name matches test-namez")
	}
}

func TestRegisterMalformed(t *testing.T) {
	for name, f := range map[string]func(){
		"unsupported type": func() {
			Register("bad-type", func(context.Context, *struct {
				X float64 `setting:"x"`
			}, *slog.Logger) (Backend, error) {
				return nil, nil
			})
		},
		"bad default": func() {
			Register("bad-default", func(context.Context, *struct {
				X int `setting:"x" default:"one"`
			}, *slog.Logger) (Backend, error) {
				return nil, nil
			})
		},
		"conflicting declaration": func() {
			Register("bad-conflict", func(context.Context, *struct {
				N []string `setting:"node" usage:"other help"`
			}, *slog.Logger) (Backend, error) {
				return nil, nil
			})
		},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("Register did not panic")
				}
			}()
			f()
		})
	}
}

// TestSpecKeyHidesSecrets: the pool's key for a spec is stable, differs
// when a setting differs, and never holds a value in clear.
func TestSpecKeyHidesSecrets(t *testing.T) {
	a := Spec{Backend: "etcd", Settings: Settings{"password": {"s3cr3t-canary"}, "node": {"a", "b"}}}
	b := Spec{Backend: "etcd", Settings: Settings{"node": {"a", "b"}, "password": {"s3cr3t-canary"}}}
	c := Spec{Backend: "etcd", Settings: Settings{"node": {"a", "b"}, "password": {"other"}}}
	d := Spec{Backend: "etcd", Settings: Settings{"node": {"ab"}, "password": {"s3cr3t-canary"}}}
	if a.Key() != b.Key() {
		t.Error("equal specs have different keys")
	}
	if a.Key() == c.Key() || a.Key() == d.Key() {
		t.Error("different specs share a key")
	}
	if strings.Contains(a.Key(), "s3cr3t") {
		t.Errorf("key %q holds the password", a.Key())
	}
}

// TestCredentialUsage: the help of the shared credentials names every
// backend that reads them, so a ZooKeeper or Redis user finds them in
// -help.
func TestCredentialUsage(t *testing.T) {
	usage := map[string]string{}
	for _, s := range SettingsOf("settings-test") {
		usage[s.Name] = s.Usage
	}
	for _, tc := range []struct {
		setting string
		readers []string
	}{
		{setting: "username", readers: []string{"etcd", "consul", "zookeeper", "redis"}},
		{setting: "password", readers: []string{"etcd", "consul", "zookeeper", "redis"}},
		{setting: "basic-auth", readers: []string{"consul"}},
	} {
		for _, r := range tc.readers {
			if !strings.Contains(usage[tc.setting], r) {
				t.Errorf("-%s usage %q does not name %s, which reads it", tc.setting, usage[tc.setting], r)
			}
		}
	}
}
