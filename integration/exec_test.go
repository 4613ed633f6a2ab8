package integration

// Exec mode end to end: confit runs as PID 1 of a fresh PID namespace
// (unshare --pid --fork, as in a container), renders from the file backend,
// starts sighelper (internal/supervise/testdata/sighelper: it records the
// signals it receives) and follows edits of the values file.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sighelper builds the helper child once.
func sighelper(t *testing.T) string {
	t.Helper()
	return built(t, sighelperBuild)
}

var sighelperBuild = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "sighelper")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "sighelper")
	return bin, goBuild("./internal/supervise/testdata/sighelper", bin)
})

// needUnshare skips t when this machine cannot give confit a PID namespace.
func needUnshare(t *testing.T) {
	t.Helper()
	if err := exec.Command("unshare", "--pid", "--fork", "true").Run(); err != nil {
		t.Skipf("unshare --pid --fork: %v (needs root or user namespaces)", err)
	}
}

// execRun is a confit -exec run as PID 1 of its own PID namespace.
type execRun struct {
	t      *testing.T
	dir    string // confdir, values.yaml, signals.log
	cmd    *exec.Cmd
	log    *lockedBuffer
	done   chan struct{}
	err    error
	pid    int // confit's pid as this test sees it
	sigLog string
}

// execResource is one conf.d file: name.toml rendering out/name from
// template text tmpl, with extra [template] lines.
type execResource struct {
	name, tmpl, extra string
}

// startExec writes the resources and values, and starts confit -watch
// with extra flags and the helper (given helperArgs) after --.
func startExec(t *testing.T, values string, res []execResource, flags []string, helperArgs ...string) *execRun {
	t.Helper()
	return startExecAs(t, true, values, res, flags, helperArgs...)
}

// startExecAs is startExec; pid1 false runs confit as a plain child of
// the test instead of PID 1 of a PID namespace.
func startExecAs(t *testing.T, pid1 bool, values string, res []execResource, flags []string, helperArgs ...string) *execRun {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"conf.d", "templates", "out"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range res {
		toml := fmt.Sprintf("[template]\nsrc = %q\ndest = %q\nkeys = [\"/\"]\n%s\n", r.name+".tmpl", filepath.Join(dir, "out", r.name), r.extra)
		writeExecFile(t, filepath.Join(dir, "conf.d", r.name+".toml"), toml)
		writeExecFile(t, filepath.Join(dir, "templates", r.name+".tmpl"), r.tmpl)
	}
	writeExecFile(t, filepath.Join(dir, "values.yaml"), values)
	sigLog := filepath.Join(dir, "signals.log")
	args := []string{confitBinary(t),
		"-watch", "-backend", "file", "-file", filepath.Join(dir, "values.yaml"), "-confdir", dir, "-log-level", "debug"}
	args = append(args, flags...)
	args = append(args, "--", sighelper(t), "-log", sigLog)
	args = append(args, helperArgs...)
	env := append(environWithout("CONFIT_", "CONFD_"), "CONFIT_CONFIG_FILE="+os.DevNull)
	if !pid1 {
		return runPlain(t, dir, sigLog, env, args...)
	}
	return runUnshared(t, dir, sigLog, env, args...)
}

// runPlain runs args in dir as a child of the test.
func runPlain(t *testing.T, dir, sigLog string, env []string, args ...string) *execRun {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	e := startExecRun(t, dir, sigLog, cmd, func(e *execRun) { _ = syscall.Kill(-e.pid, syscall.SIGKILL) })
	e.pid = e.cmd.Process.Pid
	return e
}

