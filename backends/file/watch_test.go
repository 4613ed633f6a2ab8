package file

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/confit-dev/confit/backends"
	"go.uber.org/goleak"
)

// waitTimeout bounds every wait for an Update; tests never sleep.
const waitTimeout = 10 * time.Second

// recv returns the next Update on ch.
func recv(t *testing.T, ch <-chan backends.Update) backends.Update {
	t.Helper()
	select {
	case u, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return u
	case <-time.After(waitTimeout):
		t.Fatal("no Update within", waitTimeout)
	}
	panic("unreachable")
}

// replace writes data to a temporary file next to p and renames it over p,
// as editors and config-management tools do.
func replace(t *testing.T, p, data string) {
	t.Helper()
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

// overwrite writes data over the start of p without truncating it, so a
// reader never sees the file empty; data must be at least as long as the
// file.
func overwrite(t *testing.T, p, data string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(data), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// mirror applies Updates from ch to view until it equals want, as the
// daemon's mirror does. It fails if an Update has an error or a key outside
// prefix.
func mirror(t *testing.T, ch <-chan backends.Update, prefix string, view, want map[string]string) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for !maps.Equal(view, want) {
		select {
		case u, ok := <-ch:
			if !ok {
				t.Fatal("watch channel closed")
			}
			if u.Err != nil {
				t.Fatalf("Update error: %v", u.Err)
			}
			if u.Reset {
				clear(view)
				maps.Copy(view, u.KVs)
			}
			for _, c := range u.Changes {
				if !backends.Under(c.Key, prefix) {
					t.Fatalf("Update for %s has key %s", prefix, c.Key)
				}
				if c.Deleted {
					delete(view, c.Key)
				} else {
					view[c.Key] = c.Value
				}
			}
		case <-deadline:
			t.Fatalf("view = %v after %v, want %v", view, waitTimeout, want)
		}
	}
}

func wantChanges(t *testing.T, u backends.Update, prefix string, want ...backends.Change) {
	t.Helper()
	if u.Err != nil || u.Reset || u.Prefix != prefix || !slices.Equal(u.Changes, want) {
		t.Fatalf("Update = %+v, want changes %+v for %s", u, want, prefix)
	}
}

func TestWatchFile(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "app.yaml", "app:\n  foo: 1\n  bar: 2\nother:\n  x: 1\n")
	b := newBackend(t, "", p)
	app, err := b.Watch(t.Context(), "/app", 0)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	other, err := b.Watch(t.Context(), "/other", 0)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}

	// In place, without truncating.
	overwrite(t, p, "app:\n  foo: 3\n  bar: 2\nother:\n  x: 1\n")
	u := recv(t, app)
	wantChanges(t, u, "/app", backends.Change{Key: "/app/foo", Value: "3"})
	if u.Rev < 2 {
		t.Errorf("Rev = %d, want > 1", u.Rev)
	}

	// Replaced by rename; /other changes too.
	replace(t, p, "app:\n  foo: 4\n  bar: 2\nother:\n  x: 2\n")
	wantChanges(t, recv(t, app), "/app", backends.Change{Key: "/app/foo", Value: "4"})
	// /other saw nothing for the first edit: its first Update is the second.
	wantChanges(t, recv(t, other), "/other", backends.Change{Key: "/other/x", Value: "2"})

	// A key deleted and one added, by rename.
	replace(t, p, "app:\n  foo: 4\n  baz: 5\nother:\n  x: 2\n")
	wantChanges(t, recv(t, app), "/app",
		backends.Change{Key: "/app/bar", Deleted: true},
		backends.Change{Key: "/app/baz", Value: "5"})

	// Only /other changes: /app hears nothing, as the next edit shows.
	replace(t, p, "app:\n  foo: 4\n  baz: 5\nother:\n  x: 3\n")
	wantChanges(t, recv(t, other), "/other", backends.Change{Key: "/other/x", Value: "3"})
	replace(t, p, "app:\n  foo: 6\n  baz: 5\nother:\n  x: 3\n")
	wantChanges(t, recv(t, app), "/app", backends.Change{Key: "/app/foo", Value: "6"})
	wantNoPending(t, other) // one-off check, the /other update above was the last one

	// A plain os.WriteFile truncates first; the receiver may see the
	// intermediate empty file, but ends at the right view.
	view := map[string]string{"/app/foo": "6", "/app/baz": "5"}
	if err := os.WriteFile(p, []byte("app:\n  foo: 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mirror(t, app, "/app", view, map[string]string{"/app/foo": "7"})
}

// Watches started one after another share the read the first one made
// once the file watcher was in place: 100 prefixes, one read of the file.
func TestWatchManyPrefixesReadOnce(t *testing.T) {
	dir := t.TempDir()
	var yaml strings.Builder
	for i := range 100 {
		fmt.Fprintf(&yaml, "app%03d:\n  port: %d\n", i, 8000+i)
	}
	p := writeFile(t, dir, "apps.yaml", yaml.String())
	b := newBackend(t, "", p)
	chans := make([]<-chan backends.Update, 100)
	for i := range chans {
		ch, err := b.Watch(t.Context(), fmt.Sprintf("/app%03d", i), 0)
		if err != nil {
			t.Fatal(err)
		}
		chans[i] = ch
	}
	if n := b.Metrics()["reads_total"]; n != 1 {
		t.Errorf("reads_total = %d after 100 Watch calls, want 1", n)
	}
	// Every one of them still follows the file.
	edited := strings.NewReplacer("port: 8000", "port: 9000", "port: 8099", "port: 9099").Replace(yaml.String())
	replace(t, p, edited)
	wantChanges(t, recv(t, chans[0]), "/app000", backends.Change{Key: "/app000/port", Value: "9000"})
	wantChanges(t, recv(t, chans[99]), "/app099", backends.Change{Key: "/app099/port", Value: "9099"})
}

// wantNoPending fails if an Update is already waiting on ch. It cannot
// prove none will come; tests use it only after a later Update on another
// prefix was received, which orders the two.
func wantNoPending(t *testing.T, ch <-chan backends.Update) {
	t.Helper()
	select {
	case u := <-ch:
		t.Fatalf("unexpected Update %+v", u)
	default:
	}
}

func TestWatchParseErrorKeepsView(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "app.yaml", "app: {a: 1, b: 2}\n")
	b := newBackend(t, "", p)
	ch, err := b.Watch(t.Context(), "/app", 0)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}

	replace(t, p, "app: {a: 1, b: [\n")
	u := recv(t, ch)
	if u.Err == nil || !strings.Contains(u.Err.Error(), "app.yaml") {
		t.Fatalf("Update = %+v, want an error naming app.yaml", u)
	}
	// Get fails too, but the watch's view is unchanged.
	if _, err := b.Get(t.Context(), []string{"/app"}); err == nil {
		t.Error("Get of a broken file succeeded")
	}

	// Valid again, with b changed: the diff is against the last good view.
	replace(t, p, "app: {a: 1, b: 3}\n")
	wantChanges(t, recv(t, ch), "/app", backends.Change{Key: "/app/b", Value: "3"})

	// Broken, then restored unchanged: a Reset to the same view marks it
	// healthy, at a new revision.
	replace(t, p, "app: {a: 1, b: [\n")
	bad := recv(t, ch)
	if bad.Err == nil {
		t.Fatalf("Update = %+v, want an error", bad)
	}
	replace(t, p, "app: {a: 1, b: 3}\n")
	u = recv(t, ch)
	if !u.Reset || u.Err != nil || u.Rev <= bad.Rev || !maps.Equal(u.KVs, map[string]string{"/app/a": "1", "/app/b": "3"}) {
		t.Fatalf("Update after recovery = %+v, want a Reset to the same view at a rev > %d", u, bad.Rev)
	}
}

func TestWatchDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", "app: {a: 1}\n")
	b := newBackend(t, "*.yaml", dir)
	ch, err := b.Watch(t.Context(), "/app", 0)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	// A file the filter rejects is ignored; a new subdirectory with a file
	// is picked up.
	writeFile(t, dir, "notes.txt", "app: {txt: 1}\n")
	writeFile(t, dir, "sub/deep/b.yaml", "app: {b: 2}\n")
	view := map[string]string{"/app/a": "1"}
	mirror(t, ch, "/app", view, map[string]string{"/app/a": "1", "/app/b": "2"})

	// A file created later in the new subdirectory is watched too.
	writeFile(t, dir, "sub/deep/c.yaml", "app: {c: 3}\n")
	mirror(t, ch, "/app", view, map[string]string{"/app/a": "1", "/app/b": "2", "/app/c": "3"})

	// Removing a whole subdirectory deletes its keys.
	if err := os.RemoveAll(filepath.Join(dir, "sub")); err != nil {
		t.Fatal(err)
	}
	mirror(t, ch, "/app", view, map[string]string{"/app/a": "1"})
}

func TestWatchRevision(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "app.yaml", "app: {a: 1}\n")
	b := newBackend(t, "", p)
	snap, err := b.Get(t.Context(), []string{"/app"})
	if err != nil {
		t.Fatal(err)
	}

	// Watching from the revision Get returned: only later changes.
	current, err := b.Watch(t.Context(), "/app", snap.Rev)
	if err != nil {
		t.Fatal(err)
	}
	// Watching from a revision the backend does not know: a Reset first.
	stale, err := b.Watch(t.Context(), "/app", snap.Rev+41)
	if err != nil {
		t.Fatal(err)
	}
	u := recv(t, stale)
	if !u.Reset || !maps.Equal(u.KVs, map[string]string{"/app/a": "1"}) || u.Rev != snap.Rev {
		t.Fatalf("first Update from a stale rev = %+v, want a Reset with /app/a at rev %d", u, snap.Rev)
	}

	replace(t, p, "app: {a: 2}\n")
	wantChanges(t, recv(t, current), "/app", backends.Change{Key: "/app/a", Value: "2"})
	wantChanges(t, recv(t, stale), "/app", backends.Change{Key: "/app/a", Value: "2"})
}

