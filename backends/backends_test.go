package backends

import (
	"context"
	"errors"
	"log/slog"
	"path"
	"slices"
	"strings"
	"testing"
)

func TestUnder(t *testing.T) {
	tests := []struct {
		key, prefix string
		want        bool
	}{
		{"/app/foo", "/app/foo", true},
		{"/app/foo/x", "/app/foo", true},
		{"/app/foobar", "/app/foo", false},
		{"/app", "/app/foo", false},
		{"/anything", "/", true},
		{"/", "/", true},
	}
	for _, tc := range tests {
		if got := Under(tc.key, tc.prefix); got != tc.want {
			t.Errorf("Under(%q, %q) = %v, want %v", tc.key, tc.prefix, got, tc.want)
		}
	}
}

func TestCleanKey(t *testing.T) {
	for in, want := range map[string]string{"": "/", "app//db/": "/app/db", "/a/../b": "/b", "a": "/a"} {
		if got := CleanKey(in); got != want {
			t.Errorf("CleanKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIsClean(t *testing.T) {
	for key, want := range map[string]bool{
		"/": true, "/a": true, "/a/b": true, "/a.b/c..d": true, "/.a/..b/...": true, "/a/.../b": true,
		"": false, "a": false, "a/b": false, "/a/": false, "//": false, "/a//b": false,
		"/.": false, "/..": false, "/a/.": false, "/a/..": false, "/./a": false, "/../a": false, "/a/./b": false, "/a/../b": false,
	} {
		if got := IsClean(key); got != want {
			t.Errorf("IsClean(%q) = %v, want %v", key, got, want)
		}
	}
}

// FuzzKeys checks the key rules every package relies on: CleanKey is
// idempotent and absolute, joined keys lie under their prefix, and Under
// never matches a sibling sharing a string prefix.
func FuzzKeys(f *testing.F) {
	for _, s := range [][2]string{{"/app", "foo"}, {"/", "a/b"}, {"app/", "../x"}, {"/a/b", "/a/bc"}, {"", ""}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, prefix, key string) {
		p := CleanKey(prefix)
		if !strings.HasPrefix(p, "/") || CleanKey(p) != p {
			t.Fatalf("CleanKey(%q) = %q: not absolute and clean", prefix, p)
		}
		joined := path.Join(p, key)
		if !strings.Contains("/"+key+"/", "/../") && !Under(joined, p) {
			t.Errorf("path.Join(%q, %q) = %q is not Under %q", p, key, joined, p)
		}
		// CleanKey trusts IsClean: check both against path.Join itself.
		if got, want := IsClean(key), path.Join("/", key) == key; got != want {
			t.Errorf("IsClean(%q) = %v, path.Join gives %q", key, got, path.Join("/", key))
		}
		if got, want := CleanKey(key), path.Join("/", key); got != want {
			t.Errorf("CleanKey(%q) = %q, want %q", key, got, want)
		}
		if !IsClean(p) {
			t.Errorf("IsClean(CleanKey(%q) = %q) = false", prefix, p)
		}
		k := CleanKey(key)
		if Under(k, p) && p != "/" && k != p && k[len(p)] != '/' {
			t.Errorf("Under(%q, %q) matched a sibling", k, p)
		}
		if Under(k, p) != (p == "/" || k == p || strings.HasPrefix(k, p+"/")) {
			t.Errorf("Under(%q, %q) = %v disagrees with the definition", k, p, Under(k, p))
		}
	})
}

func TestDiff(t *testing.T) {
	got := Diff(map[string]string{"/a": "1", "/b": "2", "/c": "3"}, map[string]string{"/a": "1", "/b": "9", "/d": "4"})
	want := []Change{{Key: "/b", Value: "9"}, {Key: "/c", Deleted: true}, {Key: "/d", Value: "4"}}
	if !slices.Equal(got, want) {
		t.Errorf("Diff = %+v, want %+v", got, want)
	}
	if got := Diff(map[string]string{"/a": "1"}, map[string]string{"/a": "1"}); len(got) != 0 {
		t.Errorf("Diff of equal maps = %+v, want none", got)
	}
}

func TestCheck(t *testing.T) {
	Register("check-test", func(context.Context, *struct{}, *slog.Logger) (Backend, error) { return nil, nil })
	RegisterOmitted("check-omitted", "built with -tags check")
	tests := []struct {
		name string
		want string // "" for no error
	}{
		{"check-test", ""},
		{"check-omitted", `unknown backend "check-omitted": not in this build of confit (built with -tags check)`},
		{"check-nope", `unknown backend "check-nope" (known: `},
	}
	for _, tt := range tests {
		err := Check(tt.name)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("Check(%q) = %v, want nil", tt.name, err)
		case tt.want != "" && (err == nil || !errors.Is(err, ErrUnknownBackend) || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("Check(%q) = %v, want an ErrUnknownBackend containing %q", tt.name, err, tt.want)
		}
	}
	if _, err := New(context.Background(), Spec{Backend: "check-omitted"}, nil); !errors.Is(err, ErrUnknownBackend) {
		t.Errorf("New of an omitted backend: %v, want ErrUnknownBackend", err)
	}
}

func TestPrefixRun(t *testing.T) {
	keys := []string{"/a", "/app", "/app-x", "/app/db", "/app/db/url", "/app/foo-bar", "/app/foo/x", "/appx", "/b"}
	for _, p := range []string{"/", "/a", "/app", "/app/db", "/app/foo", "/app/none", "/c", "/0"} {
		lo, hi := PrefixRun(keys, p)
		for i, k := range keys {
			if Under(k, p) && (i < lo || i >= hi) {
				t.Errorf("PrefixRun(%q) = [%d, %d): misses %q", p, lo, hi, k)
			}
			if (i >= lo && i < hi) != strings.HasPrefix(k, p) && p != "/" {
				t.Errorf("PrefixRun(%q) = [%d, %d): wrong about %q", p, lo, hi, k)
			}
		}
	}
}

func TestCoverPrefixes(t *testing.T) {
	for _, tt := range []struct{ in, want []string }{
		{nil, nil},
		{[]string{"/a/c", "/a-b", "/a", "a/c/d/", "/a"}, []string{"/a", "/a-b"}},
		{[]string{"/b", "/", "/a"}, []string{"/"}},
		{[]string{"/app/db", "/app/dbx", "/app/db/url"}, []string{"/app/db", "/app/dbx"}},
	} {
		if got := CoverPrefixes(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("CoverPrefixes(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	set := map[string]bool{"/a": true, "/b/c": true}
	for key, want := range map[string]bool{"/a": true, "/a/x/y": true, "/a-b": false, "/b": false, "/b/c/d": true, "/": false} {
		if got := UnderSet(key, set); got != want {
			t.Errorf("UnderSet(%q) = %v, want %v", key, got, want)
		}
	}
	if !UnderSet("/x", map[string]bool{"/": true}) {
		t.Errorf(`UnderSet("/x", {"/"}) = false`)
	}
}

func TestHasDotSegment(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want bool
	}{
		{"/a/b", false},
		{"a/b", false},
		{"/a//b", false},
		{"app/", false},
		{"/a/.hidden", false},
		{"/a/b..c", false},
		{"/a/...", false},
		{"", false},
		{"/a/../b/secret", true},
		{"../../etc/passwd", true},
		{"/a/./b", true},
		{".", true},
		{"..", true},
		{"/a/..", true},
		{"/a/.", true},
		{"a/../", true},
	} {
		if got := HasDotSegment(tc.key); got != tc.want {
			t.Errorf("HasDotSegment(%q) = %v, want %v", tc.key, got, tc.want)
		}
	}
}
