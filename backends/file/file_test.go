package file

import (
	"context"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/confit-dev/confit/backends"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// writeFile writes data to dir/name, creating parent directories, and
// returns the path.
func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// newBackend builds a Backend and closes it when the test ends.
func newBackend(t *testing.T, filter string, paths ...string) *Backend {
	t.Helper()
	b, err := New(paths, filter)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func TestRegistered(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "a.yaml", "a: 1\n")
	b, err := backends.New(t.Context(), backends.Spec{Backend: "file", Settings: backends.Settings{"file": {p}}}, nil)
	if err != nil {
		t.Fatalf("backends.New: %v", err)
	}
	defer b.Close()
	snap, err := b.Get(t.Context(), []string{"/"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := snap.KVs, map[string]string{"/a": "1"}; !maps.Equal(got, want) {
		t.Errorf("Get = %v, want %v", got, want)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	ok := writeFile(t, dir, "a.yaml", "a: 1\n")
	tests := []struct {
		name    string
		paths   []string
		filter  string
		wantErr string
	}{
		{name: "no files", wantErr: "no files"},
		{name: "missing file", paths: []string{filepath.Join(dir, "nope.yaml")}, wantErr: "nope.yaml"},
		{name: "bad filter", paths: []string{ok}, filter: "[", wantErr: "filter"},
		{name: "bad filter in braces", paths: []string{ok}, filter: "{*.yaml,[}", wantErr: "filter"},
		{name: "filter matches no file", paths: []string{dir}, filter: "*.json", wantErr: "no file in directory " + dir + ` matches -filter "*.json"`},
		{name: "braces match no file", paths: []string{dir}, filter: "*.{yml,json}", wantErr: `matches -filter "*.{yml,json}"`},
		{name: "empty directory", paths: []string{t.TempDir()}, wantErr: "holds no file to read"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(tc.paths, tc.filter)
			if err == nil {
				b.Close()
				t.Fatalf("New succeeded, want error containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("New error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestGet(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.yaml", "app:\n  foo: a\n  foobar: a\n  shared: from-a\n")
	b := writeFile(t, dir, "b.json", `{"app": {"shared": "from-b", "foo": {"x": "b"}}}`)
	c := writeFile(t, dir, "c.toml", "[other]\nk = 1\n")
	tree := t.TempDir()
	writeFile(t, tree, "one.yaml", "tree:\n  one: 1\n")
	writeFile(t, tree, "sub/deeper/two.yml", "tree:\n  two: 2\n")
	writeFile(t, tree, "sub/notes.txt", "tree: {txt: 1}\n")
	writeFile(t, tree, ".hidden.yaml", "tree: {hidden: 1}\n")
	writeFile(t, tree, ".git/x.yaml", "tree: {git: 1}\n")
	if err := os.Symlink(filepath.Join(tree, "one.yaml"), filepath.Join(tree, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, tree, "zz.yaml", "tree: {one: override}\n")

	tests := []struct {
		name     string
		paths    []string
		filter   string
		prefixes []string
		want     map[string]string
	}{
		{
			name:     "merge: later file wins",
			paths:    []string{a, b},
			prefixes: []string{"/app/shared"},
			want:     map[string]string{"/app/shared": "from-b"},
		},
		{
			name:     "merge order follows the flags",
			paths:    []string{b, a},
			prefixes: []string{"/app/shared"},
			want:     map[string]string{"/app/shared": "from-a"},
		},
		{
			name:     "key boundary: /app/foo is not /app/foobar",
			paths:    []string{a, b},
			prefixes: []string{"/app/foo"},
			want:     map[string]string{"/app/foo": "a", "/app/foo/x": "b"},
		},
		{
			name:     "several prefixes, unclean",
			paths:    []string{a, c},
			prefixes: []string{"app/foobar/", "/other"},
			want:     map[string]string{"/app/foobar": "a", "/other/k": "1"},
		},
		{
			name:     "missing prefix adds nothing",
			paths:    []string{a},
			prefixes: []string{"/nope"},
			want:     map[string]string{},
		},
		{
			name:     "directory walk, default filter, hidden skipped, symlink followed",
			paths:    []string{tree},
			prefixes: []string{"/tree"},
			want:     map[string]string{"/tree/one": "override", "/tree/two": "2", "/tree/txt": "1"},
		},
		{
			name:     "directory walk with filter",
			paths:    []string{tree},
			filter:   "*.y*ml",
			prefixes: []string{"/"},
			want:     map[string]string{"/tree/one": "override", "/tree/two": "2"},
		},
		{
			name:     "directory walk with braces",
			paths:    []string{tree},
			filter:   "*.{yml,txt}",
			prefixes: []string{"/"},
			want:     map[string]string{"/tree/two": "2", "/tree/txt": "1"},
		},
		{
			name:     "filter only applies to directories",
			paths:    []string{c},
			filter:   "*.yaml",
			prefixes: []string{"/"},
			want:     map[string]string{"/other/k": "1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			be := newBackend(t, tc.filter, tc.paths...)
			snap, err := be.Get(t.Context(), tc.prefixes)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if !maps.Equal(snap.KVs, tc.want) {
				t.Errorf("Get = %v, want %v", snap.KVs, tc.want)
			}
			if snap.Rev != 1 {
				t.Errorf("Rev = %d, want 1", snap.Rev)
			}
		})
	}
}

func TestGetRevision(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "a.yaml", "a: 1\n")
	b := newBackend(t, "", p)
	get := func() uint64 {
		t.Helper()
		snap, err := b.Get(t.Context(), []string{"/"})
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		return snap.Rev
	}
	if r := get(); r != 1 {
		t.Fatalf("first Rev = %d, want 1", r)
	}
	if r := get(); r != 1 {
		t.Fatalf("Rev after no change = %d, want 1", r)
	}
	writeFile(t, dir, "a.yaml", "a: 2\n") // same size, maybe same mtime: still seen
	if r := get(); r != 2 {
		t.Fatalf("Rev after change = %d, want 2", r)
	}
	writeFile(t, dir, "a.yaml", "a:   2\n") // different bytes, same keys
	if r := get(); r != 2 {
		t.Fatalf("Rev after a no-op edit = %d, want 2", r)
	}
}

func TestGetErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", "a: 1\n")
	tests := []struct {
		name string
		file string
		data string
		want []string
	}{
		{name: "yaml", file: "bad.yaml", data: "a: 1\n b: [\n", want: []string{"file: ", "bad.yaml", "line 2"}},
		{name: "json", file: "bad.json", data: "{\n\"a\": }", want: []string{"bad.json", "line 2:"}},
		{name: "toml", file: "bad.toml", data: "a = \n", want: []string{"bad.toml", "line 1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := writeFile(t, dir, tc.file, tc.data)
			b := newBackend(t, "", good, bad)
			_, err := b.Get(t.Context(), []string{"/"})
			if err == nil {
				t.Fatal("Get succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Get error = %q, want it to contain %q", err, w)
				}
			}
		})
	}

	t.Run("file removed after New", func(t *testing.T) {
		p := writeFile(t, dir, "gone.yaml", "a: 1\n")
		b := newBackend(t, "", p)
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Get(t.Context(), []string{"/"}); err == nil || !strings.Contains(err.Error(), "gone.yaml") {
			t.Errorf("Get error = %v, want one naming gone.yaml", err)
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		b := newBackend(t, "", good)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := b.Get(ctx, []string{"/"}); err == nil {
			t.Error("Get with a cancelled context succeeded")
		}
	})
}

// TestGetSortedKeys checks Snapshot.Keys: the sorted keys when every key
// is wanted, else nil.
func TestGetSortedKeys(t *testing.T) {
	dir := t.TempDir()
	sorted := writeFile(t, dir, "sorted.yaml", "a:\n  x: 1\n  y: 2\nb: 3\n")
	unsorted := writeFile(t, dir, "unsorted.yaml", "b: 3\na: 1\n")
	other := writeFile(t, dir, "other.yaml", "c: 4\n")
	tests := []struct {
		name     string
		paths    []string
		prefixes []string
		want     []string
	}{
		{"sorted file, all keys", []string{sorted}, []string{"/"}, []string{"/a/x", "/a/y", "/b"}},
		{"sorted file, some keys", []string{sorted}, []string{"/a"}, nil},
		{"unsorted file", []string{unsorted}, []string{"/"}, []string{"/a", "/b"}},
		{"two files", []string{sorted, other}, []string{"/"}, []string{"/a/x", "/a/y", "/b", "/c"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(tc.paths, "")
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			snap, err := b.Get(context.Background(), tc.prefixes)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(snap.Keys, tc.want) {
				t.Errorf("Keys = %q, want %q", snap.Keys, tc.want)
			}
		})
	}
}

func TestExpandBraces(t *testing.T) {
	tests := []struct {
		pattern string
		want    []string
	}{
		{pattern: "*", want: []string{"*"}},
		{pattern: "*.{yaml,json}", want: []string{"*.yaml", "*.json"}},
		{pattern: "{a,b}{1,2}", want: []string{"a1", "a2", "b1", "b2"}},
		{pattern: "x{a,{b,c}}", want: []string{"xa", "xb", "xc"}},
		{pattern: "*.{yaml}", want: []string{"*.{yaml}"}},      // no comma: literal, as in a shell
		{pattern: "{a,b", want: []string{"{a,b"}},              // unterminated: literal
		{pattern: `\{a,b}`, want: []string{`\{a,b}`}},          // escaped
		{pattern: "[{]{a,b}", want: []string{"[{]a", "[{]b"}},  // a class is not a group
		{pattern: "{x}.{a,}", want: []string{"{x}.a", "{x}."}}, // empty alternative
		{pattern: "{,.}{yaml,yml}", want: []string{"yaml", "yml", ".yaml", ".yml"}},
	}
	for _, tc := range tests {
		t.Run(tc.pattern, func(t *testing.T) {
			if got := expandBraces(tc.pattern); !slices.Equal(got, tc.want) {
				t.Errorf("expandBraces(%q) = %q, want %q", tc.pattern, got, tc.want)
			}
		})
	}
	if got := len(expandBraces(strings.Repeat("{a,b}", 12))); got != maxPatterns {
		t.Errorf("expansion of 2^12 patterns kept %d, want %d", got, maxPatterns)
	}
}

// TestDotKeysSkipped is issue 20 item 3c: a mapping key with a "." or ".."
// element ("../../etc/passwd") never names a path outside its parent: the
// key is skipped, in every format, with a warning naming the file and the
// key; the other keys are read as before.
func TestDotKeysSkipped(t *testing.T) {
	dir := t.TempDir()
	files := []string{
		writeFile(t, dir, "v.yaml", "a:\n  ../../etc/passwd: y\n  ok: 1\n  x/./y: 2\n"),
		writeFile(t, dir, "v.json", `{"j": {"..": {"etc": "j"}, "ok": "2"}}`),
		writeFile(t, dir, "v.toml", "[t]\n\"../up\" = \"t\"\nok = 3\n"),
	}
	var logs strings.Builder
	b := newBackend(t, "", files...)
	b.SetLogger(slog.New(slog.NewTextHandler(&logs, nil)))
	snap, err := b.Get(t.Context(), []string{"/"})
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	want := map[string]string{"/a/ok": "1", "/j/ok": "2", "/t/ok": "3"}
	if !maps.Equal(snap.KVs, want) {
		t.Errorf("Get(/) = %v, want %v", snap.KVs, want)
	}
	for _, k := range []string{"/a/../../etc/passwd", "/a/x/./y", "/j/../etc", "/t/../up"} {
		if !strings.Contains(logs.String(), "key="+k) {
			t.Errorf("no warning naming %s in:\n%s", k, logs.String())
		}
	}
	for _, f := range files {
		if !strings.Contains(logs.String(), "file="+f) {
			t.Errorf("no warning naming the file %s in:\n%s", f, logs.String())
		}
	}
	// A second read does not warn again.
	n := strings.Count(logs.String(), "\n")
	if _, err := b.Get(t.Context(), []string{"/"}); err != nil {
		t.Fatal(err)
	}
	if m := strings.Count(logs.String(), "\n"); m != n {
		t.Errorf("second read logged %d more lines", m-n)
	}
}
