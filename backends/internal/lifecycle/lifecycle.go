// Package lifecycle is what a store client's watches share with its
// Close: a context that Close cancels, the goroutines Close waits for, and
// whether Close was called.
package lifecycle

import (
	"context"
	"sync"
)

// Group is one client's lifecycle. Its methods are safe for concurrent
// use. Make one with New.
type Group struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
}

// New returns an open Group.
func New() *Group {
	g := &Group{}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	return g
}

// Context returns the context Close cancels: the parent of every watch.
func (g *Group) Context() context.Context { return g.ctx }

// Enter counts one goroutine more for Close to wait for (the caller calls
// Done when it ends) and runs locked, when not nil, where no Close can
// begin. It reports false, and counts and runs nothing, once Close has
// been called.
func (g *Group) Enter(locked func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	if locked != nil {
		locked()
	}
	return true
}

// Done ends a goroutine counted by Enter.
func (g *Group) Done() { g.wg.Done() }

// Go runs f in a goroutine Close waits for. Call it before Close: from
// the client's constructor, or from a goroutine (or locked func) counted
// by Enter.
func (g *Group) Go(f func()) { g.wg.Go(f) }

// Close cancels the context and waits until every goroutine counted by
// Enter or started by Go has ended. It reports false, and does nothing,
// when Close was called before.
func (g *Group) Close() bool {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return false
	}
	g.closed = true
	g.mu.Unlock()
	g.cancel()
	g.wg.Wait()
	return true
}
