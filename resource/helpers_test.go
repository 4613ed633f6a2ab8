package resource

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// confDir is a scratch confdir: files maps paths relative to it
// ("conf.d/app.toml", "templates/app.tmpl") to their content.
func confDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// logBuffer returns a debug-level text logger writing to the buffer.
func logBuffer() (*slog.Logger, *bytes.Buffer) {
	var b bytes.Buffer
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})), &b
}

// The entry points below are the pipeline as the tests drive it, from the
// store's data to the reload; confit itself renders and commits in separate
// steps (the daemon renders against its mirror and commits on a worker).

// Load reads one resource file as LoadDir does, without sharing its
// template with other resources.
func Load(file string, opts Options) (*Resource, error) {
	return load(file, opts, nil)
}

// Render is RenderSorted without the sorted keys.
func (r *Resource) Render(kvs map[string]string) ([]byte, Reads, error) {
	return r.RenderSorted(kvs, nil)
}

// applied is what Sync and Apply return: the commit's Result and what the
// template read, in absolute keys (set even when rendering failed part
// way, as the daemon records it).
type applied struct {
	Result
	Reads Reads
}

// Sync is Apply without options.
func (r *Resource) Sync(ctx context.Context, kvs map[string]string) (applied, error) {
	return r.Apply(ctx, kvs, InstallOptions{})
}

// Apply renders from kvs and commits the output: the whole pipeline. A
// render error leaves the destination untouched, as a check failure does.
func (r *Resource) Apply(ctx context.Context, kvs map[string]string, o InstallOptions) (applied, error) {
	out, reads, err := r.Render(kvs)
	if err != nil {
		return applied{Result: Result{Noop: r.opts.Noop}, Reads: reads}, err
	}
	res, err := r.Commit(ctx, out, o)
	return applied{Result: res, Reads: reads}, err
}

// Rollback restores the previous file (Restore), then runs reload_cmd as
// Reload does, as the daemon does for a resource of its own.
func (r *Resource) Rollback(ctx context.Context) error {
	if err := r.Restore(); err != nil {
		return err
	}
	return r.Reload(ctx)
}

// runCmd is runCmdEnv with confit's own environment.
func runCmd(ctx context.Context, name, command string, timeout time.Duration) ([]byte, error) {
	return runCmdEnv(ctx, name, command, nil, timeout)
}

// shellQuote quotes s for /bin/sh: single quotes, each embedded single
// quote written as the four characters quote, backslash, quote, quote.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