func TestWatchErrors(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "app.yaml", "app: [\n")
	b := newBackend(t, "", p)
	if ch, err := b.Watch(t.Context(), "/app", 0); err == nil || ch != nil {
		t.Errorf("Watch of a broken file = %v, %v; want an error and no channel", ch, err)
	}
}

func TestWatchContextCancel(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "app.yaml", "app: {a: 1}\n")
	b := newBackend(t, "", p)
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := b.Watch(ctx, "/app", 0)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("got an Update, want the channel closed")
		}
	case <-time.After(waitTimeout):
		t.Fatal("channel not closed after cancel")
	}
}

func TestCloseReleasesEverything(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	p := writeFile(t, dir, "app.yaml", "app: {a: 1}\n")
	b, err := New([]string{p, dir}, "")
	if err != nil {
		t.Fatal(err)
	}
	var chans []<-chan backends.Update
	for _, prefix := range []string{"/app", "/app", "/other", "/"} {
		ch, err := b.Watch(t.Context(), prefix, 0)
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, ch)
	}
	// One watch has an Update waiting that nobody reads.
	replace(t, p, "app: {a: 2}\n")

	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i, ch := range chans {
		// Closed already: drain at most a pending Update, without waiting.
		for range 2 {
			select {
			case _, ok := <-ch:
				if !ok {
					goto next
				}
			default:
				t.Fatalf("channel %d still open after Close", i)
			}
		}
		t.Fatalf("channel %d still open after Close", i)
	next:
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// Watch after Close returns a closed channel.
	ch, err := b.Watch(t.Context(), "/app", 0)
	if err != nil {
		t.Fatalf("Watch after Close: %v", err)
	}
	if _, ok := <-ch; ok {
		t.Error("Watch after Close delivered an Update")
	}
}

func TestWatchSlowReceiverGetsReset(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "app.yaml", "app: {n: 0}\n")
	b := newBackend(t, "", p)
	ch, err := b.Watch(t.Context(), "/app", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Far more changes than the queue holds, each made visible by a Get,
	// while nobody reads the channel.
	const writes = maxQueue + 10
	for i := 1; i <= writes; i++ {
		replace(t, p, "app: {n: "+strconv.Itoa(i)+"}\n")
		if _, err := b.Get(t.Context(), []string{"/app"}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{"/app/n": strconv.Itoa(writes)}
	view := map[string]string{"/app/n": "0"}
	resets, updates := 0, 0
	deadline := time.After(waitTimeout)
	for !maps.Equal(view, want) {
		select {
		case u := <-ch:
			updates++
			if u.Reset {
				resets++
				view = maps.Clone(u.KVs)
				continue
			}
			for _, c := range u.Changes {
				view[c.Key] = c.Value
			}
		case <-deadline:
			t.Fatalf("view = %v, want %v", view, want)
		}
	}
	if resets == 0 || updates > maxQueue+2 {
		t.Errorf("got %d updates with %d resets for %d changes; want the queue collapsed into a Reset", updates, resets, writes)
	}
}

// A filter with braces picks the files a watch reacts to as it picks the
// files read.
func TestWatchDirectoryBraces(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", "app: {a: 1}\n")
	b := newBackend(t, "*.{yaml,json}", dir)
	ch, err := b.Watch(t.Context(), "/app", 0)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	writeFile(t, dir, "notes.txt", "app: {txt: 1}\n")
	writeFile(t, dir, "b.json", `{"app": {"b": 2}}`)
	view := map[string]string{"/app/a": "1"}
	mirror(t, ch, "/app", view, map[string]string{"/app/a": "1", "/app/b": "2"})
}
