// Package memory is an in-memory Backend for tests above the backends layer
// (engine, resource, CLI). It has revisions and watches like a real store:
// every Put or Delete bumps the revision, and watchers receive the change.
package memory

import (
	"context"
	"log/slog"
	"sync"

	"github.com/confit-dev/confit/backends"
)

func init() {
	// No settings.
	backends.Register("memory", func(context.Context, *struct{}, *slog.Logger) (backends.Backend, error) {
		return New(), nil
	})
}

// Store is an in-memory, watchable key-value store. The zero value is not
// usable; call New.
type Store struct {
	mu       sync.Mutex
	rev      uint64
	kvs      map[string]string
	watchers map[*watcher]struct{}
	closed   bool
	wg       sync.WaitGroup
	gets     int   // calls to Get, so tests can assert how often the store was read
	failGet  error // returned by Get when set, to simulate an outage
}

type watcher struct {
	prefix string
	ch     chan backends.Update
	buf    []backends.Update
	wake   chan struct{}
	done   chan struct{}
}

// New returns an empty store at revision 0.
func New() *Store {
	return &Store{kvs: map[string]string{}, watchers: map[*watcher]struct{}{}}
}

// Put sets keys (pairs of key, value) in one revision.
func (s *Store) Put(kv ...string) uint64 {
	changes := make([]backends.Change, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		changes = append(changes, backends.Change{Key: backends.CleanKey(kv[i]), Value: kv[i+1]})
	}
	return s.apply(changes)
}

// Delete removes keys in one revision.
func (s *Store) Delete(keys ...string) uint64 {
	changes := make([]backends.Change, 0, len(keys))
	for _, k := range keys {
		changes = append(changes, backends.Change{Key: backends.CleanKey(k), Deleted: true})
	}
	return s.apply(changes)
}

// SetFailGet makes every following Get fail with err (nil restores).
func (s *Store) SetFailGet(err error) {
	s.mu.Lock()
	s.failGet = err
	s.mu.Unlock()
}

// Gets returns how many times Get was called.
func (s *Store) Gets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets
}

// Rev returns the current revision.
func (s *Store) Rev() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev
}

func (s *Store) apply(changes []backends.Change) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rev++
	for _, c := range changes {
		if c.Deleted {
			delete(s.kvs, c.Key)
		} else {
			s.kvs[c.Key] = c.Value
		}
	}
	for w := range s.watchers {
		var mine []backends.Change
		for _, c := range changes {
			if backends.Under(c.Key, w.prefix) {
				mine = append(mine, c)
			}
		}
		if len(mine) == 0 {
			continue
		}
		w.buf = append(w.buf, backends.Update{Prefix: w.prefix, Rev: s.rev, Changes: mine})
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return s.rev
}

// Get implements backends.Backend.
func (s *Store) Get(ctx context.Context, prefixes []string) (backends.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets++
	if s.failGet != nil {
		return backends.Snapshot{}, s.failGet
	}
	snap := backends.Snapshot{Rev: s.rev, KVs: map[string]string{}}
	clean := make([]string, len(prefixes))
	for i, p := range prefixes {
		clean[i] = backends.CleanKey(p)
	}
	for k, v := range s.kvs {
		if backends.UnderAny(k, clean) {
			snap.KVs[k] = v
		}
	}
	return snap, nil
}

// Watch implements backends.Backend. Updates after rev that are no longer
// buffered are not replayed; the memory store only delivers changes made
// after Watch was called.
func (s *Store) Watch(ctx context.Context, prefix string, rev uint64) (<-chan backends.Update, error) {
	w := &watcher{
		prefix: backends.CleanKey(prefix),
		ch:     make(chan backends.Update),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		close(w.ch)
		return w.ch, nil
	}
	s.watchers[w] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.pump(ctx, w)
	return w.ch, nil
}

func (s *Store) pump(ctx context.Context, w *watcher) {
	defer s.wg.Done()
	defer close(w.ch)
	defer func() {
		s.mu.Lock()
		delete(s.watchers, w)
		s.mu.Unlock()
	}()
	for {
		s.mu.Lock()
		var next *backends.Update
		if len(w.buf) > 0 {
			u := w.buf[0]
			w.buf = w.buf[1:]
			next = &u
		}
		s.mu.Unlock()
		if next == nil {
			select {
			case <-ctx.Done():
				return
			case <-w.done:
				return
			case <-w.wake:
				continue
			}
		}
		select {
		case w.ch <- *next:
		case <-ctx.Done():
			return
		case <-w.done:
			return
		}
	}
}

// Close implements backends.Backend.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ws := make([]*watcher, 0, len(s.watchers))
	for w := range s.watchers {
		ws = append(ws, w)
	}
	s.mu.Unlock()
	for _, w := range ws {
		close(w.done)
	}
	s.wg.Wait()
	return nil
}

var _ backends.Backend = (*Store)(nil)
