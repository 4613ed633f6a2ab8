package daemon

import (
	"context"

	"github.com/confit-dev/confit/backends"
)

// store is one backend client and the mirror of the prefixes watched on
// it. Only the engine goroutine touches it.
type store struct {
	key, name string

	kvs      map[string]string             // every key under a watched prefix
	idx      *keyIndex                     // kvs's keys, sorted; nil: to rebuild (index)
	watches  map[string]context.CancelFunc // watched prefix -> stop
	revs     map[string]uint64             // last revision applied per prefix
	target   map[string]bool               // the prefixes the resources need now
	ready    bool                          // the first snapshot is in
	stopLoad context.CancelFunc            // cancels the load in flight; nil: none
}

// newStore returns the empty mirror of the client named key (name: the
// backend's name, for logs).
func newStore(key, name string) *store {
	return &store{
		key:     key,
		name:    name,
		kvs:     map[string]string{},
		idx:     &keyIndex{},
		watches: map[string]context.CancelFunc{},
		revs:    map[string]uint64{},
		target:  map[string]bool{},
	}
}

// reset replaces the mirror under prefix with kvs and returns the keys that
// changed.
func (s *store) reset(prefix string, kvs map[string]string) []string {
	return s.replace(func(k string) bool { return backends.Under(k, prefix) }, kvs)
}

// resetAll is reset for each of prefixes (none under another), in one pass
// over the mirror and kvs: a snapshot of 200 prefixes was 200 passes.
func (s *store) resetAll(prefixes []string, kvs map[string]string) []string {
	if len(prefixes) == 0 {
		return nil
	}
	set := make(map[string]bool, len(prefixes))
	for _, p := range prefixes {
		set[p] = true
	}
	return s.replace(func(k string) bool { return backends.UnderSet(k, set) }, kvs)
}

// replace replaces the mirror's entries whose key in reports true with
// those of kvs, and returns the keys that changed.
func (s *store) replace(in func(key string) bool, kvs map[string]string) []string {
	var changed []string
	edit := mirrorEdit{s: s}
	for k := range s.kvs {
		if _, keep := kvs[k]; !keep && in(k) && edit.del(k) {
			changed = append(changed, k)
		}
	}
	for k, v := range kvs {
		if in(k) && edit.set(k, v) {
			changed = append(changed, k)
		}
	}
	return changed
}

// apply applies incremental changes and returns the keys that changed.
func (s *store) apply(cs []backends.Change) []string {
	var changed []string
	edit := mirrorEdit{s: s}
	for _, c := range cs {
		if c.Deleted && edit.del(c.Key) || !c.Deleted && edit.set(c.Key, c.Value) {
			changed = append(changed, c.Key)
		}
	}
	return changed
}

// drop deletes the keys under prefix, a prefix no longer watched, that no
// prefix in still covers. Nobody depends on them: nothing is scheduled.
func (s *store) drop(prefix string, still []string) {
	edit := mirrorEdit{s: s}
	for k := range s.kvs {
		if backends.Under(k, prefix) && !backends.UnderAny(k, still) {
			edit.del(k)
		}
	}
}

// loaded reports whether every key prefix is covered by a watched prefix,
// that is one whose snapshot is in the mirror.
func (s *store) loaded(keys []string) bool {
	for _, k := range keys {
		covered := false
		for p := range s.watches {
			if backends.Under(k, p) {
				covered = true
				break
			}
		}
		if !covered {
			return false
		}
	}
	return true
}

// index returns the sorted index of s.kvs, rebuilding it if it was
// dropped.
func (s *store) index() *keyIndex {
	if s.idx == nil {
		s.idx = newKeyIndex(s.kvs)
	}
	return s.idx
}

// maxIndexEdits is how many keys one update inserts into or removes from
// the key index one by one; past that the index is dropped and rebuilt
// once before the next render, which is cheaper (each edit moves the tail
// of a sorted slice). A snapshot of 200 prefixes is one rebuild, not 200.
const maxIndexEdits = 64

// mirrorEdit applies one update to a store's mirror and key index.
type mirrorEdit struct {
	s     *store
	edits int
}

// set sets k to v and reports whether that changed anything.
func (e *mirrorEdit) set(k, v string) bool {
	old, ok := e.s.kvs[k]
	if ok && old == v {
		return false
	}
	e.s.kvs[k] = v
	if !ok && e.index() != nil {
		e.s.idx.insert(k)
	}
	return true
}

// del deletes k and reports whether it was there.
func (e *mirrorEdit) del(k string) bool {
	if _, ok := e.s.kvs[k]; !ok {
		return false
	}
	delete(e.s.kvs, k)
	if e.index() != nil {
		e.s.idx.remove(k)
	}
	return true
}

// index counts one edit of the key index and returns the index to edit, or
// nil once it is (or has been) dropped.
func (e *mirrorEdit) index() *keyIndex {
	if e.edits++; e.edits > maxIndexEdits {
		e.s.idx = nil
	}
	return e.s.idx
}
