// Package file is the "file" backend: it reads keys from YAML, JSON and TOML
// files, as confd's -file backend does, and watches them with fsnotify.
//
// # Inputs
//
// Options.Files lists files and directories. A directory is walked
// recursively and every regular file (or symlink to one) whose base name
// matches Options.Filter (a filepath.Match glob, default "*", with shell-style
// braces: "*.{yaml,json}") is read. New fails when a directory holds no
// file the filter matches.
// Names starting with "." (editor swap files, Kubernetes' ..data
// directories) are skipped in directory walks; name such a file directly in
// Files to read it. Files are read in the order given, directories in
// lexical order, and a later file wins over an earlier one on the same key.
//
// # Formats and keys
//
// The extension picks the parser, ignoring case: .json is JSON, .toml is
// TOML, anything else (.yaml, .yml, none) is YAML; every document of a
// multi-document YAML file is read. The top level must be a mapping or a
// list. YAML is parsed by go.yaml.in/yaml/v3, and its plain values are read
// with YAML 1.1's rules, as confd (yaml.v2) reads them: yes/no/on/off/y/n
// in any of their YAML 1.1 spellings are "true"/"false", 0777 is "511",
// 0x1F is "31", 1e21 is "1000000000000000000000". Mapping keys stay
// strings (a "y:" key is "y", where confd crashes). Quoted values are
// strings as written.
//
// Nested mappings become path elements and list items their index:
//
//	db: {hosts: [a, b]}  ->  /db/hosts/0 = a, /db/hosts/1 = b
//
// Keys are cleaned with backends.CleanKey, except that a key with a "." or
// ".." element ("../../etc/passwd", "a/./b") is skipped with a warning
// naming the file and the key: cleaned, it would name another path. Scalars are rendered as confd
// renders them: strings as they are, booleans "true"/"false", integers in
// decimal, floats with strconv.FormatFloat(f, 'f', -1, 64) (1.0 -> "1",
// 1e3 -> "1000", never an exponent). A null value (YAML null, ~ or
// nothing; JSON null) yields no key, as in confd. Decimal integers keep
// every digit however large (confd drops the key beyond 64 bits). YAML
// timestamps keep their source text; TOML date-times are RFC 3339 (local
// ones as written). Empty mappings and lists yield no key.
//
// # Reads and revisions
//
// Get re-reads every file on each call (files are small, and size+mtime
// caching misses same-size writes within one timestamp tick). The revision
// is a counter, starting at 1 with the first successful read, that goes up
// by one whenever the merged contents change (and when a read succeeds
// after a failed one). Revisions are local to one Backend value.
//
// # Watching
//
// One fsnotify watcher, shared by every Watch of a Backend, watches the
// parent directory of each input file and every directory of each input
// directory tree, so both in-place writes and editors' write-to-temp-and-
// rename saves are seen, as are Kubernetes ConfigMap symlink swaps. Events
// are not debounced: a burst of events that arrives while the files are
// being re-read is coalesced into one re-read. After each re-read (Get's
// included), every watcher whose prefix has changed is sent an Update with
// the changed keys, sorted; nothing is sent when nothing under its prefix
// changed. Writes made faster than the files are re-read are seen as one
// change, and a writer that truncates and then writes may briefly expose
// an empty file: consumers debounce (internal/daemon does).
//
// Updates queue up while a receiver is slow; past 256 queued Updates they
// collapse into one Reset.
//
// A file that fails to parse while watched (half written, say) sends an
// Update with Err (once per distinct error), and the previous view is kept. When the files are
// valid again the watcher receives the changes relative to the last view it
// was sent — or a Reset to that same view if nothing changed — which marks
// the watch healthy again.
package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/confit-dev/confit/backends"
	"github.com/fsnotify/fsnotify"
)

// Backend reads and watches a set of files. It is safe for concurrent use.
// Create it with New; the zero value is not usable.
type Backend struct {
	inputs   []input
	filter   string   // as given, for messages
	patterns []string // filter with its braces expanded: a name matching any is read

	// loadMu serialises read+publish so that an older read can never be
	// published after a newer one.
	loadMu sync.Mutex

	mu      sync.Mutex
	rev     uint64            // revision of kvs; 0 before the first good read
	kvs     map[string]string // last good merged view; never mutated once published
	keys    []string          // kvs's keys sorted, or nil until sortedKeys
	loadErr error             // error of the last read, nil if it succeeded
	subs    map[*sub]struct{}
	fsw     *fsnotify.Watcher // started by the first Watch
	// watchedRead: a read that started once fsw was watching has been
	// published, so every later change will be seen and published too.
	watchedRead bool
	closed      bool

	done chan struct{} // closed by Close
	wg   sync.WaitGroup

	reads atomic.Uint64 // reads of the files, for Metrics

	dots backends.DotKeys // keys skipped for a "." or ".." element
}

