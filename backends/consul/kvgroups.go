package consul

import (
	"slices"
	"strings"

	"github.com/confit-dev/confit/backends"
)

// KV watches are grouped into blocking queries. One query on the common
// parent of every watched prefix is the cheapest in connections, but when
// the prefixes have nothing in common that parent is "/": every change
// anywhere in the store would wake the query and transfer the whole store.
// So a watch joins the query whose prefixes share at least a first path
// segment with its own (the query's root widens to their common parent);
// a prefix that shares nothing with any query gets a query of its own, up
// to Options.MaxKVQueries and while every blocking query of the Client
// (KV and service) still has a connection of its own within
// Options.MaxBlockingConns. Beyond that the nearest queries merge. The
// roots of the queries do not overlap, so a change wakes one query (but
// for a split undone beside a sibling whose key only extends the merged
// parent's as a string, "sus/r0" beside "sus/r01": both then list that
// sibling's keys, and the merged hub skips them as outside its parent).
//
// A dense group (splitMin or more prefixes) is split by string prefix
// while blocking queries are left over: Consul lists keys by string
// prefix, so /sus/r000 ... /sus/r199 become one query listing "sus/r0"
// and one "sus/r1", each answer half the size (splitKV). A query for a new
// group comes first: the split is undone to make room (kvHubFor), as it is
// when a service query needs the connection (fitKVHubs).
//
// A group is a hub (or the split hubs of one); everything below runs
// under c.mu.

// splitMin is the fewest distinct prefixes a KV hub must have to be
// split: fewer make answers too small for the split to pay for the
// query.
const splitMin = 16

// listKey is the Consul key prefix a KV hub lists: its str when set and
// longer than the parent's key (the parent may have narrowed since the
// split), else the parent's. One is a prefix of the other: both are
// prefixes of every subscriber's key.
func listKey(parent, str string) string {
	if p := strings.TrimPrefix(parent, "/"); len(p) >= len(str) {
		return p
	}
	return str
}

// covers reports whether prefix (clean) belongs to h: under its parent and,
// for a split hub, starting with its str.
func (h *hub) covers(prefix string) bool {
	return backends.Under(prefix, h.parent) && strings.HasPrefix(prefix[1:], h.str)
}

// splitKV splits the KV hub h by string prefix, when it has splitMin or
// more prefixes, they have no common key prefix that is one of them, and
// the children of their longest common key prefix (by the next byte) fit
// the blocking queries left over: h keeps the first child, each other
// child gets a new hub and its subscribers move there (moveSub: a full read
// of the new hub gives them their state). It reports whether it split.
func (c *Client) splitKV(h *hub) bool {
	if h.base.kind != kindKV || h.retired || h.parent == "/" || len(h.byPrefix) < splitMin {
		return false
	}
	free := min(c.opts.MaxKVQueries-len(c.kvHubs), c.opts.MaxBlockingConns-len(c.kvHubs)-len(c.hubs))
	if free < 1 {
		return false
	}
	keys := make([]string, 0, len(h.byPrefix))
	for p := range h.byPrefix {
		keys = append(keys, p[1:])
	}
	slices.Sort(keys)
	first, last := keys[0], keys[len(keys)-1]
	n := 0
	for n < len(first) && n < len(last) && first[n] == last[n] {
		n++
	}
	lcp := first[:n]
	if first == lcp {
		return false // a prefix that is the common key prefix spans every child
	}
	var children []string // the keys' distinct bytes after lcp, in order
	for _, k := range keys {
		if ch := k[:n+1]; len(children) == 0 || children[len(children)-1] != ch {
			children = append(children, ch)
		}
	}
	if len(children) < 2 || len(children)-1 > free {
		return false
	}
	h.str = children[0]
	for _, ch := range children[1:] {
		nh := c.newHub(source{kind: kindKV})
		nh.str = ch
		c.kvHubs = append(c.kvHubs, nh)
		for p, subs := range h.byPrefix {
			if strings.HasPrefix(p[1:], ch) {
				for _, s := range slices.Clone(subs) {
					h.moveSub(s, nh)
				}
			}
		}
	}
	if h.cancelQuery != nil {
		h.cancelQuery()
	}
	return true
}

