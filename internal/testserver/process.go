// Package testserver starts real store servers (etcd, and others built on
// the same helpers) for tests and benchmarks.
//
// Servers bind 127.0.0.1 on free ports, use a fresh data directory, log to a
// file that is shown when a test fails, and are stopped by PID: SIGTERM, then
// SIGKILL after a bounded wait. Every wait is bounded.
//
// Binaries come from an environment variable naming the binary, or from the
// repository's cache (.cache/servers/...), filled by the install script in
// scripts/servers when missing. When a binary cannot be obtained, Unavailable
// skips the test locally and fails it when CI=true, so CI never skips
// silently.
//
// Two layers: error-returning functions (StartProcess, StartEtcd) that
// TestMain can use, and testing.TB wrappers (Etcd) that register clean-up.
package testserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Defaults for bounded waits.
const (
	// DefaultReadyTimeout bounds the wait for a started server to be healthy.
	DefaultReadyTimeout = 30 * time.Second
	// DefaultStopTimeout bounds the wait after SIGTERM before SIGKILL.
	DefaultStopTimeout = 10 * time.Second
)

// ErrUnavailable marks errors meaning "this server cannot be had on this
// machine" (binary missing and not buildable), as opposed to a server that
// was found but misbehaved. See Unavailable.
var ErrUnavailable = errors.New("test server unavailable")

// InCI reports whether the CI environment variable is "true" (or "1").
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1"
}

// Unavailable reports err, which prevented a server from starting: the test
// is skipped when err wraps ErrUnavailable and we are not in CI, and fails in
// every other case. It does nothing when err is nil.
func Unavailable(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, ErrUnavailable) && !InCI() {
		t.Skipf("skipping: %v (set CI=true to make this a failure)", err)
	}
	t.Fatalf("test server: %v", err)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreePorts returns n distinct free loopback ports: every listener stays
// open until all are chosen, so the kernel cannot hand out one twice (n
// calls of FreePort can, and Consul refuses a config whose http and
// serf_lan ports are the same).
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// RepoRoot returns the directory holding this module's go.mod, found by
// walking up from the working directory (tests run in their package's
// directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			bytes.Contains(data, []byte("module github.com/confit-dev/confit\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testserver: go.mod of github.com/confit-dev/confit not found above the working directory")
		}
		dir = parent
	}
}

// installMu serialises install scripts within one process; the scripts
// lock across processes themselves.
var installMu sync.Mutex

// Binary locates a server binary: the path in environment variable envVar
// if set, else <repo>/cacheRel if executable, else the output of running
// <repo>/script (which must print the binary's path as its last stdout line)
// bounded by timeout. Errors wrap ErrUnavailable.
func Binary(envVar, cacheRel, script string, timeout time.Duration) (string, error) {
	if p := os.Getenv(envVar); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: %s=%s: %v", ErrUnavailable, envVar, p, err)
		}
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	cached := filepath.Join(root, cacheRel)
	if fi, err := os.Stat(cached); err == nil && fi.Mode()&0o111 != 0 {
		return cached, nil
	}
	installMu.Lock()
	defer installMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, script))
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: %s failed after %v: %v\n%s", ErrUnavailable, script, time.Since(start).Round(time.Second), err, tail(stderr.String(), 40))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	p := strings.TrimSpace(lines[len(lines)-1])
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%w: %s printed %q: %v", ErrUnavailable, script, p, err)
	}
	return p, nil
}

// Process is a server process started by this package. Its methods are safe
// for concurrent use.
type Process struct {
	// Name names the server in errors ("etcd").
	Name string
	// Path is the binary.
	Path string
	// Args are the command-line arguments.
	Args []string
	// Env is added to the inherited environment.
	Env []string
	// UnsetEnvPrefixes removes inherited variables whose names start with
	// any of these ("ETCD_"), so the caller's environment cannot change the
	// server's flags.
	UnsetEnvPrefixes []string
	// LogPath receives the server's stdout and stderr, appended across
	// restarts.
	LogPath string
	// Ready reports nil once the server is healthy. It is polled until
	// ReadyTimeout.
	Ready func(ctx context.Context) error
	// ReadyTimeout bounds the wait for Ready (DefaultReadyTimeout if 0).
	ReadyTimeout time.Duration
	// StopTimeout bounds the wait after SIGTERM (DefaultStopTimeout if 0).
	StopTimeout time.Duration

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd exited
}

// Start runs the process and waits until Ready succeeds, the process exits,
// or the ready timeout passes. On failure the process is killed and the
// error includes the end of its log.
func (p *Process) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s: already running (pid %d)", p.Name, p.cmd.Process.Pid)
	}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s: log: %w", p.Name, err)
	}
	fmt.Fprintf(logf, "=== %s start %s: %s %s\n", time.Now().Format(time.RFC3339Nano), p.Name, p.Path, strings.Join(p.Args, " "))
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = p.environ()
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: a terminal's ^C reaches the test, which stops us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("%s: start: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() {
		// Never take p.mu here: Start holds it while waiting for readiness.
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	if err := p.waitReady(ctx, done); err != nil {
		p.stopLocked(0)
		return fmt.Errorf("%s: %w\n--- %s log (%s) ---\n%s", p.Name, err, p.Name, p.LogPath, p.LogTail(40))
	}
	return nil
}

func (p *Process) environ() []string {
	var env []string
outer:
	for _, kv := range os.Environ() {
		for _, pre := range p.UnsetEnvPrefixes {
			if strings.HasPrefix(kv, pre) {
				continue outer
			}
		}
		env = append(env, kv)
	}
	return append(env, p.Env...)
}

