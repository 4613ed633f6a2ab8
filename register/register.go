package register

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/internal/retry"
)

// session is one connection to one store, holding every registration of
// this process that uses that store. Its methods are safe for concurrent
// use.
type session interface {
	// set makes the store show r up (announced, passing) or down (absent,
	// critical). It is idempotent and, where the store allows, sends
	// nothing when the store already says so. An error is a store error:
	// the caller retries; it never turns a store error into a delete.
	set(ctx context.Context, r *Registration, up bool) error
	// changed returns a channel closed when every registration must be
	// set again (a lost etcd lease, a Consul agent that forgot its
	// services).
	changed() <-chan struct{}
	// refresh is how often set must be called even when nothing changed
	// (a Consul TTL check's heartbeat); 0 means never.
	refresh(r *Registration) time.Duration
	// concurrency is how many requests the session's client sends at once
	// (0: no limit); the runner queues the others before their timeout
	// starts.
	concurrency() int
	// deregister removes r from the store for good.
	deregister(ctx context.Context, r *Registration) error
	// forget drops what the session remembers of r's last set, so that
	// the next set sends r's settings whole (a reload changed them).
	forget(r *Registration)
	// close ends the session (revoking an etcd lease) and releases the
	// connection.
	close(ctx context.Context) error
}

// opener opens a session on the store spec names, for registrations whose
// shortest TTL is ttl. It must not block on the store: a store that is down
// at start is retried by the session.
type opener func(ctx context.Context, spec backends.Spec, ttl time.Duration, log *slog.Logger) (session, error)

var openers = map[string]opener{}

// driverName maps backend names to the driver registering in them.
func driverName(backend string) string {
	if backend == "etcdv3" {
		return "etcd"
	}
	return backend
}

// Options configure a Runner.
type Options struct {
	// Backend is the process-wide store, for registrations without their
	// own (Registration.Backend nil).
	Backend backends.Spec
	// Logger receives one line per transition and per change of store
	// health; nil discards.
	Logger *slog.Logger
	// storeTimeout bounds each store request (default 5 s); tests shorten
	// it.
	storeTimeout time.Duration
}

// Runner keeps a set of registrations in their stores: construct with New,
// then Run until the context ends. Status, WriteMetrics and Health may be
// called at any time from any goroutine.
type Runner struct {
	opts Options
	log  *slog.Logger
	http *http.Client

	mu   sync.Mutex
	regs []*regState // in configuration order; replaced whole by a reload

	reloads chan reloadRequest // served by Run
	ended   chan struct{}      // closed when Run returns
}

// reloadRequest asks Run to replace the registrations with regs; Run sends
// the outcome on done.
type reloadRequest struct {
	regs []*regState
	done chan error
}

// id is what the store holds the registration by: its store and, there,
// its etcd key or its Consul service ID. Two registrations with one id
// would overwrite each other. Across a reload, a registration with the
// same id keeps its entry in the store (an etcd key whose value's ID
// changed is still that key); one with a new id is another entry.
func (rs *regState) id() string {
	if driverName(rs.spec.Backend) == "etcd" {
		return rs.spec.Key() + "\x00key\x00" + rs.reg.Key
	}
	return rs.spec.Key() + "\x00id\x00" + rs.reg.ID
}

// current returns the registrations in configuration order.
func (r *Runner) current() []*regState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.regs
}

// regState is one registration and what the runner knows of it.
type regState struct {
	reg  *Registration
	spec backends.Spec

	mu          sync.Mutex
	state       State
	inStore     bool        // the store said what state asks, at the last try
	storeErr    error       // the last store error, nil after a success
	checkErr    error       // the last check's failure, nil after a pass
	lastCheck   time.Time   // when the last check completed
	ups         []time.Time // the check machine's up transitions, saved when its check ends (a reload carries them)
	transitions uint64
	passes      uint64
	failures    uint64
}

// New checks regs (defaults applied) and returns a Runner for them. It
// contacts no store.
func New(regs []*Registration, opts Options) (*Runner, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.storeTimeout == 0 {
		opts.storeTimeout = 5 * time.Second
	}
	r := &Runner{opts: opts, log: opts.Logger, http: newHTTPClient(), reloads: make(chan reloadRequest), ended: make(chan struct{})}
	states, err := r.states(regs)
	if err != nil {
		return nil, err
	}
	r.regs = states
	return r, nil
}

