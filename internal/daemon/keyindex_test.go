package daemon

import (
	"maps"
	"slices"
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
		{[]string{"/app", "/app/foo"}, []string{"/app/foo", "/app/foo/x", "/app/foo-bar", "/app/foobar", "/app/foo/y/z"}},
	}
	for _, tc := range tests {
		got, keys := x.subset(kvs, tc.prefixes)
		checkSubsetKeys(t, got, keys)
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
		got, keys := x.subset(kvs, []string{p})
		checkSubsetKeys(t, got, keys)
		if !maps.Equal(got, want) {
			t.Errorf("subset(%q) = %v, want %v (keys %q)", p, got, want, x.keys)
		}
	})
}

// TestKeyIndexSubsetAll checks that a prefix holding every key gives kvs
// itself (no copy), and that overlapping prefixes do not pass for one.
func TestKeyIndexSubsetAll(t *testing.T) {
	kvs := map[string]string{"/a/b/1": "1", "/a/b/2": "2"}
	x := newKeyIndex(kvs)
	if got, _ := x.subset(kvs, []string{"/a"}); len(got) != 2 || !sameMap(got, kvs) {
		t.Errorf("subset(/a) = %v, want kvs itself", got)
	}
	kvs["/c"] = "3"
	x.insert("/c")
	got, keys := x.subset(kvs, []string{"/a", "/a/b"})
	checkSubsetKeys(t, got, keys)
	if sameMap(got, kvs) || len(got) != 2 {
		t.Errorf("subset(/a, /a/b) = %v, want the two keys under /a", got)
	}
}

// sameMap reports whether a and b are the same map value.
func sameMap(a, b map[string]string) bool {
	a["\x00probe"] = ""
	_, same := b["\x00probe"]
	delete(a, "\x00probe")
	return same
}

// checkSubsetKeys fails unless keys are the keys of m, sorted.
func checkSubsetKeys(t *testing.T, m map[string]string, keys []string) {
	t.Helper()
	if want := slices.Sorted(maps.Keys(m)); !slices.Equal(keys, want) {
		t.Errorf("subset keys %q, want %q", keys, want)
	}
}

func TestNewSortedKeyIndex(t *testing.T) {
	kvs := map[string]string{"/a": "1", "/b": "2", "/c": "3"}
	tests := []struct {
		name string
		keys []string
		kept bool
	}{
		{"sorted", []string{"/a", "/b", "/c"}, true},
		{"nil", nil, false},
		{"unsorted", []string{"/b", "/a", "/c"}, false},
		{"duplicate", []string{"/a", "/a", "/c"}, false},
		{"other keys", []string{"/a", "/b", "/d"}, false},
		{"too few", []string{"/a", "/b"}, false},
	}
	for _, tc := range tests {
		x := newSortedKeyIndex(kvs, tc.keys)
		if !slices.Equal(x.keys, []string{"/a", "/b", "/c"}) {
			t.Errorf("%s: index keys %q", tc.name, x.keys)
		}
		if kept := len(tc.keys) > 0 && &x.keys[0] == &tc.keys[0]; kept != tc.kept {
			t.Errorf("%s: kept the given slice = %v, want %v", tc.name, kept, tc.kept)
		}
	}
}
