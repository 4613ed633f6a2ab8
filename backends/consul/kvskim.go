package consul

import "bytes"

// A KV answer lists every key under the hub's root however few changed,
// and scanning all of it was the largest part of the hub's work on a
// change (105 µs of the daemon's ~0.6 ms for 200 keys). Most of it can be
// skipped. When the state is the previous answer's listing entry for entry
// (differ.since), an entry listed with a ModifyIndex at or below that
// answer's index is normally unchanged: the previous answer was read at an
// index at or above its own X-Consul-Index (the highest ModifyIndex it
// listed), so it listed that entry, with that ModifyIndex. Only the entries
// above it changed or are new; they are found by their "ModifyIndex"
// member, which appears once in each object and, followed by ':', nowhere
// else (inside a JSON string a '"' either ends the string or is escaped),
// and only their objects are parsed.
//
// "Normally": a listing can also hold old entries the previous answer did
// not (a snapshot restored from a store further ahead, a token's ACL
// policy changed to show other keys), so an entry at or below since is only
// taken as unchanged when the previous answer listed its key, unescaped,
// with that ModifyIndex (differ.prev, that answer's keys in their order:
// both listings are in key order, so the match is a merge, not a lookup);
// anything else sends the answer to the full scan. Keys that went away are
// not listed at all: the count of unchanged entries then falls short of the
// state, and the answer is scanned in full, as is any answer the skim
// cannot read with certainty. FuzzSkimKV holds the skim to the full scan.

// skim compares the answer b with d.old as scanKVList with d.pair would,
// reading only the objects of changed entries. It reports false, having
// handed d some of the pairs, when the full scan must decide instead (see
// restart); err is an error of d.pair.
func (d *differ) skim(b []byte) (ok bool, err error) {
	const member = `ModifyIndex"`
	s := jscan{b: b}
	if !s.eat('[') || !endsWith(b, ']') {
		return false, nil
	}
	var (
		unchanged int
		j         int     // the next entry of d.prev to match
		last      []byte  // the key listed before, for the order
		pos       = s.i   // where the next object's parse starts
		first     = true  // pos is right after '[': no object before it
		inObj     bool    // pos is after a member's value inside an object
		p         rawPair // reused: no allocation per pair
	)
	for from := pos; ; {
		at := findMember(b, from, member) // the opening quote
		if at < 0 {
			break
		}
		s.i = at + 1 + len(member)
		if !s.eat(':') {
			return false, nil
		}
		mod, okNum := s.uint()
		if !okNum {
			return false, nil
		}
		if mod <= d.since {
			k, okKey := firstKey(b[pos:at])
			if !okKey || (last != nil && bytes.Compare(k, last) <= 0) {
				return false, nil
			}
			for j < d.prev.len() && bytes.Compare(d.prev.key(j), k) < 0 {
				j++ // changed (listed further on) or deleted
			}
			if j == d.prev.len() || d.prev.mods[j] != mod || !bytes.Equal(d.prev.key(j), k) {
				return false, nil // not the previous answer's entry
			}
			j++
			unchanged++
			d.next.add(k, mod)
			last = k
			pos, inObj, first, from = s.i, true, false, s.i
			continue
		}
		// A changed entry: parse its object, the one after pos.
		s.i = pos
		if inObj && !s.finishObject() {
			return false, nil
		}
		if !first && !s.eat(',') {
			return false, nil
		}
		start := s.i
		p = rawPair{}
		if err := s.object(&p); err != nil {
			return false, nil
		}
		if start > at || s.i <= at || p.mod != mod {
			return false, nil // the member was not this object's
		}
		if last != nil && bytes.Compare(p.key, last) <= 0 {
			return false, nil
		}
		if err := d.pair(&p); err != nil {
			return false, err
		}
		if d.slow {
			return false, nil
		}
		last = p.key
		pos, inObj, first, from = s.i, false, false, s.i
	}
	// The rest: the last object's remaining members, then the end.
	s.i = pos
	if inObj && !s.finishObject() {
		return false, nil
	}
	if !s.eat(']') || s.end() != nil {
		return false, nil
	}
	if unchanged+d.seenOld != len(d.old) {
		return false, nil // keys went away
	}
	d.seenOld = len(d.old)
	return true, nil
}

// firstKey returns the value of the first Key member in w (the bytes from
// the end of the previous object's ModifyIndex, or of the previous object,
// up to this object's ModifyIndex member: Consul lists Key before it), when
// it is a string without escapes.
func firstKey(w []byte) ([]byte, bool) {
	const member = `Key"`
	i := findMember(w, 0, member)
	if i < 0 {
		return nil, false
	}
	s := jscan{b: w, i: i + 1 + len(member)}
	if !s.eat(':') || !s.eat('"') {
		return nil, false
	}
	k := w[s.i:]
	n := bytes.IndexByte(k, '"')
	if n < 0 || bytes.IndexByte(k[:n], '\\') >= 0 {
		return nil, false
	}
	return k[:n], true
}

// findMember returns the index of the opening quote of the first `"`+name
// in b at or after from, or -1; name ends with its closing quote. It is
// searched without the opening quote: '"' is every few bytes of JSON, the
// first letter of a member name rare, and bytes.Index skips ahead to it.
func findMember(b []byte, from int, name string) int {
	for {
		n := bytes.Index(b[from:], []byte(name))
		if n < 0 {
			return -1
		}
		at := from + n
		if at > 0 && b[at-1] == '"' {
			return at - 1
		}
		from = at + 1
	}
}

// listOrder is the clean keys (without their leading "/") and ModifyIndexes
// of a KV answer in its order, packed for the skim's merge.
type listOrder struct {
	keys []byte
	ends []int // key i is keys[ends[i-1]:ends[i]]
	mods []uint64
}

func (o *listOrder) reset() {
	o.keys, o.ends, o.mods = o.keys[:0], o.ends[:0], o.mods[:0]
}

func (o *listOrder) add(k []byte, mod uint64) {
	o.keys = append(o.keys, k...)
	o.ends = append(o.ends, len(o.keys))
	o.mods = append(o.mods, mod)
}

func (o *listOrder) len() int { return len(o.ends) }

func (o *listOrder) key(i int) []byte {
	from := 0
	if i > 0 {
		from = o.ends[i-1]
	}
	return o.keys[from:o.ends[i]]
}

// restart undoes what a skim that gave up handed d, for the full scan: a
// fresh gen, so the entries it marked seen count as unseen again.
func (d *differ) restart() {
	*d.gens++
	d.gen = *d.gens
	d.upds, d.at, d.seenOld, d.slow = d.upds[:0], nil, 0, false
	d.next.reset()
}

// finishObject consumes the members after a value inside an object and its
// closing brace.
func (s *jscan) finishObject() bool {
	for {
		if s.eat('}') {
			return true
		}
		if !s.eat(',') {
			return false
		}
		if _, _, ok := s.str(); !ok || !s.eat(':') || !s.skip(0) {
			return false
		}
	}
}

// endsWith reports whether the last byte of b other than JSON white space
// is c.
func endsWith(b []byte, c byte) bool {
	for i := len(b) - 1; i >= 0; i-- {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return b[i] == c
	}
	return false
}