// states checks regs (defaults applied) and returns their states.
func (r *Runner) states(regs []*Registration) ([]*regState, error) {
	var out []*regState
	seen := map[string]string{}
	for _, reg := range regs {
		d := reg.WithDefaults()
		spec := r.opts.Backend
		if d.Backend != nil {
			spec = *d.Backend
		}
		if err := d.Validate(spec.Backend); err != nil {
			return nil, fmt.Errorf("register %s: %w", d.Name, err)
		}
		if _, ok := openers[driverName(spec.Backend)]; !ok {
			return nil, fmt.Errorf("register %s: backend %q is not in this build", d.Name, spec.Backend)
		}
		rs := &regState{reg: &d, spec: spec, checkErr: errNoCheck}
		if other, dup := seen[rs.id()]; dup {
			return nil, fmt.Errorf("register %s: registers the same %s as %s", d.Name, d.what(), other)
		}
		seen[rs.id()] = d.Name
		out = append(out, rs)
	}
	return out, nil
}

// Reload replaces the registrations with regs while Run runs, without
// letting any instance that stays drop out of its store:
//   - a registration the store holds by the same id (regState.id: the
//     store and the etcd key or Consul ID) keeps its state (an instance
//     that is up stays up, and its flap history) and is set again with
//     its new settings (value, tags, check, TTL heartbeat) at once;
//   - one that is gone is marked down, drained and deregistered, as at
//     shutdown;
//   - a new one starts down, as at start, and comes up after Rise passes.
//
// regs are checked first: an invalid registration, or a store that cannot
// be set up, is an error and changes nothing. A registration added back
// while its removed self still drains starts once that one is out of the
// store (Reload does not wait for it). An etcd lease keeps the TTL
// it was granted with: a new registration with a shorter TTL is kept on it
// with a warning (its key outlives a crash by the lease's TTL) until
// confit restarts. Reload returns once Run has applied regs; after Run has
// returned it is an error.
func (r *Runner) Reload(ctx context.Context, regs []*Registration) error {
	states, err := r.states(regs)
	if err != nil {
		return err
	}
	req := reloadRequest{regs: states, done: make(chan error, 1)}
	select {
	case r.reloads <- req:
	case <-r.ended:
		return errors.New("register: not running")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// what names the registered thing in logs: the etcd key or the Consul ID.
func (r *Registration) what() string {
	if r.Key != "" {
		return "key " + r.Key
	}
	return "service " + r.Service + " id " + r.ID
}

// Len returns the number of registrations.
func (r *Runner) Len() int { return len(r.current()) }

// Run keeps every registration in its store until ctx ends, then shuts
// down: each registration is marked down (etcd: its key deleted; Consul:
// its check critical), confit waits the longest Drain among those that
// were up, then deregisters them (etcd: the lease revoked; Consul: the
// service removed) and returns. Every store request is bounded, so the
// shutdown takes at most the drain plus a few request timeouts. Run
// returns an error only when a store cannot be set up at all (a bad
// setting); store outages are retried for as long as Run runs. While it
// runs, Reload replaces the registrations.
func (r *Runner) Run(ctx context.Context) error {
	defer close(r.ended)
	sessions := map[string]*liveSession{}
	closeAll := func() {
		for _, ls := range sessions {
			r.closeSession(ctx, ls)
		}
	}
	if err := r.openSessions(ctx, sessions, r.current()); err != nil {
		closeAll()
		return fmt.Errorf("register: %w", err)
	}
	keeps := map[*regState]liveKeep{}
	start := func(rs *regState) {
		ls := sessions[rs.spec.Key()]
		kctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			r.keep(kctx, rs, ls.s, ls.lim)
		}()
		keeps[rs] = liveKeep{cancel: cancel, done: done}
	}
	stopKeep := func(rs *regState) {
		k := keeps[rs]
		k.cancel()
		<-k.done
		delete(keeps, rs)
	}
	for _, rs := range r.current() {
		start(rs)
	}
	stop := context.WithoutCancel(ctx)
	var retiring sync.WaitGroup // registrations a reload removed
	// retired[id] is closed once the registration with that id that a
	// reload removed is out of its store: one added back under the same id
	// waits for it, lest the old one's deregistration delete the new one's
	// entry.
	retired := map[string]chan struct{}{}
	remove := func(rs *regState) {
		ls := sessions[rs.spec.Key()] // the map is Run's alone
		done := make(chan struct{})
		prev := retired[rs.id()] // an earlier self still draining, when it was re-added and removed again
		retired[rs.id()] = done
		retiring.Go(func() {
			defer close(done)
			r.retire(stop, []*regState{rs}, func(*regState) *liveSession { return ls })
			if prev != nil {
				<-prev // done says every earlier self is out of the store too
			}
		})
	}
	// waiting holds the registrations added back while their old entry
	// drains: each starts when ready hands it over, once that entry is out
	// of the store, so Reload (and the daemon's SIGHUP) need not wait the
	// drain.
	waiting := map[*regState]bool{}
	ready := make(chan *regState)
	startAfterRetired := func(rs *regState) {
		for id, done := range retired {
			select {
			case <-done:
				delete(retired, id)
			default:
			}
		}
		done, ok := retired[rs.id()]
		if !ok {
			start(rs)
			return
		}
		waiting[rs] = true
		go func() {
			select {
			case <-done:
			case <-ctx.Done():
				return
			}
			select {
			case ready <- rs:
			case <-ctx.Done():
			}
		}()
	}
	stopStarted := func(rs *regState) {
		if waiting[rs] {
			delete(waiting, rs) // not started: ready's hand-over is ignored
			return
		}
		stopKeep(rs)
	}
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case rs := <-ready:
			if waiting[rs] {
				delete(waiting, rs)
				start(rs)
			}
		case req := <-r.reloads:
			req.done <- r.apply(ctx, req.regs, sessions, startAfterRetired, stopStarted, remove)
		}
	}
	for rs := range keeps {
		<-keeps[rs].done
	}
	r.retire(stop, r.current(), func(rs *regState) *liveSession { return sessions[rs.spec.Key()] })
	retiring.Wait()
	closeAll()
	return nil
}

