package daemon

import (
	"slices"

	"github.com/confit-dev/confit/backends"
)

// keyIndex keeps the keys of a key-value map sorted, so that the keys under
// a resource's prefixes are found by binary search instead of a scan of
// every key: with 200 resources over 20,000 keys the scans dominated both a
// one-shot run and each render in watch mode.
type keyIndex struct {
	keys []string
}

// newSortedKeyIndex indexes kvs whose keys the store gave in sorted
// order (backends.Snapshot.Keys, possibly nil), keeping that slice, which
// must not change. Keys that are not exactly kvs's keys, strictly
// increasing, are ignored (and sorted afresh): checking costs a fraction
// of the sort.
func newSortedKeyIndex(kvs map[string]string, keys []string) *keyIndex {
	if keys == nil || len(keys) != len(kvs) {
		return newKeyIndex(kvs)
	}
	for i, k := range keys {
		if _, ok := kvs[k]; !ok || (i > 0 && keys[i-1] >= k) {
			return newKeyIndex(kvs)
		}
	}
	return &keyIndex{keys: keys}
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
// prefixes, and their keys in sorted order: kvs itself when that is all of
// them. The results are read-only, and only valid until x changes.
func (x *keyIndex) subset(kvs map[string]string, prefixes []string) (map[string]string, []string) {
	// Keys under p sort in one run starting at p: every key with the
	// string prefix p is there, and Under picks the ones at a "/"
	// boundary ("/app/foo-bar" sorts between "/app/foo" and "/app/foo/x").
	type run struct {
		p      string
		lo, hi int
	}
	runs := make([]run, 0, len(prefixes))
	n := 0
	for _, p := range prefixes {
		lo, hi := backends.PrefixRun(x.keys, p)
		runs = append(runs, run{p, lo, hi})
		n += hi - lo
	}
	for _, r := range runs {
		if r.lo == 0 && r.hi == len(x.keys) && allUnder(x.keys, r.p) {
			return kvs, x.keys // one prefix holds every key
		}
	}
	out := make(map[string]string, n)
	keys := make([]string, 0, n)
	for _, r := range runs {
		for _, k := range x.keys[r.lo:r.hi] {
			if _, dup := out[k]; !dup && backends.Under(k, r.p) {
				out[k] = kvs[k]
				keys = append(keys, k)
			}
		}
	}
	if !slices.IsSorted(keys) {
		slices.Sort(keys) // prefixes out of order
	}
	return out, keys
}

// allUnder reports whether every key is under p.
func allUnder(keys []string, p string) bool {
	for _, k := range keys {
		if !backends.Under(k, p) {
			return false
		}
	}
	return true
}
