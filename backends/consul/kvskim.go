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
// policy changed to show other keys), so each entry at or below since is
// only taken as unchanged when the state holds its key, unescaped, with
// that ModifyIndex; anything else sends the answer to the full scan. Keys
// that went away are not listed at all: the count of state entries listed
// then falls short of the state, and the answer is scanned in full, as is
// any answer the skim cannot read with certainty. FuzzSkimKV holds the
// skim to the full scan.

// skim compares the answer b with d.old as scanKVList with d.pair would,
// reading only the objects of changed entries. It reports false, having
// handed d some of the pairs, when the full scan must decide instead (see
// restart); err is an error of d.pair.
func (d *differ) skim(b []byte) (ok bool, err error) {
	// Searched without its opening quote: '"' is every few bytes of JSON,
	// 'M' is rare, and bytes.Index skips ahead to the first byte.
	const member = `ModifyIndex"`
	s := jscan{b: b}
	if !s.eat('[') || !endsWith(b, ']') {
		return false, nil
	}
	var (
		pos   = s.i   // where the next object's parse starts
		first = true  // pos is right after '[': no object before it
		inObj bool    // pos is after a member's value inside an object
		p     rawPair // reused: no allocation per pair
	)
	for from := pos; ; {
		n := bytes.Index(b[from:], []byte(member))
		if n < 0 {
			break
		}
		at := from + n
		if at == 0 || b[at-1] != '"' {
			from = at + 1
			continue
		}
		at-- // the opening quote
		s.i = at + 1 + len(member)
		if !s.eat(':') {
			return false, nil
		}
		mod, okNum := s.uint()
		if !okNum {
			return false, nil
		}
		if mod <= d.since {
			if !d.unchanged(b[pos:at], mod) {
				return false, nil
			}
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
		if err := d.pair(&p); err != nil {
			return false, err
		}
		if d.slow {
			return false, nil
		}
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
	if d.seenOld != len(d.old) {
		return false, nil // keys went away
	}
	return true, nil
}

// unchanged marks as seen the state's entry for the object whose Key
// member is the first in w (the bytes from the end of the previous
// object's ModifyIndex, or of the previous object, up to this object's
// ModifyIndex member) when its key is unescaped and the state holds it with
// ModifyIndex mod, not yet seen in this answer; else it reports false.
func (d *differ) unchanged(w []byte, mod uint64) bool {
	// Searched without its opening quote, as in skim.
	const member = `Key"`
	i := 0
	for {
		n := bytes.Index(w[i:], []byte(member))
		if n < 0 {
			return false
		}
		i += n
		if i > 0 && w[i-1] == '"' {
			break
		}
		i++
	}
	s := jscan{b: w, i: i + len(member)}
	if !s.eat(':') || !s.eat('"') {
		return false
	}
	k := w[s.i:]
	n := bytes.IndexByte(k, '"')
	if n < 0 {
		return false
	}
	k = k[:n]
	if bytes.IndexByte(k, '\\') >= 0 {
		return false
	}
	e := d.old[string(k)]
	if e == nil || e.mod != mod || e.seen == d.gen || e.from != "" {
		return false
	}
	e.seen = d.gen
	d.seenOld++
	return true
}

// restart undoes what a skim that gave up handed d, for the full scan: a
// fresh gen, so the entries it marked seen count as unseen again.
func (d *differ) restart() {
	*d.gens++
	d.gen = *d.gens
	d.upds, d.at, d.seenOld, d.slow = d.upds[:0], nil, 0, false
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