// liveSession is an open session with its request limit and the TTL it
// was opened for (an etcd lease's).
type liveSession struct {
	s   session
	lim chan struct{}
	ttl time.Duration
}

// closeSession closes ls within the store timeout, also when ctx has
// ended (shutdown).
func (r *Runner) closeSession(ctx context.Context, ls *liveSession) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.storeTimeout)
	defer cancel()
	_ = ls.s.close(cctx)
}

// liveKeep is a running keep: cancel ends it, done is closed when it has.
type liveKeep struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// openSessions opens a session for each store of regs that has none in
// sessions yet, for the shortest TTL of its registrations. On error the
// sessions it opened are closed and removed again.
func (r *Runner) openSessions(ctx context.Context, sessions map[string]*liveSession, regs []*regState) error {
	regsOf := map[string][]*regState{}
	var order []string
	for _, rs := range regs {
		k := rs.spec.Key()
		if _, open := sessions[k]; open {
			continue
		}
		if _, ok := regsOf[k]; !ok {
			order = append(order, k)
		}
		regsOf[k] = append(regsOf[k], rs)
	}
	for i, k := range order {
		group := regsOf[k]
		ttl := slices.MinFunc(group, func(a, b *regState) int { return int(a.reg.TTL - b.reg.TTL) }).reg.TTL
		spec := group[0].spec
		s, err := openers[driverName(spec.Backend)](ctx, spec, ttl, r.log.With("backend", spec.Backend))
		if err != nil {
			for _, o := range order[:i] {
				r.closeSession(ctx, sessions[o])
				delete(sessions, o)
			}
			return err
		}
		ls := &liveSession{s: s, ttl: ttl}
		if n := s.concurrency(); n > 0 {
			ls.lim = make(chan struct{}, n)
		}
		sessions[k] = ls
	}
	return nil
}

