package daemon

import (
	"slices"
	"strings"

	"github.com/confit-dev/confit/backends"
)

// keyIndex keeps the keys of a key-value map sorted, so that the keys under
// a resource's prefixes are found by binary search instead of a scan of
// every key: with 200 resources over 20,000 keys the scans dominated both a
// one-shot run and each render in watch mode.
type keyIndex struct {
	keys []string
}

func newKeyIndex(kvs map[string]string) *keyIndex {
	keys := make([]string, 0, len(kvs))
	for k := range kvs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return &keyIndex{keys: keys}
}

// insert adds k if it is not there yet.
func (x *keyIndex) insert(k string) {
	i, found := slices.BinarySearch(x.keys, k)
	if !found {
		x.keys = slices.Insert(x.keys, i, k)
	}
}

// remove deletes k if it is there.
func (x *keyIndex) remove(k string) {
	if i, found := slices.BinarySearch(x.keys, k); found {
		x.keys = slices.Delete(x.keys, i, i+1)
	}
}

// subset returns the entries of kvs (which x indexes) under any of
// prefixes.
func (x *keyIndex) subset(kvs map[string]string, prefixes []string) map[string]string {
	out := map[string]string{}
	for _, p := range prefixes {
		// Keys under p sort in one run starting at p: every key with the
		// string prefix p is there, and Under picks the ones at a "/"
		// boundary ("/app/foo-bar" sorts between "/app/foo" and
		// "/app/foo/x").
		start := p
		if p == "/" {
			start = ""
		}
		i, _ := slices.BinarySearch(x.keys, start)
		for ; i < len(x.keys) && strings.HasPrefix(x.keys[i], start); i++ {
			if k := x.keys[i]; backends.Under(k, p) {
				out[k] = kvs[k]
			}
		}
	}
	return out
}
