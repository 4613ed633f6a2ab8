package resource

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// fixture is a confdir with one resource app.toml rendering
// "db={{getv "/db/url"}}" to dest in its own directory.
type fixture struct {
	dir, destDir, dest string
	r                  *Resource
	logs               *bytes.Buffer
}

// newFixture loads a resource with prefix /app, keys ["/db"], and the
// extra TOML lines given.
func newFixture(t *testing.T, extra string, opts Options) *fixture {
	t.Helper()
	f := &fixture{destDir: t.TempDir()}
	f.dest = filepath.Join(f.destDir, "app.conf")
	toml := "[template]\nsrc = \"app.tmpl\"\ndest = \"" + f.dest + "\"\nprefix = \"/app\"\nkeys = [\"/db\"]\n" + extra
	f.dir = confDir(t, map[string]string{
		"conf.d/app.toml":    toml,
		"templates/app.tmpl": "db={{getv \"/db/url\"}}\n",
	})
	opts.ConfDir = f.dir
	opts.Logger, f.logs = logBuffer()
	r, err := Load(filepath.Join(f.dir, "conf.d", "app.toml"), opts)
	if err != nil {
		t.Fatal(err)
	}
	f.r = r
	return f
}

func kvs(url string) map[string]string {
	return map[string]string{"/app/db/url": url, "/app/other": "ignored", "/appx/db/url": "wrong"}
}

// stageFiles lists files in dir starting with ".app.conf".
func stageFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, ".app.conf*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func fileText(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRender(t *testing.T) {
	f := newFixture(t, "", Options{})
	out, reads, err := f.r.Render(kvs("pg://x"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "db=pg://x\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if want := (Reads{Keys: []string{"/app/db/url"}}); !reflect.DeepEqual(reads, want) {
		t.Errorf("reads: got %+v, want %+v", reads, want)
	}
}

