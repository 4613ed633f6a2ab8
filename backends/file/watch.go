package file

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"strings"

	"github.com/confit-dev/confit/backends"
	"github.com/fsnotify/fsnotify"
)

// maxQueue bounds the Updates a sub holds for a slow receiver; beyond it
// the queue collapses into one Reset.
const maxQueue = 256

// sub is one Watch call: a prefix, its channel, and the Updates owed to its
// receiver. Every field but ch, wake and ctx is guarded by Backend.mu.
type sub struct {
	ctx    context.Context
	prefix string
	ch     chan backends.Update
	wake   chan struct{} // capacity 1: "queue may be non-empty"

	view     map[string]string // keys under prefix as of the last queued Update
	rev      uint64            // revision of view
	queue    []backends.Update
	degraded bool   // the last queued Update is an Err
	errMsg   string // text of that Err
}

// poke wakes the sub's goroutine without blocking.
func (s *sub) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// publish queues what b's current state means for s: the changes under
// its prefix, an Err when a read failed, or a Reset when it recovered from
// one without changes. Called with b.mu held.
func (s *sub) publish(b *Backend) {
	rev, loadErr := b.rev, b.loadErr
	if loadErr != nil {
		if s.degraded && s.errMsg == loadErr.Error() {
			return
		}
		s.degraded, s.errMsg = true, loadErr.Error()
		s.push(backends.Update{Prefix: s.prefix, Rev: rev, Err: loadErr})
		return
	}
	if rev == s.rev && !s.degraded {
		return // the revision moves whenever the contents do
	}
	view := b.under(s.prefix)
	changes := backends.Diff(s.view, view)
	if len(changes) == 0 && !s.degraded {
		s.rev = rev
		return
	}
	s.view, s.rev, s.degraded, s.errMsg = view, rev, false, ""
	if len(changes) > 0 {
		s.push(backends.Update{Prefix: s.prefix, Rev: rev, Changes: changes})
	} else {
		// Healthy again and nothing changed: a Reset says so, since an
		// Update must carry an error, a reset or changes.
		s.push(backends.Update{Prefix: s.prefix, Rev: rev, Reset: true, KVs: maps.Clone(view)})
	}
}

// push queues u (s.view and s.degraded already reflect it) and wakes the
// pump. When the receiver has fallen too far behind, the queue collapses
// into a Reset to the current view, followed by the current Err if any.
func (s *sub) push(u backends.Update) {
	s.queue = append(s.queue, u)
	if len(s.queue) > maxQueue {
		clear(s.queue)
		s.queue = append(s.queue[:0], backends.Update{Prefix: s.prefix, Rev: s.rev, Reset: true, KVs: maps.Clone(s.view)})
		if s.degraded {
			s.queue = append(s.queue, u) // u is the Err
		}
	}
	s.poke()
}

// Watch implements backends.Backend.
//
// The first Watch starts the Backend's fsnotify watcher, then the files are
// read. With rev 0 or the revision that read yields, the watch delivers the
// changes made from then on; with any other rev (revisions are not kept) the
// first Update is a Reset holding every key under prefix. If the files
// cannot be read, Watch fails unless an earlier read succeeded, in which
// case the watch starts from that view and its first Update carries the
// error.
//
// Each Update holds the changes between two successive reads that differ
// under prefix; writes made faster than the backend reads them are seen as
// one change. Updates queue up while the receiver is slow; past a bound
// they collapse into one Reset. The channel is closed when ctx is done or
// Close is called.
func (b *Backend) Watch(ctx context.Context, prefix string, rev uint64) (<-chan backends.Update, error) {
	s := &sub{
		ctx:    ctx,
		prefix: backends.CleanKey(prefix),
		ch:     make(chan backends.Update),
		wake:   make(chan struct{}, 1),
	}
	if closed, err := b.startWatcher(); closed {
		close(s.ch)
		return s.ch, nil
	} else if err != nil {
		return nil, err
	}
	// Read after the watcher is in place, so that no change can fall between
	// the baseline and the first event; once such a read has a good view,
	// later Watch calls start from it (200 prefixes: one read, not 200).
	b.mu.Lock()
	current := b.watchedRead && b.rev != 0
	b.mu.Unlock()
	if !current {
		if _, _, cur, err := b.refresh(); err != nil && cur == 0 {
			return nil, err
		}
	}

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		close(s.ch)
		return s.ch, nil
	}
	// The baseline is taken under the lock that publishing holds, so every
	// later change is diffed against it.
	s.view, s.rev = b.under(s.prefix), b.rev
	if rev != 0 && rev != b.rev {
		s.push(backends.Update{Prefix: s.prefix, Rev: b.rev, Reset: true, KVs: maps.Clone(s.view)})
	}
	if b.loadErr != nil {
		s.publish(b)
	}
	b.subs[s] = struct{}{}
	b.wg.Add(1)
	b.mu.Unlock()
	go b.pump(s)
	return s.ch, nil
}