// Metrics implements backends.MetricsReporter: reads_total counts the
// reads (and parses) of the files, one per Get and per change seen.
func (b *Backend) Metrics() map[string]uint64 {
	return map[string]uint64{"reads_total": b.reads.Load()}
}

// SetLogger sets where the backend warns about the keys it skips; call it
// before the first read. nil discards the warnings.
func (b *Backend) SetLogger(l *slog.Logger) { b.dots.Log = l }

// input is one entry of Config.Files, made absolute.
type input struct {
	path  string
	isDir bool
}

// New returns a Backend reading paths (files or directories). filter is a
// filepath.Match glob applied to the base names of files found in
// directories, braces expanded ("*.{yaml,json}"); "" means "*". New fails if
// paths is empty, the filter is malformed, a path cannot be stat'ed, or a
// directory holds no file the filter matches. It starts no goroutines: watching
// begins with the first Watch.
func New(paths []string, filter string) (*Backend, error) {
	if len(paths) == 0 {
		return nil, errors.New("file: no files given (use -file)")
	}
	if filter == "" {
		filter = "*"
	}
	patterns := expandBraces(filter)
	for _, p := range patterns {
		if _, err := filepath.Match(p, ""); err != nil {
			return nil, fmt.Errorf("file: filter %q: %w", filter, err)
		}
	}
	b := &Backend{
		filter:   filter,
		patterns: patterns,
		subs:     map[*sub]struct{}{},
		done:     make(chan struct{}),
	}
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("file: %s: %w", p, err)
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return nil, fmt.Errorf("file: %w", err)
		}
		in := input{path: abs, isDir: fi.IsDir()}
		if in.isDir {
			if err := b.checkDir(p, in); err != nil {
				return nil, err
			}
		}
		b.inputs = append(b.inputs, in)
	}
	return b, nil
}

// found is a file to read; inDir is set for files found by walking a
// directory, which may vanish between the walk and the read.
type found struct {
	path  string
	inDir bool
}

// files lists the files to read, in merge order.
func (b *Backend) files() ([]found, error) {
	var out []found
	for _, in := range b.inputs {
		if !in.isDir {
			out = append(out, found{path: in.path})
			continue
		}
		var err error
		if out, err = b.walk(out, in); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// walk appends to out the files of the directory in whose names match the
// filter, in lexical order.
func (b *Backend) walk(out []found, in input) ([]found, error) {
	err := filepath.WalkDir(in.path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != in.path && errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking: it holds nothing now
			}
			return err
		}
		name := d.Name()
		if p != in.path && strings.HasPrefix(name, ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if !b.match(name) {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			fi, err := os.Stat(p)
			if err != nil || !fi.Mode().IsRegular() {
				return nil // dangling link or link to a directory
			}
		} else if !d.Type().IsRegular() {
			return nil
		}
		out = append(out, found{path: p, inDir: true})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("file: walk %s: %w", in.path, err)
	}
	return out, nil
}

// match reports whether a file name found in a directory matches the filter.
func (b *Backend) match(name string) bool {
	for _, p := range b.patterns {
		if ok, _ := filepath.Match(p, name); ok {
			return true
		}
	}
	return false
}

// checkDir returns an error naming the directory (as given: arg) and the
// filter when no file in it matches: an empty store would only show later,
// as "key does not exist" in a template.
func (b *Backend) checkDir(arg string, in input) error {
	files, err := b.walk(nil, in)
	if err != nil || len(files) > 0 {
		return err
	}
	if b.filter == "*" {
		return fmt.Errorf("file: directory %s holds no file to read", arg)
	}
	return fmt.Errorf("file: no file in directory %s matches -filter %q", arg, b.filter)
}

// expandBraces expands the brace alternatives of a filter, as a shell
// does: "*.{yaml,yml}" is "*.yaml" and "*.yml"; braces nest, and a group
// without a comma, or without its closing brace, stays as written.
// filepath.Match has no braces of its own. At most maxPatterns patterns
// are returned; the rest of a larger expansion is dropped.
func expandBraces(pattern string) []string {
	open, close, alts := braceGroup(pattern)
	if open < 0 {
		return []string{pattern}
	}
	var out []string
	for _, alt := range alts {
		for _, p := range expandBraces(pattern[:open] + alt + pattern[close+1:]) {
			if len(out) == maxPatterns {
				return out
			}
			out = append(out, p)
		}
	}
	return out
}

// maxPatterns bounds the expansion of a filter's braces.
const maxPatterns = 256

// braceGroup finds the first brace group of pattern that has a comma at
// its top level: the offsets of its braces and its alternatives. open is
// -1 when there is none. Backslash escapes and [...] classes are skipped,
// as filepath.Match reads them.
func braceGroup(pattern string) (open, close int, alts []string) {
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case '\\':
			i++
		case '[':
			if j := strings.IndexByte(pattern[i+1:], ']'); j >= 0 {
				i += j + 1
			}
		case '{':
			depth, start := 0, i+1
			var parts []string
			for j := i + 1; j < len(pattern); j++ {
				switch pattern[j] {
				case '\\':
					j++
				case '{':
					depth++
				case ',':
					if depth == 0 {
						parts = append(parts, pattern[start:j])
						start = j + 1
					}
				case '}':
					if depth > 0 {
						depth--
						continue
					}
					if parts == nil {
						j = len(pattern) // no comma: literal; look further on
						continue
					}
					return i, j, append(parts, pattern[start:j])
				}
			}
		}
	}
	return -1, -1, nil
}