// runUnshared runs args (a program and its arguments) in dir as PID 1 of
// a new PID namespace; the helper child logs to sigLog.
func runUnshared(t *testing.T, dir, sigLog string, env []string, args ...string) *execRun {
	t.Helper()
	needUnshare(t)
	cmd := exec.Command("unshare", append([]string{"--pid", "--fork", "--kill-child"}, args...)...)
	cmd.Dir, cmd.Env = dir, env
	e := startExecRun(t, dir, sigLog, cmd, func(e *execRun) {
		_ = e.cmd.Process.Kill() // --kill-child: confit, PID 1, takes its namespace with it
	})
	// confit is unshare's only child (unless it is gone already).
	waitUntil(t, 10*time.Second, "confit started under unshare", func() bool {
		select {
		case <-e.done:
			return true
		default:
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", e.cmd.Process.Pid, e.cmd.Process.Pid))
		e.pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return e.pid > 0
	})
	return e
}

// startExecRun starts cmd, its output in the run's log; when t ends, kill
// stops it if it still runs, and the logs are shown if t failed.
func startExecRun(t *testing.T, dir, sigLog string, cmd *exec.Cmd, kill func(*execRun)) *execRun {
	t.Helper()
	e := &execRun{t: t, dir: dir, cmd: cmd, log: &lockedBuffer{}, done: make(chan struct{}), sigLog: sigLog}
	e.cmd.Stdout, e.cmd.Stderr = e.log, e.log
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { e.err = e.cmd.Wait(); close(e.done) }()
	t.Cleanup(func() {
		select {
		case <-e.done:
		default:
			kill(e)
			<-e.done
		}
		if t.Failed() {
			t.Logf("--- confit's log ---\n%s--- signals.log ---\n%s", e.log.String(), contentOf(e.sigLog))
		}
	})
	return e
}

func writeExecFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func contentOf(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// signals returns the helper's log lines.
func (e *execRun) signals() []string {
	return strings.Split(strings.TrimSpace(contentOf(e.sigLog)), "\n")
}

// count counts the helper's log lines starting with prefix.
func (e *execRun) count(prefix string) int {
	n := 0
	for _, l := range e.signals() {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func (e *execRun) waitCount(prefix string, n int) {
	e.t.Helper()
	waitUntil(e.t, 10*time.Second, fmt.Sprintf("%d %q in signals.log", n, prefix), func() bool { return e.count(prefix) >= n })
}

func (e *execRun) waitLog(s string) {
	e.t.Helper()
	waitUntil(e.t, 10*time.Second, fmt.Sprintf("%q in confit's log", s), func() bool { return strings.Contains(e.log.String(), s) })
}

func (e *execRun) waitFile(name, content string) {
	e.t.Helper()
	waitUntil(e.t, 10*time.Second, fmt.Sprintf("out/%s = %q", name, content), func() bool {
		return contentOf(filepath.Join(e.dir, "out", name)) == content
	})
}

func (e *execRun) setValues(values string) {
	e.t.Helper()
	e.setValuesFile(filepath.Join(e.dir, "values.yaml"), values)
}

// setValuesFile replaces path with data by a rename, as editors and
// config management do (the file backend sees one change).
func (e *execRun) setValuesFile(path, data string) {
	e.t.Helper()
	tmp := path + ".tmp"
	writeExecFile(e.t, tmp, data)
	if err := os.Rename(tmp, path); err != nil {
		e.t.Fatal(err)
	}
}

func (e *execRun) signal(sig syscall.Signal) {
	e.t.Helper()
	if err := syscall.Kill(e.pid, sig); err != nil {
		e.t.Fatal(err)
	}
}

// exitCode waits for the run to end and returns its exit code (confit's,
// which unshare passes on).
func (e *execRun) exitCode() int {
	e.t.Helper()
	select {
	case <-e.done:
	case <-time.After(20 * time.Second):
		e.t.Fatal("confit still running 20 s after it should have stopped")
	}
	var ee *exec.ExitError
	if errors.As(e.err, &ee) {
		return ee.ExitCode()
	}
	if e.err != nil {
		e.t.Fatal(e.err)
	}
	return 0
}

// quiet lets confit act on anything still pending: a bound for "nothing
// more happens", not a timing assertion.
func quiet() { time.Sleep(700 * time.Millisecond) }

func TestExecSignalOncePerBatch(t *testing.T) {
	t.Parallel()
	tmpl := `{{getv "/v"}}`
	e := startExec(t, "v: one\n", []execResource{{"a", tmpl, ""}, {"b", tmpl, ""}, {"c", tmpl, ""}}, nil)
	e.waitCount("start", 1)
	e.setValues("v: two\n")
	for _, n := range []string{"a", "b", "c"} {
		e.waitFile(n, "two")
	}
	e.waitCount("HUP", 1)
	quiet()
	if got := e.count("HUP"); got != 1 {
		t.Errorf("%d SIGHUPs for one batch of 3 changed resources, want 1: %q", got, e.signals())
	}
	e.signal(syscall.SIGTERM)
	if code := e.exitCode(); code != 0 {
		t.Errorf("exit code %d, want the child's 0", code)
	}
}

func TestExecActions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, extra string
		want        []string // the helper's log after start
	}{
		{name: "restart", extra: `exec_action = "restart"`, want: []string{"TERM", "exit 0", "start"}},
		{name: "exec_signal", extra: `exec_signal = "SIGUSR2"`, want: []string{"USR2"}},
		{name: "none", extra: `exec_action = "none"`, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := startExec(t, "v: one\n", []execResource{{"a", `{{getv "/v"}}`, tc.extra}}, nil)
			e.waitCount("start", 1)
			e.setValues("v: two\n")
			e.waitFile("a", "two")
			if len(tc.want) > 0 {
				e.waitCount(strings.Fields(tc.want[len(tc.want)-1])[0], 1+strings.Count(strings.Join(tc.want, ","), "start"))
			}
			quiet()
			var got []string
			for _, l := range e.signals()[1:] {
				if strings.HasPrefix(l, "start ") {
					l = "start" // without its pid
				}
				got = append(got, l)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("after the change the child logged %q, want %q", got, tc.want)
			}
		})
	}
}

func TestExecCheckFailsNoSignal(t *testing.T) {
	t.Parallel()
	e := startExec(t, "v: good\n", []execResource{{"a", `{{getv "/v"}}`, `check_cmd = "grep -q good {{.src}}"`}}, nil)
	e.waitCount("start", 1)
	e.setValues("v: bad\n")
	e.waitLog("check_cmd")
	e.waitLog("failed: exit status 1")
	quiet()
	if got := contentOf(filepath.Join(e.dir, "out", "a")); got != "good" {
		t.Errorf("out/a = %q after a failed check, want it untouched", got)
	}
	if got := e.signals(); len(got) != 1 {
		t.Errorf("the child logged %q after a failed check, want its start only", got)
	}
}

// TestExecReloadFailsNoSignal: a reload_cmd that fails on the new file
// (which is then rolled back, and the old one reloaded) leaves the child
// alone: no signal with the default exec_action, no restart with
// "restart". Only a file that stays in place counts.
func TestExecReloadFailsNoSignal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, extra string }{
		{name: "signal", extra: ""},
		{name: "restart", extra: `exec_action = "restart"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := startExec(t, "v: good\n", []execResource{{"a", `{{getv "/v"}}`, `reload_cmd = "grep -q good {{.dest}}"` + "\n" + tc.extra}}, nil)
			e.waitCount("start", 1)
			e.setValues("v: bad\n")
			e.waitLog("reload_cmd")
			e.waitLog("previous file restored and reloaded")
			quiet()
			if got := contentOf(filepath.Join(e.dir, "out", "a")); got != "good" {
				t.Errorf("out/a = %q after a failed reload, want the previous file restored", got)
			}
			if got := e.signals(); len(got) != 1 {
				t.Errorf("the child logged %q after a failed (rolled back) reload, want its start only", got)
			}
			// The next change that reloads does reach the child: the
			// failed one owes it nothing, and blocks nothing.
			e.setValues("v: good again\n")
			e.waitFile("a", "good again")
			if tc.name == "restart" {
				e.waitCount("start", 2)
			} else {
				e.waitCount("HUP", 1)
			}
		})
	}
}

func TestExecNotStartedWhenARenderFails(t *testing.T) {
	t.Parallel()
	e := startExec(t, "v: one\n", []execResource{{"a", `{{getv "/v"}}`, ""}, {"b", `{{getv "/missing"}}`, ""}}, nil)
	if code := e.exitCode(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if _, err := os.Stat(e.sigLog); err == nil {
		t.Errorf("the child started although a resource failed: %q", e.signals())
	}
	if !strings.Contains(e.log.String(), "not starting the -exec command") {
		t.Errorf("log does not say the command was not started:\n%s", e.log.String())
	}
}

// TestExecCrashLoop: a child that keeps dying is restarted after a
// backoff, then confit gives up with its code. The starts (the times
// confit logs them, in JSON to the nanosecond) are at least the backoff's
// guarantee apart: half of 1 s before the first restart, half of 2 s
// before the second (a lower bound, not a timing).
func TestExecCrashLoop(t *testing.T) {
	t.Parallel()
	e := startExec(t, "v: one\n", []execResource{{"a", `{{getv "/v"}}`, ""}},
		[]string{"-exec-restart-limit", "3", "-log-format", "json"}, "-exit", "3", "-after", "50ms")
	if code := e.exitCode(); code != 3 {
		t.Errorf("exit code %d, want the child's 3", code)
	}
	if got := e.count("start"); got != 3 {
		t.Errorf("%d starts, want 3 (-exec-restart-limit 3)", got)
	}
	log := e.log.String()
	if strings.Count(log, "exec: exited; restarting") != 2 || !strings.Contains(log, "giving up") {
		t.Errorf("log lacks 2 restarts with a backoff and the giving up:\n%s", log)
	}
	var starts []time.Time
	for line := range strings.Lines(log) {
		var rec struct {
			Time time.Time
			Msg  string
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "exec: started" {
			starts = append(starts, rec.Time)
		}
	}
	if len(starts) != 3 {
		t.Fatalf("%d \"exec: started\" lines in the log, want 3:\n%s", len(starts), log)
	}
	for i, least := range []time.Duration{500 * time.Millisecond, time.Second} {
		if gap := starts[i+1].Sub(starts[i]); gap < least {
			t.Errorf("start %d came %v after start %d, want at least %v (the backoff)", i+2, gap, i+1, least)
		}
	}
}

func TestExecStopExitCode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		sig    syscall.Signal
		flags  []string
		helper []string
		want   int
	}{
		{name: "SIGTERM, child exits 7", sig: syscall.SIGTERM, helper: []string{"-on-term", "exit:7"}, want: 7},
		{name: "SIGINT, kill signal TERM", sig: syscall.SIGINT, helper: []string{"-on-term", "exit:5"}, want: 5},
		{name: "child ignores TERM: SIGKILL", sig: syscall.SIGTERM, flags: []string{"-exec-kill-timeout", "300ms"},
			helper: []string{"-on-term", "ignore"}, want: 128 + 9},
		{name: "kill signal USR1", sig: syscall.SIGTERM, flags: []string{"-exec-kill-signal", "SIGUSR1", "-exec-kill-timeout", "300ms"},
			want: 128 + 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := startExec(t, "v: one\n", []execResource{{"a", `{{getv "/v"}}`, ""}}, tc.flags, tc.helper...)
			e.waitCount("start", 1)
			e.signal(tc.sig)
			if code := e.exitCode(); code != tc.want {
				t.Errorf("exit code %d, want %d", code, tc.want)
			}
		})
	}
}

func TestExecForwardsSignalsNotURG(t *testing.T) {
	t.Parallel()
	e := startExec(t, "v: one\n", []execResource{{"a", `{{getv "/v"}}`, ""}}, nil)
	e.waitCount("start", 1)
	for _, s := range []syscall.Signal{syscall.SIGURG, syscall.SIGURG, syscall.SIGUSR1, syscall.SIGWINCH} {
		e.signal(s)
	}
	e.waitCount("WINCH", 1)
	e.signal(syscall.SIGHUP) // reloads conf.d, not forwarded
	e.waitLog("reloading conf.d")
	quiet()
	if got := strings.Join(e.signals()[1:], ","); got != "USR1,WINCH" {
		t.Errorf("the child received %q, want USR1,WINCH (no URG, no HUP)", got)
	}
}

// TestExecHealth: /health and /metrics show the child, its restarts and
// its last exit code.
func TestExecHealth(t *testing.T) {
	t.Parallel()
	e := startExec(t, "v: one\n", []execResource{{"a", `{{getv "/v"}}`, `exec_action = "restart"`}},
		[]string{"-metrics-addr", "127.0.0.1:0"})
	e.waitCount("start", 1)
	e.waitLog("serving metrics")
	m := regexp.MustCompile(`serving metrics addr=(\S+)`).FindStringSubmatch(e.log.String())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", e.log.String())
	}
	get := func(path string) string {
		resp, err := http.Get("http://" + m[1] + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	if got := get("/health"); !regexp.MustCompile(`^200 ok\nexec: running pid \d+, restarts 0, last exit none\n$`).MatchString(got) {
		t.Errorf("/health = %q", got)
	}
	e.setValues("v: two\n")
	e.waitCount("start", 2)
	waitUntil(t, 10*time.Second, "the restart in /metrics", func() bool {
		got := get("/metrics")
		return strings.Contains(got, "\nconfit_exec_up 1\n") && strings.Contains(got, "\nconfit_exec_restarts_total 1\n") &&
			strings.Contains(got, "\nconfit_exec_last_exit_code 0\n") && strings.Contains(got, "\nconfit_exec_signals_total 1\n")
	})
	if got := get("/health"); !strings.Contains(got, "restarts 1, last exit 0") {
		t.Errorf("/health = %q", got)
	}
}

func TestExecForwardHUP(t *testing.T) {
	t.Parallel()
	e := startExec(t, "v: one\n", []execResource{{"a", `{{getv "/v"}}`, ""}}, []string{"-exec-forward-hup"})
	e.waitCount("start", 1)
	e.signal(syscall.SIGHUP)
	e.waitCount("HUP", 1)
	if strings.Contains(e.log.String(), "reloading conf.d") {
		t.Errorf("with -exec-forward-hup, SIGHUP reloaded conf.d too:\n%s", e.log.String())
	}
}

// TestExecReapsKeepsStatuses: the child and every check_cmd and
// reload_cmd leave orphans, which confit (PID 1) must reap, while the
// commands' own exit statuses stay right (a reaper taking any zombie makes
// their Wait fail with "no child processes").
func TestExecReapsKeepsStatuses(t *testing.T) {
	t.Parallel()
	var res []execResource
	for i := range 8 {
		res = append(res, execResource{fmt.Sprintf("r%d", i), `{{getv "/v"}}`,
			"check_cmd = \"sleep 0.05 & grep -q v {{.src}}\"\nreload_cmd = \"sleep 0.05 & true\""})
	}
	e := startExec(t, "v: v1\n", res, nil, "-orphans", "5")
	e.waitCount("start", 1)
	e.setValues("v: x\n") // every check fails: exit status 1
	waitUntil(t, 10*time.Second, "8 failed checks", func() bool {
		return strings.Count(e.log.String(), "failed: exit status 1") >= 8
	})
	e.setValues("v: v2\n") // every check passes, every reload runs
	for i := range 8 {
		e.waitFile(fmt.Sprintf("r%d", i), "v2")
	}
	e.waitCount("HUP", 1)
	waitUntil(t, 10*time.Second, "no zombie left under confit", func() bool { return len(zombiesOf(e.pid)) == 0 })
	for _, line := range strings.Split(e.log.String(), "\n") {
		if strings.Contains(line, "no child processes") || strings.Contains(line, " ERROR ") && strings.Contains(line, "reload_cmd") {
			t.Errorf("a command's status was lost or a reload failed: %s", line)
		}
	}
	e.signal(syscall.SIGTERM)
	if code := e.exitCode(); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
}

// TestExecSubreaper: not PID 1, -exec-subreaper makes confit reap the
// orphans its child leaves, which are re-parented to it.
func TestExecSubreaper(t *testing.T) {
	t.Parallel()
	e := startExecAs(t, false, "v: one\n", []execResource{{"a", `{{getv "/v"}}`, "check_cmd = \"sleep 0.05 & true\""}},
		[]string{"-exec-subreaper"}, "-orphans", "5")
	e.waitCount("start", 1)
	// The orphans exit 0.2 s after the start; some show as zombies of
	// confit only if it did not reap them.
	time.Sleep(400 * time.Millisecond)
	waitUntil(t, 10*time.Second, "no zombie left under confit", func() bool { return len(zombiesOf(e.pid)) == 0 })
	if !strings.Contains(e.log.String(), "reaped orphaned processes") {
		t.Errorf("confit reaped nothing: the orphans were not re-parented to it:\n%s", e.log.String())
	}
	e.signal(syscall.SIGTERM)
	if code := e.exitCode(); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
}

// zombiesOf lists the zombie children of pid.
func zombiesOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, en := range entries {
		p, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + en.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[0] == "Z" && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

// TestExampleEntrypointExec runs examples/entrypoint/entrypoint.sh as a
// container's PID 1 would: confit renders, starts the application (the
// helper), sends it SIGHUP when the values change, and on SIGTERM exits
// with its code.
func TestExampleEntrypointExec(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(copyExamples(t), "entrypoint")
	path := "PATH=" + filepath.Dir(confitBinary(t)) + string(os.PathListSeparator) + os.Getenv("PATH")
	env := exampleEnv(dir, path, "CONFIT_BACKEND=file", "CONFIT_FILE=values.yaml", "CONFIT_CONFDIR=.")
	sigLog := filepath.Join(dir, "signals.log")
	e := runUnshared(t, dir, sigLog, env, "./entrypoint.sh", sighelper(t), "-log", sigLog, "-on-term", "exit:0")
	e.waitCount("start", 1)
	if got := contentOf(filepath.Join(dir, "out/app.conf")); !strings.Contains(got, `log_level         = "debug"`) {
		t.Fatalf("the application started before out/app.conf was rendered:\n%s", got)
	}
	values := filepath.Join(dir, "values.yaml")
	e.setValuesFile(values, strings.Replace(contentOf(values), "log_level: debug", "log_level: warn", 1))
	e.waitCount("HUP", 1)
	if got := contentOf(filepath.Join(dir, "out/app.conf")); !strings.Contains(got, `log_level         = "warn"`) {
		t.Errorf("SIGHUP before the new file was in place:\n%s", got)
	}
	e.signal(syscall.SIGTERM)
	if code := e.exitCode(); code != 0 {
		t.Errorf("exit code %d, want the application's 0", code)
	}
	if got := strings.Join(e.signals()[1:], ","); got != "HUP,TERM,exit 0" {
		t.Errorf("the application received %q, want HUP,TERM", got)
	}
}