// apply is Reload's work, on Run's goroutine: next replaces the running
// registrations. start and stopKeep start and end a registration's keep;
// remove retires one that is gone.
func (r *Runner) apply(ctx context.Context, next []*regState, sessions map[string]*liveSession, start, stopKeep, remove func(*regState)) error {
	if err := r.openSessions(ctx, sessions, next); err != nil {
		return fmt.Errorf("register: registrations not reloaded, the ones in use stay: %w", err)
	}
	old := map[string]*regState{}
	for _, rs := range r.current() {
		old[rs.id()] = rs
	}
	var changed, removed int
	kept := map[*regState]bool{} // unchanged: running as they are
	for i, n := range next {
		o, ok := old[n.id()]
		if !ok {
			continue
		}
		delete(old, n.id())
		if reflect.DeepEqual(*o.reg, *n.reg) {
			next[i] = o
			kept[o] = true
			continue
		}
		stopKeep(o)
		n.carry(o)
		sessions[n.spec.Key()].s.forget(o.reg)
		changed++
	}
	for _, o := range r.current() {
		if _, gone := old[o.id()]; gone {
			stopKeep(o)
			remove(o)
			removed++
		}
	}
	r.mu.Lock()
	r.regs = next
	r.mu.Unlock()
	for _, n := range next {
		if kept[n] {
			continue
		}
		if ls := sessions[n.spec.Key()]; driverName(n.spec.Backend) == "etcd" && n.reg.TTL < ls.ttl {
			r.log.Warn("registration: its ttl is shorter than the etcd lease's, granted when the store's first registration started; the key keeps the lease's ttl until confit restarts",
				r.attrs(n, "ttl", n.reg.TTL.String(), "lease_ttl", ls.ttl.String())...)
		}
		start(n)
	}
	r.log.Info("registrations reloaded", "added", len(next)-len(kept)-changed, "changed", changed, "removed", removed, "unchanged", len(kept))
	return nil
}

// carry gives rs the state, counters and flap history of o, the
// registration it replaces (the same id, other settings): an instance that
// is up stays up.
func (rs *regState) carry(o *regState) {
	o.mu.Lock()
	defer o.mu.Unlock()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.state, rs.inStore, rs.storeErr, rs.checkErr, rs.lastCheck = o.state, o.inStore, o.storeErr, o.checkErr, o.lastCheck
	rs.transitions, rs.passes, rs.failures = o.transitions, o.passes, o.failures
	rs.ups = o.ups
}

// retire takes regs out of their stores (sessionOf finds each one's), as
// at shutdown: each is marked down, then confit waits the longest Drain
// among those that were up, then deregisters them. ctx is not cancelled by
// the shutdown (every request is bounded).
func (r *Runner) retire(ctx context.Context, regs []*regState, sessionOf func(*regState) *liveSession) {
	var wg sync.WaitGroup
	var drain time.Duration
	for _, rs := range regs {
		if rs.get() == Up {
			drain = max(drain, rs.reg.Drain)
		}
	}
	for _, rs := range regs {
		wg.Go(func() {
			was := rs.setState(Draining)
			ls := sessionOf(rs)
			err := r.request(ctx, ls.lim, func(ctx context.Context) error { return ls.s.set(ctx, rs.reg, false) })
			rs.stored(err)
			if was == Up {
				r.log.Info("registration draining", r.attrs(rs, "drain", rs.reg.Drain.String(), "err", errAttr(err))...)
			}
		})
	}
	wg.Wait()
	if drain > 0 {
		time.Sleep(drain)
	}
	for _, rs := range regs {
		wg.Go(func() {
			ls := sessionOf(rs)
			if err := r.request(ctx, ls.lim, func(ctx context.Context) error { return ls.s.deregister(ctx, rs.reg) }); err != nil {
				r.log.Warn("deregister", r.attrs(rs, "err", err)...)
				return
			}
			r.log.Info("registration deregistered", r.attrs(rs)...)
		})
	}
	wg.Wait()
}

