package resource

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRunCmd(t *testing.T) {
	tests := []struct {
		name    string
		cmd     string
		timeout time.Duration
		want    string // error substring; "" means success
		wantOut string // output on success
	}{
		{name: "ok", cmd: "true"},
		{name: "ok with output", cmd: "echo valid; echo warned >&2", wantOut: "valid\nwarned\n"},
		{name: "exit status", cmd: "echo bad config >&2; exit 3", want: `check_cmd "echo bad config >&2; exit 3" failed: exit status 3: bad config`},
		{name: "no output", cmd: "exit 1", want: `failed: exit status 1`},
		{name: "timeout", cmd: "echo started; sleep 30", timeout: 200 * time.Millisecond, want: `timed out after 200ms: started`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.timeout == 0 {
				tc.timeout = 10 * time.Second
			}
			start := time.Now()
			out, err := runCmd(t.Context(), "check_cmd", tc.cmd, tc.timeout)
			if d := time.Since(start); d > 8*time.Second {
				t.Errorf("took %v", d)
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("got %v", err)
				}
				if string(out) != tc.wantOut {
					t.Errorf("output = %q, want %q", out, tc.wantOut)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
			var ce *CmdError
			if !errors.As(err, &ce) {
				t.Errorf("error %T is not a *CmdError", err)
			}
		})
	}
}

func TestRunCmdBackgroundChildKeepsStdout(t *testing.T) {
	old := cmdWaitDelay
	cmdWaitDelay = 300 * time.Millisecond
	t.Cleanup(func() { cmdWaitDelay = old })
	pidFile := filepath.Join(t.TempDir(), "pid")
	// The child holds the output pipe open after the shell exited 0.
	start := time.Now()
	_, err := runCmd(t.Context(), "reload_cmd", "sleep 30 & echo $! > "+shellQuote(pidFile), 10*time.Second)
	if err != nil {
		t.Errorf("got %v, want success", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 || !alive(pid) {
		t.Errorf("a child of a successful command must be left running")
	} else {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

func TestRunCmdTimeoutMessage(t *testing.T) {
	e := &CmdError{Name: "reload_cmd", Cmd: "x", Timeout: 60 * time.Second, Err: context.DeadlineExceeded}
	if got, want := e.Error(), `reload_cmd "x" timed out after 60s`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// The state follows the ")" closing the command name.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestRunCmdTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	cmd := "sleep 30 & echo $! > " + shellQuote(pidFile) + "; sleep 30"
	start := time.Now()
	_, err := runCmd(t.Context(), "reload_cmd", cmd, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "timed out after 300ms") {
		t.Fatalf("got %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("background child %d still running after the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunCmdCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := runCmd(ctx, "check_cmd", "sleep 30", time.Minute)
	if err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("got %v, want canceled", err)
	}
}

func TestTailBuffer(t *testing.T) {
	var b tailBuffer
	b.Write([]byte("head"))
	b.Write(bytes.Repeat([]byte("x"), maxCmdOutput-2))
	b.Write([]byte("tail"))
	got := b.Bytes()
	if !bytes.HasPrefix(got, []byte("...\n")) || !bytes.HasSuffix(got, []byte("xxtail")) {
		t.Errorf("got %q...%q", got[:10], got[len(got)-10:])
	}
	if n := len(got) - len("...\n"); n != maxCmdOutput {
		t.Errorf("kept %d bytes, want %d", n, maxCmdOutput)
	}
	var big tailBuffer
	big.Write(bytes.Repeat([]byte("y"), 3*maxCmdOutput))
	if n := len(big.Bytes()); n != maxCmdOutput+4 {
		t.Errorf("kept %d bytes, want %d", n, maxCmdOutput+4)
	}
}

func TestShellQuote(t *testing.T) {
	tests := map[string]string{
		"/etc/.x123":  `'/etc/.x123'`,
		"a b":         `'a b'`,
		"it's":        `'it'\''s'`,
		"":            `''`,
		"$(rm -rf /)": `'$(rm -rf /)'`,
	}
	for in, want := range tests {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
		out, err := execEcho(in)
		if err != nil || out != in {
			t.Errorf("sh echo of %s: got %q, %v", shellQuote(in), out, err)
		}
	}
}

// execEcho runs printf %s with s quoted, returning what the shell saw.
func execEcho(s string) (string, error) {
	dir, err := os.MkdirTemp("", "quote")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "out")
	if _, err := runCmd(context.Background(), "check_cmd", "printf %s "+shellQuote(s)+" > "+shellQuote(out), 10*time.Second); err != nil {
		return "", err
	}
	b, err := os.ReadFile(out)
	return string(b), err
}
