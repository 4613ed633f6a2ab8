package supervise

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// helperPath builds testdata/sighelper once per test binary.
var helperPath = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "sighelper")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "sighelper")
	out, err := exec.Command("go", "build", "-o", bin, "./testdata/sighelper").CombinedOutput()
	if err != nil {
		return "", &buildError{out: string(out), err: err}
	}
	return bin, nil
})

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return "go build sighelper: " + e.err.Error() + "\n" + e.out }

// helper returns the argv of sighelper logging to a fresh file, and the file.
func helper(t *testing.T, args ...string) ([]string, string) {
	t.Helper()
	bin, err := helperPath()
	if err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "signals.log")
	return append([]string{bin, "-log", log}, args...), log
}

// lines returns the log's lines.
func lines(log string) []string {
	b, _ := os.ReadFile(log)
	return strings.Fields(strings.ReplaceAll(string(b), " ", "_"))
}

// count counts the log lines starting with prefix.
func count(log, prefix string) int {
	n := 0
	for _, l := range lines(log) {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// waitFor polls until cond holds, failing after 10 s (a bound, not a timing).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitDone(t *testing.T, s *Supervisor) int {
	t.Helper()
	select {
	case <-s.Done():
		return s.ExitCode()
	case <-time.After(10 * time.Second):
		t.Fatal("supervisor not done within 10 s")
		return 0
	}
}

func start(t *testing.T, cfg Config) *Supervisor {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		<-s.Done()
	})
	return s
}

func TestSignalAndRestart(t *testing.T) {
	argv, log := helper(t)
	s := start(t, Config{Argv: argv})
	waitFor(t, "start", func() bool { return count(log, "start") == 1 })
	s.Signal(syscall.SIGUSR1)
	waitFor(t, "USR1 received", func() bool { return count(log, "USR1") == 1 })
	s.Restart()
	waitFor(t, "second start", func() bool { return count(log, "start") == 2 })
	if got := lines(log); !slices.Equal(got[:4], []string{got[0], "USR1", "TERM", "exit_0"}) {
		t.Errorf("log = %q, want start, USR1, TERM, exit 0, start", got)
	}
	st := s.State()
	if st.Status != Running || st.Restarts != 1 || st.LastExit != 0 || st.Signals != 2 {
		t.Errorf("state = %+v, want running, 1 restart, last exit 0, 2 signals", st)
	}
	if lines, failing := s.Health(); failing != 0 || len(lines) != 1 || !strings.HasPrefix(lines[0], "exec: running pid ") {
		t.Errorf("Health() = %q, %d", lines, failing)
	}
}

func TestStopExitCode(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{name: "graceful exit code", args: []string{"-on-term", "exit:3"}, want: 3},
		{name: "SIGTERM ignored: SIGKILL after the timeout", args: []string{"-on-term", "ignore"}, want: 128 + 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			argv, log := helper(t, tc.args...)
			s := start(t, Config{Argv: argv, KillTimeout: 300 * time.Millisecond})
			waitFor(t, "start", func() bool { return count(log, "start") == 1 })
			s.Stop()
			if got := waitDone(t, s); got != tc.want {
				t.Errorf("exit code %d, want %d", got, tc.want)
			}
		})
	}
}