func TestSyncWritesThenSkips(t *testing.T) {
	f := newFixture(t, "mode = \"640\"\n", Options{})
	ctx := t.Context()
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)

	res, err := f.r.Sync(ctx, kvs("pg://x"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || !res.Written || res.Noop {
		t.Errorf("first sync: got %+v", res)
	}
	if got := fileText(t, f.dest); got != "db=pg://x\n" {
		t.Errorf("dest: got %q", got)
	}
	fi1, err := os.Stat(f.dest)
	if err != nil {
		t.Fatal(err)
	}
	if fi1.Mode().Perm() != 0o640 {
		t.Errorf("mode: got %v, want 0640 whatever the umask", fi1.Mode())
	}
	if !strings.Contains(f.logs.String(), `msg="Target config `+f.dest+` has been updated" resource=app.toml dest=`+f.dest) {
		t.Errorf("logs: %s", f.logs)
	}

	res, err = f.r.Sync(ctx, kvs("pg://x"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed || res.Written {
		t.Errorf("second sync: got %+v", res)
	}
	fi2, err := os.Stat(f.dest)
	if err != nil {
		t.Fatal(err)
	}
	ino := func(fi os.FileInfo) uint64 { return fi.Sys().(*syscall.Stat_t).Ino }
	if ino(fi1) != ino(fi2) || !fi1.ModTime().Equal(fi2.ModTime()) {
		t.Errorf("unchanged dest was rewritten")
	}
	if !strings.Contains(f.logs.String(), `msg="Target config `+f.dest+` in sync"`) {
		t.Errorf("logs: %s", f.logs)
	}
	if s := stageFiles(t, f.destDir); len(s) != 0 {
		t.Errorf("stage files left: %q", s)
	}
}

func TestSyncModeChangeOnly(t *testing.T) {
	f := newFixture(t, "mode = \"0600\"\n", Options{})
	if err := os.WriteFile(f.dest, []byte("db=pg://x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(f.dest, 0o644)
	res, err := f.r.Sync(t.Context(), kvs("pg://x"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || !res.Written {
		t.Errorf("got %+v", res)
	}
	fi, _ := os.Stat(f.dest)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode: got %v", fi.Mode())
	}
}

func TestSyncKeepsExistingMode(t *testing.T) {
	f := newFixture(t, "", Options{})
	if err := os.WriteFile(f.dest, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Sync(t.Context(), kvs("pg://x")); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(f.dest)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode: got %v, want the existing 0600", fi.Mode())
	}
}

func TestSyncCheckCmd(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run("keep="+map[bool]string{false: "false", true: "true"}[keep], func(t *testing.T) {
			mark := filepath.Join(t.TempDir(), "reloaded")
			f := newFixture(t, "check_cmd = \"grep -q good {{.src}} || { echo rejected {{.dest}}; exit 1; }\"\nreload_cmd = \"touch "+mark+"\"\n",
				Options{KeepStageFile: keep})
			if err := os.WriteFile(f.dest, []byte("original"), 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := f.r.Sync(t.Context(), kvs("bad"))
			if err == nil || !strings.Contains(err.Error(), "check_cmd") || !strings.Contains(err.Error(), "exit status 1: rejected "+f.dest) {
				t.Fatalf("got error %v", err)
			}
			if !res.Changed || res.Written {
				t.Errorf("got %+v", res)
			}
			if got := fileText(t, f.dest); got != "original" {
				t.Errorf("dest changed to %q", got)
			}
			if _, err := os.Stat(mark); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("reload ran after a failed check")
			}
			stages := stageFiles(t, f.destDir)
			if keep {
				if len(stages) != 1 || fileText(t, stages[0]) != "db=bad\n" {
					t.Errorf("stage files: %q, want one kept", stages)
				}
			} else if len(stages) != 0 {
				t.Errorf("stage files left: %q", stages)
			}

			res, err = f.r.Sync(t.Context(), kvs("good"))
			if err != nil {
				t.Fatal(err)
			}
			if !res.Written || !res.Reloaded || fileText(t, f.dest) != "db=good\n" {
				t.Errorf("got %+v, dest %q", res, fileText(t, f.dest))
			}
		})
	}
}

func TestSyncReloadCmd(t *testing.T) {
	mark := filepath.Join(t.TempDir(), "reloaded")
	f := newFixture(t, "reload_cmd = \"cat {{.dest}} > "+mark+"\"\n", Options{})
	res, err := f.r.Sync(t.Context(), kvs("pg://x"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Reloaded {
		t.Errorf("got %+v", res)
	}
	if got := fileText(t, mark); got != "db=pg://x\n" {
		t.Errorf("reload saw %q, want the new file", got)
	}
	// Unchanged: no reload.
	os.Remove(mark)
	if res, err := f.r.Sync(t.Context(), kvs("pg://x")); err != nil || res.Reloaded {
		t.Fatalf("got %+v, %v", res, err)
	}
	if _, err := os.Stat(mark); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("reload ran for an unchanged file")
	}
	// SkipReload, then Reload.
	res, err = f.r.Apply(t.Context(), kvs("pg://y"), InstallOptions{SkipReload: true})
	if err != nil || !res.Written || res.Reloaded {
		t.Fatalf("got %+v, %v", res, err)
	}
	if _, err := os.Stat(mark); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("reload ran despite SkipReload")
	}
	if err := f.r.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := fileText(t, mark); got != "db=pg://y\n" {
		t.Errorf("reload saw %q", got)
	}
}

func TestSyncReloadFailure(t *testing.T) {
	f := newFixture(t, "reload_cmd = \"echo nope; exit 2\"\n", Options{})
	res, err := f.r.Sync(t.Context(), kvs("pg://x"))
	if err == nil || !strings.Contains(err.Error(), `reload_cmd "echo nope; exit 2" failed: exit status 2: nope`) {
		t.Fatalf("got %v", err)
	}
	if !res.Written || res.Reloaded {
		t.Errorf("got %+v", res)
	}
}

func TestSyncNoop(t *testing.T) {
	mark := filepath.Join(t.TempDir(), "ran")
	var diff bytes.Buffer
	f := newFixture(t, "check_cmd = \"touch "+mark+"\"\nreload_cmd = \"touch "+mark+"\"\n", Options{Noop: true, Diff: &diff})
	if err := os.WriteFile(f.dest, []byte("db=old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := f.r.Sync(t.Context(), kvs("new"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || !res.Noop || res.Written {
		t.Errorf("got %+v", res)
	}
	if got := fileText(t, f.dest); got != "db=old\n" {
		t.Errorf("dest changed to %q", got)
	}
	want := "--- " + f.dest + "\n+++ " + f.dest + "\n@@ -1 +1 @@\n-db=old\n+db=new\n"
	if diff.String() != want {
		t.Errorf("diff:\n%s\nwant:\n%s", diff.String(), want)
	}
	if _, err := os.Stat(mark); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a command ran in noop mode")
	}
	if s := stageFiles(t, f.destDir); len(s) != 0 {
		t.Errorf("stage files: %q", s)
	}
	if err := f.r.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mark); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Reload ran in noop mode")
	}
}

func TestSyncNoopNewFile(t *testing.T) {
	var diff bytes.Buffer
	f := newFixture(t, "", Options{Noop: true, Diff: &diff})
	if _, err := f.r.Sync(t.Context(), kvs("new")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.dest); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dest created in noop mode")
	}
	if !strings.HasPrefix(diff.String(), "--- /dev/null\n+++ "+f.dest+"\n") {
		t.Errorf("diff:\n%s", diff.String())
	}
}

// TestSyncNoopSecretFile checks that -noop does not print the content of a
// destination others may not read (it may hold secrets), existing or new,
// unless NoopShowSecrets.
func TestSyncNoopSecretFile(t *testing.T) {
	tests := []struct {
		name     string
		extra    string      // resource lines
		existing os.FileMode // 0: no destination yet
		show     bool
		want     string // %s is the destination
	}{
		{name: "existing 0600", existing: 0o600,
			want: "# %s: 1 line removed, 1 line added (content not shown: mode 0600, not readable by others; -noop-show-secrets shows it)\n"},
		{name: "new with mode 0640", extra: "mode = \"0640\"\n",
			want: "# %s: 0 lines removed, 1 line added (content not shown: mode 0640, not readable by others; -noop-show-secrets shows it)\n"},
		{name: "0644 made 0600", extra: "mode = \"0600\"\n", existing: 0o644,
			want: "# %s: 1 line removed, 1 line added (content not shown: mode 0600, not readable by others; -noop-show-secrets shows it)\n# %[1]s: mode 0644 -> 0600\n"},
		{name: "shown on request", existing: 0o600, show: true,
			want: "--- %s\n+++ %[1]s\n@@ -1 +1 @@\n-db=old-s3cr3t\n+db=s3cr3t\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var diff bytes.Buffer
			f := newFixture(t, tc.extra, Options{Noop: true, Diff: &diff, NoopShowSecrets: tc.show})
			if tc.existing != 0 {
				if err := os.WriteFile(f.dest, []byte("db=old-s3cr3t\n"), tc.existing); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(f.dest, tc.existing); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := f.r.Sync(t.Context(), kvs("s3cr3t")); err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf(tc.want, f.dest); diff.String() != want {
				t.Errorf("diff:\n%s\nwant:\n%s", diff.String(), want)
			}
			if !tc.show && strings.Contains(diff.String()+f.logs.String(), "s3cr3t") {
				t.Errorf("the value shows in the diff or the logs")
			}
		})
	}
}

func TestSyncSyncOnly(t *testing.T) {
	mark := filepath.Join(t.TempDir(), "ran")
	f := newFixture(t, "check_cmd = \"touch "+mark+"; exit 1\"\nreload_cmd = \"touch "+mark+"\"\n", Options{SyncOnly: true})
	res, err := f.r.Sync(t.Context(), kvs("x"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Written || res.Reloaded {
		t.Errorf("got %+v", res)
	}
	if _, err := os.Stat(mark); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a command ran in sync-only mode")
	}
}

func TestSyncCheckTimeout(t *testing.T) {
	f := newFixture(t, "check_cmd = \"sleep 30 & sleep 30\"\ncheck_cmd_timeout = \"200ms\"\n", Options{})
	if err := os.WriteFile(f.dest, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := f.r.Sync(t.Context(), kvs("x"))
	if err == nil || !strings.Contains(err.Error(), "timed out after 200ms") {
		t.Fatalf("got %v", err)
	}
	if got := fileText(t, f.dest); got != "original" {
		t.Errorf("dest changed to %q", got)
	}
	if s := stageFiles(t, f.destDir); len(s) != 0 {
		t.Errorf("stage files left: %q", s)
	}
}

func TestSyncRenderError(t *testing.T) {
	f := newFixture(t, "", Options{})
	if err := os.WriteFile(f.dest, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := f.r.Sync(t.Context(), map[string]string{"/app/db/other": "x", "/db/url": "not under prefix"})
	if err == nil || !strings.Contains(err.Error(), "/db/url") {
		t.Fatalf("got %v", err)
	}
	if want := []string{"/app/db/url"}; !reflect.DeepEqual(res.Reads.Keys, want) {
		t.Errorf("reads on error: got %q, want %q", res.Reads.Keys, want)
	}
	if got := fileText(t, f.dest); got != "original" {
		t.Errorf("dest changed to %q", got)
	}
	if s := stageFiles(t, f.destDir); len(s) != 0 {
		t.Errorf("stage files left: %q", s)
	}
}

func TestRollback(t *testing.T) {
	mark := filepath.Join(t.TempDir(), "reloads")
	f := newFixture(t, "mode = \"0640\"\nreload_cmd = \"cat {{.dest}} >> "+mark+"\"\n", Options{})
	if err := f.r.Rollback(t.Context()); !errors.Is(err, ErrNoRollback) {
		t.Errorf("rollback before any write: got %v", err)
	}
	if err := os.WriteFile(f.dest, []byte("db=v1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.Apply(t.Context(), kvs("v2"), InstallOptions{SkipReload: true}); err != nil {
		t.Fatal(err)
	}
	if got := fileText(t, f.dest); got != "db=v2\n" {
		t.Fatalf("dest %q", got)
	}
	if err := f.r.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := fileText(t, f.dest); got != "db=v1\n" {
		t.Errorf("after rollback: dest %q, want db=v1", got)
	}
	if fi, _ := os.Stat(f.dest); fi.Mode().Perm() != 0o600 {
		t.Errorf("after rollback: mode %v, want 0600", fi.Mode())
	}
	if got := fileText(t, mark); got != "db=v1\n" {
		t.Errorf("reload after rollback saw %q", got)
	}
	if err := f.r.Rollback(t.Context()); !errors.Is(err, ErrNoRollback) {
		t.Errorf("second rollback: got %v", err)
	}
	if s := stageFiles(t, f.destDir); len(s) != 0 {
		t.Errorf("stage files left: %q", s)
	}
}

func TestRollbackRemovesNewFile(t *testing.T) {
	f := newFixture(t, "", Options{})
	if _, err := f.r.Sync(t.Context(), kvs("v1")); err != nil {
		t.Fatal(err)
	}
	if err := f.r.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.dest); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dest still there after rolling back its creation")
	}
}

func TestSyncRenameFallback(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EBUSY, syscall.EXDEV} {
		t.Run(errno.Error(), func(t *testing.T) {
			rename = func(oldpath, newpath string) error {
				return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: errno}
			}
			t.Cleanup(func() { rename = renameFile })
			f := newFixture(t, "mode = \"0600\"\n", Options{})
			if err := os.WriteFile(f.dest, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			fi1, _ := os.Stat(f.dest)
			res, err := f.r.Sync(t.Context(), kvs("x"))
			if err != nil || !res.Written {
				t.Fatalf("got %+v, %v", res, err)
			}
			fi2, _ := os.Stat(f.dest)
			if got := fileText(t, f.dest); got != "db=x\n" {
				t.Errorf("dest %q", got)
			}
			if fi2.Mode().Perm() != 0o600 {
				t.Errorf("mode %v", fi2.Mode())
			}
			if fi1.Sys().(*syscall.Stat_t).Ino != fi2.Sys().(*syscall.Stat_t).Ino {
				t.Errorf("not written in place")
			}
			if s := stageFiles(t, f.destDir); len(s) != 0 {
				t.Errorf("stage files left: %q", s)
			}
		})
	}
}

func TestSyncRenameError(t *testing.T) {
	rename = func(oldpath, newpath string) error {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: syscall.EACCES}
	}
	t.Cleanup(func() { rename = renameFile })
	f := newFixture(t, "", Options{})
	if _, err := f.r.Sync(t.Context(), kvs("x")); err == nil {
		t.Fatal("got no error")
	}
	if s := stageFiles(t, f.destDir); len(s) != 0 {
		t.Errorf("stage files left: %q", s)
	}
}

func TestSyncOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	f := newFixture(t, "uid = 4242\ngid = 4343\nmode = \"4750\"\n", Options{})
	if _, err := f.r.Sync(t.Context(), kvs("x")); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(f.dest)
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 4242 || st.Gid != 4343 {
		t.Errorf("owner %d:%d", st.Uid, st.Gid)
	}
	if fi.Mode()&modeBits != 0o750|os.ModeSetuid {
		t.Errorf("mode %v (setuid must survive the chown)", fi.Mode())
	}
	// Changing the owner only is a change.
	os.Chown(f.dest, 0, 0)
	res, err := f.r.Sync(t.Context(), kvs("x"))
	if err != nil || !res.Written {
		t.Fatalf("got %+v, %v", res, err)
	}
}

func TestSyncConcurrent(t *testing.T) {
	f := newFixture(t, "", Options{})
	done := make(chan error)
	for i := range 8 {
		go func() {
			_, err := f.r.Sync(t.Context(), kvs(strings.Repeat("x", i%2+1)))
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	if s := stageFiles(t, f.destDir); len(s) != 0 {
		t.Errorf("stage files left: %q", s)
	}
}

// TestRenderReadsOutsidePrefix: a key reached through ".." stays absolute
// in the template (relKey), and what the template read of it maps back to
// that absolute key, not to one under the prefix.
func TestRenderReadsOutsidePrefix(t *testing.T) {
	store := map[string]string{
		"/app/x/a":    "in",
		"/other/a":    "out",
		"/app/both/a": "prefixed",
		"/both/a":     "absolute",
	}
	for _, tc := range []struct {
		name, keys, tmpl, out string
		want                  Reads
	}{
		{
			name: "under prefix", keys: `["/x", "/../other"]`,
			tmpl: `{{getv "/x/a"}}`, out: "in",
			want: Reads{Keys: []string{"/app/x/a"}},
		},
		{
			name: "outside prefix", keys: `["/x", "/../other"]`,
			tmpl: `{{getv "/other/a"}}`, out: "out",
			want: Reads{Keys: []string{"/other/a"}},
		},
		{
			name: "missing under prefix", keys: `["/x", "/../other"]`,
			tmpl: `{{exists "/x/nope"}}`, out: "false",
			want: Reads{Keys: []string{"/app/x/nope"}},
		},
		{
			name: "missing outside prefix", keys: `["/x", "/../other"]`,
			tmpl: `{{exists "/other/nope"}}`, out: "false",
			want: Reads{Keys: []string{"/other/nope"}},
		},
		{
			name: "missing anywhere", keys: `["/x", "/../other"]`,
			tmpl: `{{exists "/nope"}}`, out: "false",
			want: Reads{Keys: []string{"/app/nope"}},
		},
		{
			name: "subtree outside prefix", keys: `["/x", "/../other"]`,
			tmpl: `{{range gets "/other/*"}}{{.Value}}{{end}}`, out: "out",
			want: Reads{Prefixes: []string{"/app/other", "/other"}},
		},
		{
			name: "subtree above both", keys: `["/x", "/../other"]`,
			tmpl: `{{len (ls "/")}}`, out: "2",
			want: Reads{Prefixes: []string{"/", "/app"}},
		},
		{
			name: "subtree under prefix", keys: `["/x", "/../other"]`,
			tmpl: `{{range getvs "/x/*"}}{{.}}{{end}}`, out: "in",
			want: Reads{Prefixes: []string{"/app/x"}},
		},
		{
			name: "both spaces", keys: `["/both", "/../both"]`,
			tmpl: `{{exists "/both/a"}}`, out: "true",
			want: Reads{Keys: []string{"/app/both/a", "/both/a"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := confDir(t, map[string]string{
				"conf.d/app.toml": "[template]\nsrc = \"app.tmpl\"\ndest = \"" + filepath.Join(t.TempDir(), "app.conf") +
					"\"\nprefix = \"/app\"\nkeys = " + tc.keys + "\n",
				"templates/app.tmpl": tc.tmpl,
			})
			r, err := Load(filepath.Join(dir, "conf.d", "app.toml"), Options{ConfDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			out, reads, err := r.Render(store)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.out {
				t.Errorf("output %q, want %q", out, tc.out)
			}
			if !reflect.DeepEqual(reads, tc.want) {
				t.Errorf("reads %+v, want %+v", reads, tc.want)
			}
		})
	}
}

// failInPlace makes the first n in-place writes truncate the destination,
// write half the data, and fail with ENOSPC.
func failInPlace(t *testing.T, n int) {
	calls := 0
	writeInPlaceFile = func(dest string, data []byte, tg target) error {
		if calls++; calls > n {
			return writeInPlace(dest, data, tg)
		}
		if err := writeInPlace(dest, data[:len(data)/2], tg); err != nil {
			return err
		}
		return &os.PathError{Op: "write", Path: dest, Err: syscall.ENOSPC}
	}
	t.Cleanup(func() { writeInPlaceFile = writeInPlace })
}

func exdevRename(t *testing.T) {
	rename = func(oldpath, newpath string) error {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: syscall.EXDEV}
	}
	t.Cleanup(func() { rename = renameFile })
}

// TestSyncInPlaceWriteFails: when the in-place fallback fails part way, the
// previous content is written back and the error says so.
func TestSyncInPlaceWriteFails(t *testing.T) {
	exdevRename(t)
	failInPlace(t, 1)
	f := newFixture(t, "mode = \"0600\"\n", Options{})
	if err := os.WriteFile(f.dest, []byte("old content\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	res, err := f.r.Sync(t.Context(), kvs("x"))
	if err == nil || res.Written {
		t.Fatalf("got %+v, %v; want an error", res, err)
	}
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "written back") {
		t.Errorf("error %q: want the write error and that the old content was written back", err)
	}
	if got := fileText(t, f.dest); got != "old content\n" {
		t.Errorf("dest %q, want the old content", got)
	}
	if fi, _ := os.Stat(f.dest); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want the old one", fi.Mode())
	}
	if s := stageFiles(t, f.destDir); len(s) != 0 {
		t.Errorf("stage files left: %q", s)
	}
	// Nothing was replaced, so there is nothing to roll back.
	if err := f.r.Restore(); !errors.Is(err, ErrNoRollback) {
		t.Errorf("restore: got %v, want ErrNoRollback", err)
	}
}

// TestSyncInPlaceWriteAndRestoreFail: when writing the old content back
// fails too, Restore can still put it back.
func TestSyncInPlaceWriteAndRestoreFail(t *testing.T) {
	exdevRename(t)
	failInPlace(t, 2)
	f := newFixture(t, "", Options{})
	if err := os.WriteFile(f.dest, []byte("old content\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := f.r.Sync(t.Context(), kvs("x"))
	if err == nil || !strings.Contains(err.Error(), "failed too") {
		t.Fatalf("got %v, want the write back to fail too", err)
	}
	if got := fileText(t, f.dest); got == "old content\n" {
		t.Fatalf("dest not damaged; the test does not test anything")
	}
	if err := f.r.Restore(); err != nil {
		t.Fatal(err)
	}
	if got := fileText(t, f.dest); got != "old content\n" {
		t.Errorf("dest %q after Restore, want the old content", got)
	}
	if s := stageFiles(t, f.destDir); len(s) != 0 {
		t.Errorf("stage files left: %q", s)
	}
}

// stageThenCommit renders kvs for f.r and commits it in two halves, as a
// batch does.
func stageThenCommit(t *testing.T, f *fixture, kvs map[string]string) (*Staged, Result, error) {
	t.Helper()
	out, _, err := f.r.Render(kvs)
	if err != nil {
		t.Fatal(err)
	}
	st, res, err := f.r.Stage(t.Context(), out)
	if st == nil || err != nil {
		return st, res, err
	}
	if res.Rendered != nil {
		t.Errorf("Stage kept the output in its Result")
	}
	// The stage file is written, the destination not yet.
	if s := stageFiles(t, f.destDir); len(s) != 1 || fileText(t, s[0]) != string(out) {
		t.Fatalf("after Stage: stage files %q", s)
	}
	res, err = st.Install(t.Context(), InstallOptions{})
	return st, res, err
}

func TestStageCommit(t *testing.T) {
	mark := filepath.Join(t.TempDir(), "reloaded")
	f := newFixture(t, "mode = \"0600\"\ncheck_cmd = \"grep -q good {{.src}}\"\nreload_cmd = \"touch "+mark+"\"\n", Options{})
	if err := os.WriteFile(f.dest, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}

	// A failing check after Stage leaves the destination and no stage file.
	st, res, err := stageThenCommit(t, f, kvs("bad"))
	if st == nil || err == nil || !strings.Contains(err.Error(), "check_cmd") || !res.Changed || res.Written {
		t.Fatalf("bad: got %v, %+v, %v", st, res, err)
	}
	if got := fileText(t, f.dest); got != "original" {
		t.Errorf("dest changed to %q", got)
	}
	if s := stageFiles(t, f.destDir); len(s) != 0 {
		t.Errorf("stage files left: %q", s)
	}

	// A good one is moved into place with its mode and reloaded.
	if _, res, err = stageThenCommit(t, f, kvs("good")); err != nil || !res.Written || !res.Reloaded {
		t.Fatalf("good: got %+v, %v", res, err)
	}
	if fi, _ := os.Stat(f.dest); fileText(t, f.dest) != "db=good\n" || fi.Mode().Perm() != 0o600 {
		t.Errorf("dest %q, mode %v", fileText(t, f.dest), fi.Mode())
	}
	if _, err := os.Stat(mark); err != nil {
		t.Errorf("no reload: %v", err)
	}

	// In sync: nothing staged.
	if st, res, err := f.r.Stage(t.Context(), []byte("db=good\n")); st != nil || err != nil || res.Changed {
		t.Errorf("in sync: got %v, %+v, %v", st, res, err)
	}
	// Rollback puts back what the staged commit replaced.
	if err := f.r.Restore(); err != nil || fileText(t, f.dest) != "original" {
		t.Errorf("restore: %v, dest %q", err, fileText(t, f.dest))
	}
}

func TestStageNoop(t *testing.T) {
	var diff bytes.Buffer
	f := newFixture(t, "", Options{Noop: true, Diff: &diff})
	st, res, err := f.r.Stage(t.Context(), []byte("new\n"))
	if st != nil || err != nil || !res.Changed || !res.Noop {
		t.Fatalf("got %v, %+v, %v", st, res, err)
	}
	if !strings.Contains(diff.String(), "+new") || len(stageFiles(t, f.destDir)) != 0 {
		t.Errorf("diff %q, stage files %q", diff.String(), stageFiles(t, f.destDir))
	}
}

// A staged commit that cannot rename writes in place what it reads back
// from the stage file (a Staged does not keep the output).
func TestStageCommitRenameFallback(t *testing.T) {
	rename = func(oldpath, newpath string) error {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: syscall.EBUSY}
	}
	t.Cleanup(func() { rename = renameFile })
	f := newFixture(t, "", Options{})
	if err := os.WriteFile(f.dest, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi1, _ := os.Stat(f.dest)
	if _, res, err := stageThenCommit(t, f, kvs("x")); err != nil || !res.Written {
		t.Fatalf("got %+v, %v", res, err)
	}
	fi2, _ := os.Stat(f.dest)
	if got := fileText(t, f.dest); got != "db=x\n" {
		t.Errorf("dest %q", got)
	}
	if fi1.Sys().(*syscall.Stat_t).Ino != fi2.Sys().(*syscall.Stat_t).Ino {
		t.Errorf("not written in place")
	}
	if s := stageFiles(t, f.destDir); len(s) != 0 {
		t.Errorf("stage files left: %q", s)
	}
}