func (p *Process) waitReady(ctx context.Context, exited <-chan struct{}) error {
	timeout := p.ReadyTimeout
	if timeout == 0 {
		timeout = DefaultReadyTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if p.Ready == nil {
		return nil
	}
	delay := 10 * time.Millisecond
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		err := p.Ready(attempt)
		cancelAttempt()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("exited before becoming ready (last check: %v)", err)
		case <-ctx.Done():
			return fmt.Errorf("not ready within %v: %v", timeout, err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// PID returns the running process's id, or 0.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Stop sends SIGTERM, waits up to StopTimeout, then sends SIGKILL and
// waits for the exit. Stopping a stopped process does nothing.
func (p *Process) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	timeout := p.StopTimeout
	if timeout == 0 {
		timeout = DefaultStopTimeout
	}
	return p.stopLocked(timeout)
}

// Kill sends SIGKILL and waits for the exit, as a crash would.
func (p *Process) Kill() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopLocked(0)
}

// stopLocked stops the process: SIGTERM and a wait of grace, then SIGKILL.
// grace 0 means SIGKILL at once. Called with p.mu held; the waiter goroutine
// takes p.mu only after the exit, so unlock around the waits.
func (p *Process) stopLocked(grace time.Duration) error {
	if p.cmd == nil {
		return nil
	}
	cmd, done := p.cmd, p.done
	p.cmd, p.done = nil, nil
	p.mu.Unlock()
	defer p.mu.Lock()
	if grace > 0 {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
			return nil
		case <-time.After(grace):
		}
	}
	_ = cmd.Process.Kill()
	select {
	case <-done:
		return nil
	case <-time.After(DefaultStopTimeout):
		return fmt.Errorf("%s: pid %d did not exit after SIGKILL", p.Name, cmd.Process.Pid)
	}
}

// Restart stops the process gracefully and starts it again with the same
// arguments, waiting until it is ready.
func (p *Process) Restart(ctx context.Context) error {
	if err := p.Stop(); err != nil {
		return err
	}
	return p.Start(ctx)
}

// LogTail returns the last n lines of the log.
func (p *Process) LogTail(n int) string {
	data, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(log unreadable: %v)", err)
	}
	return tail(string(data), n)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines omitted)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// LogOnFailure registers a clean-up on t that prints the end of p's log
// when t failed.
func LogOnFailure(t testing.TB, p *Process) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- %s log (%s) ---\n%s", p.Name, p.LogPath, p.LogTail(60))
		}
	})
}

// forTest starts a server for t with start, its context bounded by
// timeout (*dir, when dir is not nil, set to t.TempDir() if empty first),
// and stops it when t ends; its log is shown if t failed. A
// missing server skips t locally and fails it in CI (see Unavailable).
func forTest[S interface {
	Close() error
	Process() *Process
}](t testing.TB, dir *string, timeout time.Duration, start func(ctx context.Context) (S, error)) S {
	t.Helper()
	if dir != nil && *dir == "" {
		*dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s, err := start(ctx)
	Unavailable(t, err)
	t.Cleanup(func() { _ = s.Close() })
	LogOnFailure(t, s.Process())
	return s
}

// server is what the store servers (EtcdServer, ConsulServer) share: their
// process and the data directory they may own.
type server struct {
	proc   *Process
	ownDir string // removed by Close when the Start function created it
}

// dataDir returns dir, or a new temporary directory that Close removes.
func (s *server) dataDir(dir, pattern string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	dir, err := os.MkdirTemp("", pattern)
	s.ownDir = dir
	return dir, err
}

// startRetrying calls start(attempt) up to three times while it fails only
// because a port that was free a moment ago has been taken since; on
// failure the directory dataDir made is removed.
func (s *server) startRetrying(start func(attempt int) error) error {
	var err error
	for attempt := range 3 {
		if err = start(attempt); err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		s.removeDir()
	}
	return err
}

// Process returns the underlying process (PID, log).
func (s *server) Process() *Process { return s.proc }

// Stop stops the server gracefully (SIGTERM, then SIGKILL after a bound).
// The data directory is kept for Start (a Consul -dev agent loses its data).
func (s *server) Stop() error { return s.proc.Stop() }

// Kill stops the server with SIGKILL, as a crash would.
func (s *server) Kill() error { return s.proc.Kill() }

// Start starts a stopped server again on the same ports and data directory
// and waits until it is ready.
func (s *server) Start(ctx context.Context) error { return s.proc.Start(ctx) }

// Restart is Stop followed by Start.
func (s *server) Restart(ctx context.Context) error { return s.proc.Restart(ctx) }

// Close stops the server and removes the directory its Start function
// created.
func (s *server) Close() error {
	err := s.proc.Stop()
	s.removeDir()
	return err
}

func (s *server) removeDir() {
	if s.ownDir != "" {
		_ = os.RemoveAll(s.ownDir)
	}
}

// SettledGoroutines returns the goroutine count once it is at most limit
// (limit 0: once it has stopped falling), waiting at most 10 s. A leak
// test compares counts: goroutines that have finished their work may not
// yet have been scheduled to exit on a loaded machine, and are no leak.
func SettledGoroutines(limit int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		m := runtime.NumGoroutine()
		if (limit > 0 && m <= limit) || (limit == 0 && m >= n) {
			return m
		}
		n = m
	}
	return n
}