// read reads and merges every file. Errors name the file.
func (b *Backend) read() (merged map[string]string, err error) {
	b.reads.Add(1)
	paths, err := b.files()
	if err != nil {
		return nil, err
	}
	for _, f := range paths {
		data, err := os.ReadFile(f.path)
		if f.inDir && errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("file: %w", err)
		}
		kvs, err := parse(f.path, data)
		if err != nil {
			return nil, fmt.Errorf("file: %s: %w", f.path, err)
		}
		for k := range kvs {
			if backends.HasDotSegment(k) {
				// "../../etc/passwd" names no path outside its parent.
				b.dots.Skip(k, f.path)
				delete(kvs, k)
			}
		}
		if merged == nil {
			merged = kvs // parse returns a new map: no copy needed
		} else {
			maps.Copy(merged, kvs)
		}
	}
	if merged == nil {
		merged = map[string]string{}
	}
	return merged, nil
}

// refresh re-reads the files and publishes the result: on success the view
// is replaced (and the revision bumped) if it changed; on failure the last
// good view is kept and the error recorded. Either way every watcher queues
// what the new state means for its prefix.
// It returns the view and revision now current, and the read error.
func (b *Backend) refresh() (map[string]string, []string, uint64, error) {
	b.loadMu.Lock()
	defer b.loadMu.Unlock()
	b.mu.Lock()
	watching := b.fsw != nil
	b.mu.Unlock()
	kvs, err := b.read()

	b.mu.Lock()
	defer b.mu.Unlock()
	b.watchedRead = b.watchedRead || watching
	if err != nil {
		b.loadErr = err
	} else {
		// Recovering from a failed read is a new state too, so that the
		// Update saying so has a revision of its own.
		if b.rev == 0 || b.loadErr != nil || !maps.Equal(kvs, b.kvs) {
			b.kvs, b.keys = kvs, nil // sorted on first use
			b.rev++
		}
		b.loadErr = nil
	}
	for s := range b.subs {
		s.publish(b)
	}
	return b.kvs, b.keys, b.rev, err
}

// sortedKeys returns b.kvs's keys sorted: b.keys, sorted once per view.
// b.mu is held.
func (b *Backend) sortedKeys() []string {
	if b.keys == nil && len(b.kvs) > 0 {
		b.keys = slices.Sorted(maps.Keys(b.kvs))
	}
	return b.keys
}

// Get implements backends.Backend. It re-reads every file; a file that is
// missing or does not parse fails the whole Get with an error naming it.
func (b *Backend) Get(ctx context.Context, prefixes []string) (backends.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return backends.Snapshot{}, fmt.Errorf("file: get: %w", err)
	}
	kvs, keys, rev, err := b.refresh()
	if err != nil {
		return backends.Snapshot{}, err
	}
	clean := make([]string, len(prefixes))
	for i, p := range prefixes {
		clean[i] = backends.CleanKey(p)
	}
	n := 0
	for k := range kvs {
		if backends.UnderAny(k, clean) {
			n++
		}
	}
	if n == len(kvs) {
		// Every key is wanted: share the view, which is never modified
		// (a re-read replaces it), with its keys sorted.
		if keys == nil {
			keys = slices.Sorted(maps.Keys(kvs))
		}
		return backends.Snapshot{Rev: rev, KVs: kvs, Keys: keys}, nil
	}
	snap := backends.Snapshot{Rev: rev, KVs: make(map[string]string, n)}
	for k, v := range kvs {
		if backends.UnderAny(k, clean) {
			snap.KVs[k] = v
		}
	}
	return snap, nil
}

// Close implements backends.Backend. It stops the fsnotify watcher and every
// watch goroutine; all watch channels are closed when it returns. Close is
// idempotent.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.done)
	fsw := b.fsw
	b.mu.Unlock()
	var err error
	if fsw != nil {
		err = fsw.Close()
	}
	b.wg.Wait()
	if err != nil {
		return fmt.Errorf("file: close: %w", err)
	}
	return nil
}

var _ backends.Backend = (*Backend)(nil)