func TestChildExits(t *testing.T) {
	for _, tc := range []struct {
		name       string
		restart    Restart
		code       int
		wantStarts int
		wantCode   int
	}{
		{name: "on-failure, exit 0: done", restart: OnFailure, code: 0, wantStarts: 1, wantCode: 0},
		{name: "never, exit 4: done", restart: Never, code: 4, wantStarts: 1, wantCode: 4},
		{name: "on-failure, crash loop: gives up", restart: OnFailure, code: 2, wantStarts: 3, wantCode: 2},
		{name: "always, exit 0 loop: gives up non-zero", restart: Always, code: 0, wantStarts: 3, wantCode: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			argv, log := helper(t, "-exit", strconv.Itoa(tc.code), "-after", "10ms")
			s := start(t, Config{Argv: argv, Restart: tc.restart, RestartLimit: 3,
				BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond})
			if got := waitDone(t, s); got != tc.wantCode {
				t.Errorf("exit code %d, want %d", got, tc.wantCode)
			}
			if got := count(log, "start"); got != tc.wantStarts {
				t.Errorf("%d starts, want %d; log %q", got, tc.wantStarts, lines(log))
			}
			if st := s.State(); st.Status != Exited || st.LastExit != tc.code || st.Restarts != tc.wantStarts-1 {
				t.Errorf("state = %+v", st)
			}
		})
	}
}

func TestStartFails(t *testing.T) {
	s, err := New(Config{Argv: []string{filepath.Join(t.TempDir(), "no-such-program")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil || !strings.Contains(err.Error(), "no-such-program") {
		t.Errorf("Start() = %v, want an error naming the program", err)
	}
	if got := waitDone(t, s); got != 127 {
		t.Errorf("exit code %d, want 127", got)
	}
}

func TestShellArgv(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{in: "myapp -config /etc/app.conf", want: []string{"myapp", "-config", "/etc/app.conf"}},
		{in: "myapp --port=80", want: []string{"myapp", "--port=80"}},
		{in: "myapp 'a b'", want: []string{"/bin/sh", "-c", "myapp 'a b'"}},
		{in: "FOO=1 myapp", want: []string{"/bin/sh", "-c", "FOO=1 myapp"}},
		{in: "myapp > /tmp/log", want: []string{"/bin/sh", "-c", "myapp > /tmp/log"}},
		{in: "exec myapp $ARG", want: []string{"/bin/sh", "-c", "exec myapp $ARG"}},
	} {
		if got := ShellArgv(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("ShellArgv(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseRestart(t *testing.T) {
	for in, want := range map[string]Restart{"on-failure": OnFailure, "always": Always, "never": Never} {
		if got, err := ParseRestart(in); err != nil || got != want {
			t.Errorf("ParseRestart(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseRestart("sometimes"); err == nil {
		t.Error("ParseRestart(sometimes): no error")
	}
}

// startTimes is a slog handler keeping the time of each "exec: started"
// record.
type startTimes struct {
	mu    sync.Mutex
	times []time.Time
}

func (h *startTimes) Enabled(context.Context, slog.Level) bool { return true }
func (h *startTimes) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *startTimes) WithGroup(string) slog.Handler            { return h }
func (h *startTimes) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "exec: started" {
		h.mu.Lock()
		h.times = append(h.times, r.Time)
		h.mu.Unlock()
	}
	return nil
}

// TestCrashLoopBackoff: a child that dies at once is restarted after the
// jittered backoff, between half and all of BackoffMin doubling at each
// death (1 s, 2 s, 4 s, ...), and the supervisor gives up at RestartLimit.
// In a synctest bubble the clock moves only while every goroutine waits,
// not while the child runs, so the gaps between starts are the backoff's
// delays themselves.
func TestCrashLoopBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &startTimes{}
		s, err := New(Config{Argv: []string{"/bin/sh", "-c", "exit 3"}, RestartLimit: 5, RestartWindow: time.Hour,
			Logger: slog.New(h)})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		<-s.Done()
		if got := s.ExitCode(); got != 3 {
			t.Errorf("exit code %d, want the child's 3", got)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.times) != 5 {
			t.Fatalf("%d starts, want 5 (RestartLimit)", len(h.times))
		}
		for i := 1; i < len(h.times); i++ {
			gap := h.times[i].Sub(h.times[i-1])
			full := time.Second << (i - 1) // the default BackoffMin, doubled at each death
			if gap < full/2 || gap > full {
				t.Errorf("start %d came %v after start %d, want between %v and %v", i+1, gap, i, full/2, full)
			}
		}
	})
}
