package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"net/url"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/confit-dev/confit/backends"
)

// ErrNotExist is wrapped by the error get and getv return for a key the
// store does not hold. The message reads "key does not exist: <key>", as
// confd's does.
var ErrNotExist = errors.New("key does not exist")

// KVPair is one key and its value, as get and gets return them. The field
// names match confd's memkv.KVPair, so templates can use .Key and .Value.
type KVPair struct {
	Key   string
	Value string
}

// Store holds the keys one render may read, keyed relative to the resource
// prefix ("/database/url"). It is immutable after NewStore and safe for
// concurrent readers; one Store may serve any number of renders.
type Store struct {
	keys []string // clean absolute keys, sorted
	vals []string // vals[i] is the value of keys[i]
}

// find returns the position of key in s.keys. A binary search: building a
// map from key to position cost more than all the lookups of a large
// render (20,000 keys: 1.5 ms and 0.9 MB for the map).
func (s *Store) find(key string) (int, bool) {
	return slices.BinarySearch(s.keys, key)
}

// NewStore copies kvs into a new Store. Each key is cleaned with
// path.Join("/", k), so "database/url" and "/database/url/" both become
// "/database/url". When two keys clean to the same key, the one that was
// already clean wins; otherwise the lexically smallest original key wins.
func NewStore(kvs map[string]string) *Store {
	return NewStoreSorted(kvs, nil)
}

// NewStoreSorted is NewStore for a caller that holds kvs's keys in sorted
// order: keys must be exactly those keys, sorted, or nil. It spares the
// Store a sort and a copy: when every key is clean, the Store keeps keys
// (and reads kvs) for as long as it is used, so neither may change then.
func NewStoreSorted(kvs map[string]string, keys []string) *Store {
	s := &Store{}
	if keys == nil || len(keys) != len(kvs) || !slices.IsSorted(keys) {
		s.keys = make([]string, 0, len(kvs))
		for k := range kvs {
			s.keys = append(s.keys, k)
		}
		keys = nil
	} else {
		s.keys = keys
	}
	for _, k := range s.keys {
		if !backends.IsClean(k) {
			return newStoreCleaning(s, kvs)
		}
	}
	// Every key is clean already (the common case): no two can collide.
	if keys == nil {
		slices.Sort(s.keys)
	}
	s.vals = make([]string, len(s.keys))
	for i, k := range s.keys {
		s.vals[i] = kvs[k]
	}
	return s
}

// newStoreCleaning is NewStore for a kvs with keys to clean.
func newStoreCleaning(s *Store, kvs map[string]string) *Store {
	orig := make(map[string]string, len(kvs)) // clean key -> original key kept
	s.keys = make([]string, 0, len(kvs))
	for k := range kvs {
		ck := backends.CleanKey(k)
		if o, dup := orig[ck]; dup {
			if o == ck || (k != ck && o < k) {
				continue
			}
		} else {
			s.keys = append(s.keys, ck)
		}
		orig[ck] = k
	}
	sort.Strings(s.keys)
	s.vals = make([]string, len(s.keys))
	for i, k := range s.keys {
		s.vals[i] = kvs[orig[k]]
	}
	return s
}

