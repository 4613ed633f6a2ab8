package daemon

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/confit-dev/confit/backends"
)

// The mirror's index, rebuilt lazily after resets and large updates and
// kept up to date by small ones, always lists exactly the mirror's keys.
func TestStoreIndexFollowsMirror(t *testing.T) {
	s := &store{kvs: map[string]string{}, idx: &keyIndex{}}
	check := func(step string) {
		t.Helper()
		want := newKeyIndex(s.kvs).keys
		if got := s.index().keys; !slices.Equal(got, want) {
			t.Fatalf("%s: index %q, want %q", step, got, want)
		}
	}
	snap := map[string]string{}
	for i := range 200 {
		for j := range 3 {
			snap[fmt.Sprintf("/apps/app%03d/k%d", i, j)] = "v"
		}
	}
	for i := range 200 {
		s.reset(fmt.Sprintf("/apps/app%03d", i), snap)
	}
	check("200 resets")
	s.apply([]backends.Change{{Key: "/apps/app007/k1", Deleted: true}, {Key: "/apps/app007/new", Value: "x"}})
	check("small update")
	var big []backends.Change
	for i := range 100 {
		big = append(big, backends.Change{Key: fmt.Sprintf("/apps/app010/n%03d", i), Value: "y"})
	}
	s.apply(big)
	s.apply([]backends.Change{{Key: "/apps/app010/n005", Deleted: true}}) // while stale
	check("large update, then a delete")
	s.reset("/apps/app011", map[string]string{"/apps/app011/k0": "changed"})
	check("reset dropping keys")
	check("rebuilt") // the index is kept from here
	var dels []backends.Change
	for i := range 100 {
		dels = append(dels, backends.Change{Key: fmt.Sprintf("/apps/app%03d/k0", 100+i), Deleted: true})
	}
	s.apply(dels)
	check("many deletes")
	s.reset("/apps/app012", map[string]string{"/apps/app012/k0": "v", "/apps/app012/k9": "added"})
	check("reset adding a key")
}

// resetAll over several prefixes does what reset does for each of them.
func TestStoreResetAll(t *testing.T) {
	mirror := func() *store {
		s := &store{kvs: map[string]string{}, idx: &keyIndex{}}
		for _, k := range []string{"/", "/a/x", "/a/y", "/ab/x", "/b/c/d", "/b/cd", "/c"} {
			s.kvs[k] = "old"
		}
		return s
	}
	snap := map[string]string{"/a/x": "new", "/a/z": "new", "/ab/x": "new", "/b/c/d": "old", "/b/c/e": "new", "/c": "new", "/": "new"}
	prefixes := []string{"/a", "/b/c"}
	one, all := mirror(), mirror()
	var want []string
	for _, p := range prefixes {
		want = append(want, one.reset(p, snap)...)
	}
	got := all.resetAll(prefixes, snap)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) || !maps.Equal(one.kvs, all.kvs) {
		t.Errorf("resetAll changed %q, mirror %v; reset per prefix changed %q, mirror %v", got, all.kvs, want, one.kvs)
	}
	if all := mirror(); all.resetAll([]string{"/"}, snap) == nil || !maps.Equal(all.kvs, snap) {
		t.Errorf("resetAll(/) left %v, want %v", all.kvs, snap)
	}
}