// moveSub moves s from h to dst. Its pending changes are dropped: dst's
// next answer is a full read (a new hub's first, or fullNext), from which
// s re-reads its prefix, so it misses nothing h had not delivered yet.
func (h *hub) moveSub(s *sub, dst *hub) {
	h.removeSub(s)
	s.h = dst
	clear(s.pending)
	s.pendIdx, s.pendFull = 0, false
	dst.addSub(s)
}

// kvHubFor returns the KV hub that the watch of prefix (clean) joins,
// creating one, or widening one and merging into it the hubs its new root
// covers.
func (c *Client) kvHubFor(prefix string) *hub {
	var (
		best      *hub
		bestCP    string
		bestDepth = -1
	)
	for _, h := range c.kvHubs {
		if h.covers(prefix) {
			return h
		}
		cp := commonParent([]string{h.parent, prefix})
		if d := depth(cp); d > bestDepth {
			best, bestCP, bestDepth = h, cp, d
		}
	}
	// "/" shares no segment with anything but covers everything: it joins.
	if bestDepth == 0 && prefix != "/" && !c.kvHubRoom() && c.unsplitKV() {
		return c.kvHubFor(prefix) // a group's own query comes before a split
	}
	if best == nil || (bestDepth == 0 && prefix != "/" && c.kvHubRoom()) {
		h := c.newHub(source{kind: kindKV})
		c.kvHubs = append(c.kvHubs, h)
		return h
	}
	if bestDepth == 0 && prefix != "/" {
		c.warnStoreWide(best, "prefix", prefix)
	}
	c.absorbUnder(best, bestCP)
	return best
}

// warnStoreWide logs, with attrs, that the KV hub dst is about to widen to
// "/" because no blocking query is left for a group that shares no path
// segment with the others: from then on every change anywhere in the store
// wakes that query and transfers the store. It logs once per widening.
func (c *Client) warnStoreWide(dst *hub, attrs ...any) {
	if dst.parent == "/" {
		return
	}
	c.log.Warn("consul: no blocking query left for a KV group with no path segment in common with the others; the KV watches now share one query on /, which any change in the store wakes",
		append(attrs, "joins", dst.parent, "kv_queries", len(c.kvHubs), "blocking_queries", len(c.kvHubs)+len(c.hubs), "max_blocking_conns", c.opts.MaxBlockingConns)...)
}

// kvHubRoom reports whether one more KV hub fits: below MaxKVQueries, and
// every blocking query, KV and service, keeps a connection of its own.
func (c *Client) kvHubRoom() bool {
	return len(c.kvHubs) < c.opts.MaxKVQueries && len(c.kvHubs)+len(c.hubs) < c.opts.MaxBlockingConns
}

// unsplitKV merges the hubs of one split group back into one (the pair of
// KV hubs with the deepest common parent, at least one split, sharing a
// first segment), freeing a blocking query. It reports false, doing
// nothing, when there is no such pair.
func (c *Client) unsplitKV() bool {
	var (
		dst       *hub
		cp        string
		bestDepth = -1
	)
	for i, a := range c.kvHubs {
		for _, b := range c.kvHubs[i+1:] {
			if a.str == "" && b.str == "" {
				continue
			}
			p := commonParent([]string{a.parent, b.parent})
			if d := depth(p); d > bestDepth && d > 0 { // split hubs share a segment; "/" would merge groups
				dst, cp, bestDepth = a, p, d
			}
		}
	}
	if dst == nil {
		return false
	}
	c.absorbUnder(dst, cp)
	return true
}

