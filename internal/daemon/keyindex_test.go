package daemon

import (
	"maps"
	"testing"

	"github.com/confit-dev/confit/backends"
)

func TestKeyIndexSubset(t *testing.T) {
	kvs := map[string]string{
		"/app/foo": "1", "/app/foo/x": "2", "/app/foo-bar": "3", "/app/foobar": "4",
		"/app/foo/y/z": "5", "/other": "6", "/@service/web/a": "7",
	}
	x := newKeyIndex(kvs)
	tests := []struct {
		prefixes []string
		want     []string
	}{
		{[]string{"/app/foo"}, []string{"/app/foo", "/app/foo/x", "/app/foo/y/z"}},
		{[]string{"/app/foo/y", "/other"}, []string{"/app/foo/y/z", "/other"}},
		{[]string{"/"}, []string{"/app/foo", "/app/foo/x", "/app/foo-bar", "/app/foobar", "/app/foo/y/z", "/other", "/@service/web/a"}},
		{[]string{"/missing"}, nil},
		{[]string{"/@service/web"}, []string{"/@service/web/a"}},
	}
	for _, tc := range tests {
		got := x.subset(kvs, tc.prefixes)
		want := map[string]string{}
		for _, k := range tc.want {
			want[k] = kvs[k]
		}
		if !maps.Equal(got, want) {
			t.Errorf("subset(%q) = %v, want %v", tc.prefixes, got, want)
		}
	}
}

// FuzzKeyIndexSubset checks subset against a scan of every key, with
// inserts and removes in between.
func FuzzKeyIndexSubset(f *testing.F) {
	f.Add("/app/foo", "/app/foo-bar", "/app/foo/x", "/app/foo")
	f.Add("/", "/a", "/b/c", "/b")
	f.Fuzz(func(t *testing.T, a, b, c, prefix string) {
		kvs := map[string]string{}
		x := newKeyIndex(kvs)
		for _, k := range []string{a, b, c, a + "/x", b + "/y"} {
			k = backends.CleanKey(k)
			kvs[k] = k
			x.insert(k)
		}
		rm := backends.CleanKey(c)
		delete(kvs, rm)
		x.remove(rm)
		p := backends.CleanKey(prefix)
		want := map[string]string{}
		for k, v := range kvs {
			if backends.Under(k, p) {
				want[k] = v
			}
		}
		if got := x.subset(kvs, []string{p}); !maps.Equal(got, want) {
			t.Errorf("subset(%q) = %v, want %v (keys %q)", p, got, want, x.keys)
		}
	})
}