// request runs one store request with the store timeout. With lim (the
// session's concurrency) it first waits for its turn, so that the timeout
// starts when the request can be sent, not while it queues behind others.
func (r *Runner) request(ctx context.Context, lim chan struct{}, do func(context.Context) error) error {
	if lim != nil {
		select {
		case lim <- struct{}{}:
			defer func() { <-lim }()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	rctx, cancel := context.WithTimeout(ctx, r.opts.storeTimeout)
	defer cancel()
	return do(rctx)
}

func errAttr(err error) any {
	if err == nil {
		return nil
	}
	return err.Error()
}

// attrs are the log attributes naming rs, then kv.
func (r *Runner) attrs(rs *regState, kv ...any) []any {
	a := []any{"registration", rs.reg.Name, "what", rs.reg.what()}
	return append(a, kv...)
}

// keep runs rs's checks and keeps the store in step with their verdict
// until ctx ends.
func (r *Runner) keep(ctx context.Context, rs *regState, s session, lim chan struct{}) {
	verdicts := make(chan State, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { r.check(ctx, rs, verdicts) })

	dirty := true
	failures := 0
	var retryC <-chan time.Time
	var refreshC <-chan time.Time
	if d := s.refresh(rs.reg); d > 0 {
		// 90–100 % of the period, so that registrations started
		// together do not send their heartbeats in step.
		t := time.NewTicker(d - time.Duration(rand.Int64N(int64(d/10)+1)))
		defer t.Stop()
		refreshC = t.C
	}
	changed := s.changed()
	for {
		if dirty {
			dirty = false
			want := rs.get() == Up
			err := r.request(ctx, lim, func(ctx context.Context) error { return s.set(ctx, rs.reg, want) })
			if ctx.Err() != nil {
				return
			}
			if rs.stored(err) {
				if err != nil {
					r.log.Warn("registration: store failing; retrying (nothing is deleted because of it)", r.attrs(rs, "err", err)...)
				} else {
					r.log.Info("registration: store answering again", r.attrs(rs, "state", rs.get().String())...)
				}
			}
			retryC = nil
			if err != nil {
				failures++
				retryC = time.After(retry.Backoff(250*time.Millisecond, 10*time.Second, failures))
			} else {
				failures = 0
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-verdicts:
			dirty = true
		case <-retryC:
			dirty = true
		case <-refreshC:
			dirty = true
		case <-changed:
			changed = s.changed()
			dirty = true
		}
	}
}

// check runs rs's check every interval (the first at once) and sends the
// new state on verdicts at each transition, logging it once.
func (r *Runner) check(ctx context.Context, rs *regState, verdicts chan State) {
	probe := newProber(rs.reg.Check, r.http)
	m := newMachine(rs.reg.Check, rs.reg.FlapLimit, rs.reg.FlapWindow)
	// Down with no ups at start; what a reload carried over (the flap
	// limit counts the ups before it too).
	rs.mu.Lock()
	m.state, m.ups = rs.state, rs.ups
	rs.mu.Unlock()
	defer func() {
		rs.mu.Lock()
		rs.ups = m.ups
		rs.mu.Unlock()
	}()
	t := time.NewTicker(rs.reg.Check.Interval)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, rs.reg.Check.Timeout)
		err := probe(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		state, changed := m.observe(now, err == nil)
		rs.checked(now, err)
		if changed {
			old := rs.setState(state)
			rs.mu.Lock()
			rs.transitions++
			rs.mu.Unlock()
			switch state {
			case Up:
				r.log.Info("registration up", r.attrs(rs, "was", old.String())...)
			case Held:
				r.log.Warn("registration held down: flap limit reached", r.attrs(rs, "flap_limit", rs.reg.FlapLimit, "flap_window", rs.reg.FlapWindow.String())...)
			default:
				r.log.Warn("registration down", r.attrs(rs, "was", old.String(), "check", rs.reg.Check.kind(), "err", errAttr(err))...)
			}
			select {
			case verdicts <- state:
			default: // the loop has one pending: it reads the state anew
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (rs *regState) get() State {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.state
}

// setState sets the state and returns the old one.
func (rs *regState) setState(s State) State {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	old := rs.state
	rs.state = s
	return old
}

func (rs *regState) checked(now time.Time, err error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.lastCheck, rs.checkErr = now, err
	if err == nil {
		rs.passes++
	} else {
		rs.failures++
	}
}

// stored records the outcome of a store request; it reports whether the
// store's health changed (to log once per change).
func (rs *regState) stored(err error) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	changed := (err == nil) != (rs.storeErr == nil)
	rs.storeErr = err
	rs.inStore = err == nil
	return changed
}

// ErrConflict is wrapped by the store error of a registration whose key
// another process owns (etcd: a key attached to another lease). confit
// never overwrites it; it retries with backoff until the key is free.
var ErrConflict = errors.New("owned by another registration")