// startWatcher starts the shared fsnotify watcher on first use. It reports
// closed if the Backend is closed.
func (b *Backend) startWatcher() (closed bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return true, nil
	}
	if b.fsw != nil {
		return false, nil
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return false, fmt.Errorf("file: watch: %w", err)
	}
	seen := map[string]bool{}
	for _, in := range b.inputs {
		if in.isDir {
			err = addTree(fsw, in.path, seen)
		} else if dir := filepath.Dir(in.path); !seen[dir] {
			seen[dir] = true
			err = fsw.Add(dir)
		}
		if err != nil {
			fsw.Close()
			return false, fmt.Errorf("file: watch %s: %w", in.path, err)
		}
	}
	b.fsw = fsw
	b.wg.Add(1)
	go b.loop(fsw)
	return false, nil
}

// addTree watches dir and every directory below it, skipping hidden ones as
// the read walk does. Directories already in seen are skipped; seen may be
// nil.
func addTree(fsw *fsnotify.Watcher, dir string, seen map[string]bool) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if p != dir && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if seen != nil {
			if seen[p] {
				return nil
			}
			seen[p] = true
		}
		return fsw.Add(p)
	})
}

// loop turns fsnotify events into re-reads. It is not debounced: it takes
// one event, then every event already queued behind it, and re-reads once.
// Events that arrive during the re-read are taken on the next pass.
func (b *Backend) loop(fsw *fsnotify.Watcher) {
	defer b.wg.Done()
	for {
		relevant := false
		select {
		case <-b.done:
			return
		case ev, ok := <-fsw.Events:
			if !ok {
				return
			}
			relevant = b.relevant(fsw, ev)
		case _, ok := <-fsw.Errors:
			if !ok {
				return
			}
			relevant = true // events may have been lost (queue overflow): re-read
		}
	drain:
		for {
			select {
			case ev, ok := <-fsw.Events:
				if !ok {
					return
				}
				if b.relevant(fsw, ev) {
					relevant = true
				}
			case _, ok := <-fsw.Errors:
				if !ok {
					return
				}
				relevant = true
			default:
				break drain
			}
		}
		if relevant {
			b.refresh() // errors reach watchers through loadErr
		}
	}
}

// relevant reports whether ev may change what the files hold, and watches
// directories created inside input directories.
func (b *Backend) relevant(fsw *fsnotify.Watcher, ev fsnotify.Event) bool {
	name := filepath.Clean(ev.Name)
	structural := ev.Has(fsnotify.Create) || ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename)
	hit := false
	for _, in := range b.inputs {
		if !in.isDir {
			switch {
			case name == in.path:
				hit = true
			case structural && filepath.Dir(name) == filepath.Dir(in.path):
				// A rename or creation next to the file may be a symlink swap
				// (Kubernetes ConfigMaps) that changes what in.path points to.
				hit = true
			}
			continue
		}
		if name != in.path && !strings.HasPrefix(name, in.path+string(filepath.Separator)) {
			continue
		}
		if structural {
			// A new directory must be watched before it is read, so that
			// files created in it from now on are seen; the re-read that
			// follows picks up files already there.
			if ev.Has(fsnotify.Create) && !strings.HasPrefix(filepath.Base(name), ".") {
				_ = addTree(fsw, name, nil) // no-op for files, harmless for vanished dirs
			}
			hit = true // a removed or renamed name may be a directory of files
			continue
		}
		base := filepath.Base(name)
		if b.match(base) && !strings.HasPrefix(base, ".") {
			hit = true
		}
	}
	return hit
}

// pump delivers s's queued Updates until ctx is done or the Backend
// closes, then closes s.ch.
func (b *Backend) pump(s *sub) {
	defer b.wg.Done()
	defer close(s.ch)
	defer func() {
		b.mu.Lock()
		delete(b.subs, s)
		b.mu.Unlock()
	}()
	for {
		b.mu.Lock()
		var u backends.Update
		ok := len(s.queue) > 0
		if ok {
			// Taken off the queue before sending: a collapse while the send
			// blocks then only replaces what comes after it.
			u = s.queue[0]
			s.queue[0] = backends.Update{}
			s.queue = s.queue[1:]
		}
		b.mu.Unlock()
		if !ok {
			select {
			case <-s.ctx.Done():
				return
			case <-b.done:
				return
			case <-s.wake:
				continue
			}
		}
		select {
		case s.ch <- u:
		case <-s.ctx.Done():
			return
		case <-b.done:
			return
		}
	}
}

// under returns a new map of the entries of b's view under prefix, found
// in its sorted keys. b.mu is held.
func (b *Backend) under(prefix string) map[string]string {
	out := map[string]string{}
	keys := b.sortedKeys()
	lo, hi := backends.PrefixRun(keys, prefix)
	for _, k := range keys[lo:hi] {
		if backends.Under(k, prefix) {
			out[k] = b.kvs[k]
		}
	}
	return out
}
