package env

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/confit-dev/confit/backends"
)

func TestNamePrefixAndKeyOf(t *testing.T) {
	prefixes := []struct{ key, want string }{
		{"/myapp/database", "MYAPP_DATABASE"},
		{"myapp/database/", "MYAPP_DATABASE"},
		{"/MyApp//db", "MYAPP_DB"},
		{"/", ""},
		{"", ""},
	}
	for _, tc := range prefixes {
		if got := NamePrefix(tc.key); got != tc.want {
			t.Errorf("NamePrefix(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
	keys := []struct{ name, want string }{
		{"MYAPP_DATABASE_URL", "/myapp/database/url"},
		{"MYAPP__URL_", "/myapp/url"},
		{"PATH", "/path"},
		{"_X", "/x"},
	}
	for _, tc := range keys {
		if got := KeyOf(tc.name); got != tc.want {
			t.Errorf("KeyOf(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestGet(t *testing.T) {
	t.Setenv("CONFITTEST_DATABASE_URL", "postgres://db")
	t.Setenv("CONFITTEST_DATABASE_USER", "admin")
	t.Setenv("CONFITTEST_DATABASEX", "sibling")
	t.Setenv("CONFITTEST_FOO", "foo")
	t.Setenv("CONFITTEST_FOOBAR", "foobar")
	t.Setenv("CONFITTEST_FOO_BAR", "foo/bar")
	t.Setenv("CONFITTEST_EMPTY", "")
	t.Setenv("CONFITTEST_EQ", "a=b=c")
	t.Setenv("confittest_lower", "never matches an upper-case prefix")

	tests := []struct {
		name     string
		prefixes []string
		want     map[string]string
	}{
		{
			name:     "confd mapping",
			prefixes: []string{"/confittest/database"},
			want: map[string]string{
				"/confittest/database/url":  "postgres://db",
				"/confittest/database/user": "admin",
			},
		},
		{
			name:     "exact key",
			prefixes: []string{"/confittest/database/url"},
			want:     map[string]string{"/confittest/database/url": "postgres://db"},
		},
		{
			name:     "key boundary: /foo is not /foobar",
			prefixes: []string{"/confittest/foo"},
			want:     map[string]string{"/confittest/foo": "foo", "/confittest/foo/bar": "foo/bar"},
		},
		{
			name:     "the sibling can be asked for",
			prefixes: []string{"/confittest/foobar"},
			want:     map[string]string{"/confittest/foobar": "foobar"},
		},
		{
			name:     "several prefixes, unclean",
			prefixes: []string{"confittest//empty/", "/confittest/eq"},
			want:     map[string]string{"/confittest/empty": "", "/confittest/eq": "a=b=c"},
		},
		{
			name:     "upper-case key cannot be expressed",
			prefixes: []string{"/ConfitTest/Empty"},
			want:     map[string]string{},
		},
		{
			name:     "underscored key cannot be expressed",
			prefixes: []string{"/confittest_database"},
			want:     map[string]string{},
		},
		{
			name:     "missing prefix",
			prefixes: []string{"/confittest/nope"},
			want:     map[string]string{},
		},
		{
			name:     "no prefixes",
			prefixes: nil,
			want:     map[string]string{},
		},
	}
	b := New()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap, err := b.Get(t.Context(), tc.prefixes)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if !maps.Equal(snap.KVs, tc.want) {
				t.Errorf("Get = %v, want %v", snap.KVs, tc.want)
			}
			if snap.Rev != 0 {
				t.Errorf("Rev = %d, want 0", snap.Rev)
			}
		})
	}

	t.Run("root returns the whole environment", func(t *testing.T) {
		snap, err := b.Get(t.Context(), []string{"/"})
		if err != nil {
			t.Fatal(err)
		}
		if got := snap.KVs["/confittest/database/url"]; got != "postgres://db" {
			t.Errorf("/confittest/database/url = %q, want postgres://db", got)
		}
		if got, ok := snap.KVs["/confittest/lower"]; !ok || got != "never matches an upper-case prefix" {
			t.Errorf("/confittest/lower = %q, %v; want it under /", got, ok)
		}
	})
}

func TestGetReadsEnvironmentEachTime(t *testing.T) {
	b := New()
	t.Setenv("CONFITTEST_LIVE", "1")
	snap, err := b.Get(t.Context(), []string{"/confittest/live"})
	if err != nil || snap.KVs["/confittest/live"] != "1" {
		t.Fatalf("Get = %v, %v; want /confittest/live=1", snap.KVs, err)
	}
	t.Setenv("CONFITTEST_LIVE", "2")
	snap, err = b.Get(t.Context(), []string{"/confittest/live"})
	if err != nil || snap.KVs["/confittest/live"] != "2" {
		t.Fatalf("Get = %v, %v; want /confittest/live=2", snap.KVs, err)
	}
}

func TestWatchUnsupported(t *testing.T) {
	b, err := backends.New(t.Context(), backends.Spec{Backend: "env"}, nil)
	if err != nil {
		t.Fatalf("backends.New: %v", err)
	}
	defer b.Close()
	ch, err := b.Watch(t.Context(), "/app", 0)
	if !errors.Is(err, backends.ErrWatchUnsupported) || ch != nil {
		t.Errorf("Watch = %v, %v; want nil, ErrWatchUnsupported", ch, err)
	}
}

func TestGetCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := New().Get(ctx, []string{"/"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Get error = %v, want context.Canceled", err)
	}
}
