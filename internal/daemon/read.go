package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/confit-dev/confit/backends"
)

// ErrReadTimeout is wrapped by the error of a one-shot or interval read that
// did not complete within Config.ReadTimeout.
var ErrReadTimeout = errors.New("timed out")

// endpointer is implemented by backends that talk to a server: the nodes
// they use, for errors.
type endpointer interface{ Endpoints() []string }

// readStore connects to the backend behind key (on first use) and reads
// prefixes, within cfg.ReadTimeout when it is positive. A store that accepts
// connections but never answers (a frozen agent) then fails the read after
// the timeout, with an error naming the backend, its nodes and what timed
// out, even if the backend ignored the deadline: the read is abandoned.
func readStore(ctx context.Context, cfg Config, pool *pool, m *metrics, key string, prefixes []string) (backends.Snapshot, error) {
	if cfg.ReadTimeout <= 0 {
		b, err := pool.get(ctx, key)
		if err != nil {
			return backends.Snapshot{}, err
		}
		m.storeGets.Add(1)
		return b.Get(ctx, prefixes)
	}
	rctx, cancel := context.WithTimeout(ctx, cfg.ReadTimeout)
	defer cancel()
	type result struct {
		snap  backends.Snapshot
		nodes []string
		err   error
		step  string
	}
	done := make(chan result, 1)
	go func() {
		b, err := pool.get(rctx, key)
		if err != nil {
			done <- result{err: err, step: "connect"}
			return
		}
		var nodes []string
		if e, ok := b.(endpointer); ok {
			nodes = e.Endpoints()
		}
		m.storeGets.Add(1)
		snap, err := b.Get(rctx, prefixes)
		done <- result{snap: snap, nodes: nodes, err: err, step: "read"}
	}()
	var r result
	select {
	case r = <-done:
	case <-rctx.Done():
		r = result{err: rctx.Err(), step: "connect or read"}
	}
	if r.err == nil || ctx.Err() != nil || rctx.Err() == nil {
		return r.snap, r.err
	}
	bcfg := pool.config(key)
	nodes := r.nodes
	if len(nodes) == 0 {
		nodes = bcfg.Settings["node"]
	}
	node := strings.Join(nodes, ",")
	if node == "" {
		node = "(default)"
	}
	return backends.Snapshot{}, fmt.Errorf("%s (node %s): %s of %s %w after %v (-timeout): %w",
		bcfg.Backend, node, r.step, strings.Join(prefixes, ", "), ErrReadTimeout, cfg.ReadTimeout, r.err)
}

// config is the backend spec behind key.
func (p *pool) config(key string) backends.Spec {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.specs[key]
}