// globLiteral returns the part of pattern before its first meta character
// and whether the pattern has any meta character at all.
func globLiteral(pattern string) (lit string, meta bool) {
	if i := strings.IndexAny(pattern, `*?[\`); i >= 0 {
		return pattern[:i], true
	}
	return pattern, false
}

// globPrefix is the subtree a gets/getvs pattern can match in: the clean
// directory part of the literal text before the first meta character
// ("/upstreams/*/addr" -> "/upstreams"), or the pattern itself when it has
// no meta character (it can then match only that one key).
func globPrefix(pattern string) string {
	lit, meta := globLiteral(pattern)
	if !meta {
		return backends.CleanKey(lit)
	}
	i := strings.LastIndexByte(lit, '/')
	if i < 0 {
		return "/"
	}
	return backends.CleanKey(lit[:i])
}

// glob returns the positions of the keys matching pattern with path.Match,
// in key order. A malformed pattern is an error even when nothing is stored.
func (s *Store) glob(pattern string) ([]int, error) {
	if _, err := path.Match(pattern, ""); err != nil {
		return nil, fmt.Errorf("%w: %q", err, pattern)
	}
	lit, meta := globLiteral(pattern)
	if !meta {
		if i, ok := s.find(pattern); ok {
			return []int{i}, nil
		}
		return nil, nil
	}
	// A matching key starts with the literal text before the first meta
	// character, and ends with the literal text after the last one.
	lo, hi := backends.PrefixRun(s.keys, lit)
	tail := pattern[strings.LastIndexAny(pattern, `*?]\`)+1:]
	var out []int
	for i := lo; i < hi; i++ {
		if !strings.HasSuffix(s.keys[i], tail) {
			continue
		}
		if ok, _ := path.Match(pattern, s.keys[i]); ok {
			out = append(out, i)
		}
	}
	return out, nil
}

// children returns the sorted unique names of the immediate children of
// the clean path p, with confd's ls rules: a key equal to p contributes its
// base name. With dirsOnly (lsdir) only children that have children of
// their own are returned, and a key equal to p contributes nothing.
func (s *Store) children(p string, dirsOnly bool) []string {
	out := []string{}
	if !dirsOnly {
		if _, ok := s.find(p); ok && p != "/" {
			out = append(out, path.Base(p))
		}
	}
	pre := p
	if pre != "/" {
		pre += "/"
	}
	lo, hi := backends.PrefixRun(s.keys, pre)
	for i := lo; i < hi; {
		rest := s.keys[i][len(pre):]
		name, _, deeper := strings.Cut(rest, "/")
		if name == "" { // only possible for the key "/" itself
			i++
			continue
		}
		// Every key below pre+name+"/" sorts together; skip past them.
		j := i + 1
		for j < hi && strings.HasPrefix(s.keys[j][len(pre):], name) {
			r := s.keys[j][len(pre)+len(name):]
			if r != "" && r[0] != '/' {
				break
			}
			if r != "" {
				deeper = true
			}
			j++
		}
		if !dirsOnly || deeper {
			out = append(out, name)
		}
		i = j
	}
	// Names come out in key order, which differs from name order when a
	// sibling sorts between "name" and "name/..." (e.g. "a-b" < "a/x");
	// sort and deduplicate.
	sort.Strings(out)
	return slices.Compact(out)
}

// Reads is what one render looked at, in the store's relative key space.
// A caller re-renders when a changed key equals one of Keys or lies under
// (backends.Under) one of Prefixes.
type Reads struct {
	// Keys are the exact keys read by get, getv and exists, whether or not
	// they were present; clean and absolute (like every key and prefix
	// here), sorted, unique.
	Keys []string
	// Prefixes are the subtrees read by gets and getvs (the literal
	// directory of the glob, e.g. "/upstreams/*/x" -> "/upstreams") and by
	// ls and lsdir (the path listed); sorted, unique.
	Prefixes []string
}

// recorder collects the reads of one render. Present keys are a bitset over
// the store's sorted keys, so a render that reads every key of a large store
// produces its sorted Keys without sorting.
type recorder struct {
	store    *Store
	present  []uint64
	missing  map[string]struct{}
	prefixes map[string]struct{}
	next     int // the position after the last key found
}

// reset prepares r for a render against s.
func (r *recorder) reset(s *Store) {
	r.store = s
	n := (len(s.keys) + 63) / 64
	if cap(r.present) < n {
		r.present = make([]uint64, n)
	} else {
		r.present = r.present[:n]
		clear(r.present)
	}
	clear(r.missing)
	clear(r.prefixes)
	r.next = 0
}

// lookup returns the position of key in the store, recording the read.
// The key is looked up as written, as confd's memkv does: "/key/", "key"
// and "/a//b" are never found, since every stored key is clean. Such a miss
// is not recorded: no change to the store can make it a hit.
func (r *recorder) lookup(key string) (int, bool) {
	// Templates mostly read keys in order (a range over ls or lsdir, then
	// getv of each child's keys): try the key after the last one first.
	i, ok := r.next, r.next < len(r.store.keys) && r.store.keys[r.next] == key
	if !ok {
		i, ok = r.store.find(key)
	}
	if !ok && key != backends.CleanKey(key) {
		return 0, false
	}
	if ok {
		r.present[i>>6] |= 1 << (uint(i) & 63)
		r.next = i + 1
		return i, true
	}
	if r.missing == nil {
		r.missing = make(map[string]struct{})
	}
	r.missing[key] = struct{}{}
	return 0, false
}

// prefix records a subtree read.
func (r *recorder) prefix(p string) {
	if r.prefixes == nil {
		r.prefixes = make(map[string]struct{})
	}
	r.prefixes[p] = struct{}{}
}

// reads returns what was recorded since reset.
func (r *recorder) reads() Reads {
	var out Reads
	n := len(r.missing)
	for _, w := range r.present {
		n += bits.OnesCount64(w)
	}
	if n > 0 {
		keys := make([]string, 0, n)
		for wi, w := range r.present {
			for w != 0 {
				b := bits.TrailingZeros64(w)
				keys = append(keys, r.store.keys[wi*64+b])
				w &^= 1 << uint(b)
			}
		}
		if len(r.missing) > 0 {
			for k := range r.missing {
				keys = append(keys, k)
			}
			sort.Strings(keys)
		}
		out.Keys = keys
	}
	if len(r.prefixes) > 0 {
		out.Prefixes = make([]string, 0, len(r.prefixes))
		for p := range r.prefixes {
			out.Prefixes = append(out.Prefixes, p)
		}
		sort.Strings(out.Prefixes)
	}
	return out
}

// The store functions. Each records what it read in r.

func (r *recorder) get(key string) (KVPair, error) {
	i, ok := r.lookup(key)
	if !ok {
		return KVPair{}, &NotExistError{Key: key}
	}
	return KVPair{Key: r.store.keys[i], Value: r.store.vals[i]}, nil
}

func (r *recorder) getv(key string, def ...string) (string, error) {
	i, ok := r.lookup(key)
	if !ok {
		if len(def) > 0 {
			return def[0], nil
		}
		return "", &NotExistError{Key: key}
	}
	return r.store.vals[i], nil
}

func (r *recorder) exists(key string) bool {
	_, ok := r.lookup(key)
	return ok
}

func (r *recorder) gets(pattern string) ([]KVPair, error) {
	ix, err := r.store.glob(pattern)
	if err != nil {
		return nil, err
	}
	r.prefix(globPrefix(pattern))
	out := make([]KVPair, len(ix))
	for j, i := range ix {
		out[j] = KVPair{Key: r.store.keys[i], Value: r.store.vals[i]}
	}
	return out, nil
}

func (r *recorder) getvs(pattern string) ([]string, error) {
	ix, err := r.store.glob(pattern)
	if err != nil {
		return nil, err
	}
	r.prefix(globPrefix(pattern))
	out := make([]string, len(ix))
	for j, i := range ix {
		out[j] = r.store.vals[i]
	}
	sort.Strings(out)
	return out, nil
}

func (r *recorder) ls(p string) []string {
	p = backends.CleanKey(p)
	r.prefix(p)
	return r.store.children(p, false)
}

func (r *recorder) lsdir(p string) []string {
	p = backends.CleanKey(p)
	r.prefix(p)
	return r.store.children(p, true)
}

// Service is one entry of the catalog, as `services` returns it.
type Service struct {
	Name string
	Tags []string
}

// service returns a service's instances whose health checks pass, sorted by
// key (instance ID), keeping those that carry every tag given. The option
// "any" returns every instance whatever its health (Status says which).
// The instances come from the service-discovery key space (see
// backends.ServicePrefix), which the Consul backend serves.
func (r *recorder) service(name string, opts ...string) ([]backends.ServiceInstance, error) {
	root := path.Join(backends.ServicePrefix, name)
	var tags []string
	for _, o := range opts {
		if o == "any" {
			root = path.Join(backends.ServiceAnyPrefix, name)
			continue
		}
		tags = append(tags, o)
	}
	r.prefix(root)
	lo, hi := backends.PrefixRun(r.store.keys, root+"/")
	out := make([]backends.ServiceInstance, 0, hi-lo)
	for i := lo; i < hi; i++ {
		var inst backends.ServiceInstance
		if err := json.Unmarshal([]byte(r.store.vals[i]), &inst); err != nil {
			return nil, fmt.Errorf("service %s: instance %s: %w", name, r.store.keys[i], err)
		}
		if hasAll(inst.Tags, tags) {
			out = append(out, inst)
		}
	}
	return out, nil
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// services returns every service in the catalog with its tags, sorted by
// name.
func (r *recorder) services() ([]Service, error) {
	root := backends.ServicesPrefix
	r.prefix(root)
	lo, hi := backends.PrefixRun(r.store.keys, root+"/")
	out := make([]Service, 0, hi-lo)
	for i := lo; i < hi; i++ {
		name, err := url.PathUnescape(strings.TrimPrefix(r.store.keys[i], root+"/"))
		if err != nil {
			return nil, fmt.Errorf("services: %s: %w", r.store.keys[i], err)
		}
		s := Service{Name: name}
		if err := json.Unmarshal([]byte(r.store.vals[i]), &s.Tags); err != nil {
			return nil, fmt.Errorf("services: %s: %w", name, err)
		}
		out = append(out, s)
	}
	return out, nil
}