// fitKVHubs merges the two nearest KV hubs while the blocking queries
// outnumber MaxBlockingConns (a service hub was added) and more than one
// KV hub runs.
func (c *Client) fitKVHubs() {
	for len(c.kvHubs) > 1 && len(c.kvHubs)+len(c.hubs) > c.opts.MaxBlockingConns {
		var (
			dst       *hub
			cp        string
			bestDepth = -1
		)
		for i, a := range c.kvHubs {
			for _, b := range c.kvHubs[i+1:] {
				p := commonParent([]string{a.parent, b.parent})
				if d := depth(p); d > bestDepth {
					dst, cp, bestDepth = a, p, d
				}
			}
		}
		if bestDepth == 0 {
			c.warnStoreWide(dst, "cause", "a service watch took a blocking query")
		}
		c.absorbUnder(dst, cp)
	}
}

// absorbUnder widens dst to root and moves into it the subscribers of
// every other KV hub whose parent root covers; those hubs end. dst then
// re-reads its whole root (a full read), so a moved subscriber misses
// nothing its old hub had not delivered yet.
func (c *Client) absorbUnder(dst *hub, root string) {
	kept := c.kvHubs[:0]
	for _, h := range c.kvHubs {
		if h == dst || !backends.Under(h.parent, root) {
			kept = append(kept, h)
			continue
		}
		for s := range h.subs {
			h.moveSub(s, dst)
		}
		h.retire()
	}
	clear(c.kvHubs[len(kept):])
	c.kvHubs = kept
	if dst.parent != root {
		dst.parent = root
		dst.prefixesChanged = true
	}
	dst.str = "" // the split (if any) is undone: dst lists its whole parent
	dst.fullNext = true
	if dst.cancelQuery != nil {
		dst.cancelQuery()
	}
}

// newHub makes a hub for src and starts its goroutine.
func (c *Client) newHub(src source) *hub {
	h := &hub{c: c, base: src, wake: make(chan struct{}, 1), subs: map[*sub]struct{}{}, byPrefix: map[string][]*sub{}, state: map[string]*entry{}}
	if src.kind == kindKV && c.kvConn != nil {
		h.tap.direct = &direct{dial: c.kvConn.dial, total: &c.kvConn.answers}
	}
	c.wg.Add(1)
	go h.run()
	return h
}

// addSub subscribes s; a KV hub's parent widens to cover its prefix.
func (h *hub) addSub(s *sub) {
	h.subs[s] = struct{}{}
	if h.byPrefix[s.prefix] == nil {
		h.prefixesChanged = true
		if h.base.kind == kindKV {
			if len(h.byPrefix) == 0 {
				h.parent = s.prefix
			} else if !backends.Under(s.prefix, h.parent) {
				h.parent = commonParent([]string{h.parent, s.prefix})
			}
		}
	}
	h.byPrefix[s.prefix] = append(h.byPrefix[s.prefix], s)
}

// removeSub unsubscribes s. The parent is recomputed by the hub's loop.
func (h *hub) removeSub(s *sub) {
	delete(h.subs, s)
	subs := h.byPrefix[s.prefix]
	for i, o := range subs {
		if o == s {
			subs = append(subs[:i:i], subs[i+1:]...)
			break
		}
	}
	if len(subs) == 0 {
		delete(h.byPrefix, s.prefix)
		h.prefixesChanged = true
	} else {
		h.byPrefix[s.prefix] = subs
	}
}

// retire ends the hub: its query is cancelled and its goroutine returns.
func (h *hub) retire() {
	h.retired = true
	if h.cancelQuery != nil {
		h.cancelQuery()
	}
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// retireKV ends the KV hub h, which has no subscribers left, so that its
// slot can serve another group.
func (c *Client) retireKV(h *hub) {
	for i, o := range c.kvHubs {
		if o == h {
			c.kvHubs = append(c.kvHubs[:i:i], c.kvHubs[i+1:]...)
			break
		}
	}
	h.retire()
}

// depth is the number of segments of a clean path: 0 for "/".
func depth(p string) int {
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}
