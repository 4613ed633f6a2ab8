package consul

import (
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
// roots of the queries never overlap, so a change wakes one query.
//
// A group is a hub; everything below runs under c.mu.

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
		if backends.Under(prefix, h.parent) {
			return h
		}
		cp := commonParent([]string{h.parent, prefix})
		if d := depth(cp); d > bestDepth {
			best, bestCP, bestDepth = h, cp, d
		}
	}
	// "/" shares no segment with anything but covers everything: it joins.
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
			h.removeSub(s)
			s.h = dst
			clear(s.pending)
			s.pendIdx, s.pendFull = 0, false
			dst.addSub(s)
		}
		h.retire()
	}
	clear(c.kvHubs[len(kept):])
	c.kvHubs = kept
	if dst.parent != root {
		dst.parent = root
		dst.prefixesChanged = true
	}
	dst.fullNext = true
	if dst.cancelQuery != nil {
		dst.cancelQuery()
	}
}

// newHub makes a hub for src and starts its goroutine.
func (c *Client) newHub(src source) *hub {
	h := &hub{c: c, base: src, wake: make(chan struct{}, 1), subs: map[*sub]struct{}{}, byPrefix: map[string][]*sub{}, state: map[string]*entry{}}
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
