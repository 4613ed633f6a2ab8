package resource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	ttemplate "text/template"
	"time"

	"github.com/confit-dev/confit/internal/reap"
)

// maxCmdOutput bounds the command output kept for error messages; the tail
// is kept, as that is where the reason for a failure usually is.
const maxCmdOutput = 64 << 10

// cmdWaitDelay is how long a command's I/O may stay open after the shell
// exited (a daemon it started inherited stdout) or after it was killed,
// before the pipes are closed and the run returns anyway.
var cmdWaitDelay = 2 * time.Second

// CmdError is a check_cmd or reload_cmd that failed, timed out or was
// canceled.
type CmdError struct {
	// Name is "check_cmd" or "reload_cmd".
	Name string
	// Cmd is the command as run by /bin/sh -c.
	Cmd string
	// Output is the tail of the combined stdout and stderr.
	Output []byte
	// Timeout is set when the command was killed because it ran longer.
	Timeout time.Duration
	// Err is the exec error (*exec.ExitError for a non-zero exit) or the
	// context's error when the run was canceled.
	Err error
}

// Error formats the error as
// `check_cmd "cmd" failed: exit status 1: output` or
// `check_cmd "cmd" timed out after 60s: output`.
func (e *CmdError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q ", e.Name, e.Cmd)
	if e.Timeout > 0 {
		fmt.Fprintf(&b, "timed out after %s", fmtDuration(e.Timeout))
	} else {
		fmt.Fprintf(&b, "failed: %v", e.Err)
	}
	if out := strings.TrimSpace(string(e.Output)); out != "" {
		b.WriteString(": ")
		b.WriteString(out)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *CmdError) Unwrap() error { return e.Err }

// runCmdEnv runs command with /bin/sh -c in its own process group, with
// the environment env (nil: confit's own) and the combined output
// captured. When timeout expires or ctx is done, the whole group is killed
// with SIGKILL. On exit status 0 — also when a background child still
// holds the output open, which is then left running and detached after
// cmdWaitDelay — it returns the output (its tail, as CmdError.Output) and
// a nil error; otherwise a *CmdError.
func runCmdEnv(ctx context.Context, name, command string, env []string, timeout time.Duration) ([]byte, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var out tailBuffer
	cmd := exec.CommandContext(cctx, "/bin/sh", "-c", command)
	cmd.Env = env
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The group id is the shell's pid (Setpgid). Kill the group even
		// when the shell itself already exited.
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return err
	}
	cmd.WaitDelay = cmdWaitDelay

	// Through reap, so that as PID 1 the reaper leaves its exit status to
	// Wait (see internal/reap).
	err := reap.Run(cmd)
	if errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success() && cctx.Err() == nil {
		// The command succeeded; something it started kept stdout open.
		err = nil
	}
	if err == nil {
		return out.Bytes(), nil
	}
	e := &CmdError{Name: name, Cmd: command, Output: out.Bytes(), Err: err}
	switch {
	case ctx.Err() != nil:
		e.Err = fmt.Errorf("canceled: %w", context.Cause(ctx))
	case errors.Is(cctx.Err(), context.DeadlineExceeded):
		e.Timeout = timeout
		e.Err = fmt.Errorf("%w after %s (%v)", context.DeadlineExceeded, timeout, err)
	}
	return nil, e
}

// logCmdOutput logs at debug level what a command that succeeded printed,
// so that `-log-level debug` shows it (a failure's output is in its error).
func logCmdOutput(log *slog.Logger, name string, out []byte) {
	if o := strings.TrimSpace(string(out)); o != "" {
		log.Debug(name+" succeeded", "output", o)
	} else {
		log.Debug(name + " succeeded")
	}
}

// tailBuffer is an io.Writer keeping the last maxCmdOutput bytes written.
type tailBuffer struct {
	mu        sync.Mutex
	buf       []byte
	truncated bool
}

// Write implements io.Writer; it never fails.
func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= maxCmdOutput {
		p = p[len(p)-maxCmdOutput:]
		t.buf = t.buf[:0]
		t.truncated = true
	} else if over := len(t.buf) + len(p) - maxCmdOutput; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.truncated = true
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// Bytes returns the kept output, prefixed with "...\n" when some was lost.
func (t *tailBuffer) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.truncated {
		return append([]byte("...\n"), t.buf...)
	}
	return bytes.Clone(t.buf)
}

// cmdTemplate is a check_cmd or reload_cmd, parsed once.
type cmdTemplate struct {
	raw  string
	tmpl *ttemplate.Template // nil when raw has no action
}

// Placeholder values are marked in the template's output by these, then
// replaced by expand according to the shell quoting around each one. A NUL
// cannot be part of a command run by /bin/sh -c.
const (
	srcMark  = "\x00src\x00"
	destMark = "\x00dest\x00"
)

// parseCmdTemplate parses a command template; {{.src}} and {{.dest}} are
// the only fields. Unknown fields are caught here, not at run time.
func parseCmdTemplate(name, raw string) (*cmdTemplate, error) {
	c := &cmdTemplate{raw: raw}
	if strings.ContainsRune(raw, 0) {
		return nil, errors.New("a command cannot contain a NUL character")
	}
	if !strings.Contains(raw, "{{") {
		return c, nil
	}
	t, err := ttemplate.New(name).Option("missingkey=error").Parse(raw)
	if err != nil {
		return nil, err
	}
	c.tmpl = t
	if _, err := c.expand("/stage", "/dest"); err != nil {
		return nil, err
	}
	return c, nil
}

// expand returns the command with {{.src}} and {{.dest}} substituted so
// that no file name can run anything, whatever the quoting the user wrote
// around the placeholder:
//
//   - a path made only of shellSafe characters is substituted verbatim,
//     as confd does (it means the same bare, in '…' and in "…");
//   - any other path is substituted as a reference to the environment
//     variable CONFIT_SRC or CONFIT_DEST (which the command receives, see
//     cmdEnv), written for the quoting context it lands in: "${CONFIT_SRC}"
//     bare, ${CONFIT_SRC} inside "…", '"${CONFIT_SRC}"' inside '…'. The
//     text substituted holds no byte of the path, so even a quoting
//     context read wrongly (nested $(…) or backticks) cannot turn a file
//     name into code: the worst it can do is split the path into words.
//
// The stage file's own name is made of shellSafe characters (stageBase),
// so {{.src}} is verbatim whenever the destination's directory is.
func (c *cmdTemplate) expand(src, dest string) (string, error) {
	if c.tmpl == nil {
		return c.raw, nil
	}
	var b strings.Builder
	if err := c.tmpl.Execute(&b, map[string]string{"src": srcMark, "dest": destMark}); err != nil {
		return "", err
	}
	return substitute(b.String(), src, dest), nil
}

// Shell quoting contexts, as far as substitute follows them.
const (
	ctxBare = iota
	ctxSingle
	ctxDouble
	ctxBacktick
)

// substitute replaces srcMark and destMark in s, reading the shell quoting
// around each: '…', "…", backslash escapes, $(…) and `…` (inside which a
// new bare context starts).
func substitute(s, src, dest string) string {
	var b strings.Builder
	stack := []int{ctxBare}
	parens := []int{0} // open ( per $( level, to find the ) closing it
	top := func() int { return stack[len(stack)-1] }
	push := func(c int) { stack = append(stack, c); parens = append(parens, 0) }
	pop := func() {
		if len(stack) > 1 {
			stack, parens = stack[:len(stack)-1], parens[:len(parens)-1]
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			mark, val, env := srcMark, src, "CONFIT_SRC"
			if strings.HasPrefix(s[i:], destMark) {
				mark, val, env = destMark, dest, "CONFIT_DEST"
			}
			b.WriteString(quoteFor(top(), val, env))
			i += len(mark) - 1
			continue
		}
		ch := s[i]
		b.WriteByte(ch)
		switch top() {
		case ctxSingle:
			if ch == '\'' {
				pop()
			}
		case ctxDouble:
			switch {
			case ch == '\\' && i+1 < len(s) && s[i+1] != 0:
				i++
				b.WriteByte(s[i])
			case ch == '"':
				pop()
			case ch == '$' && i+1 < len(s) && s[i+1] == '(':
				i++
				b.WriteByte(s[i])
				push(ctxBare)
			case ch == '`':
				push(ctxBacktick)
			}
		default: // bare or backtick: the same rules, but ` closes a backtick
			switch {
			case ch == '\\' && i+1 < len(s) && s[i+1] != 0:
				i++
				b.WriteByte(s[i])
			case ch == '\'':
				push(ctxSingle)
			case ch == '"':
				push(ctxDouble)
			case ch == '`' && top() == ctxBacktick:
				pop()
			case ch == '`':
				push(ctxBacktick)
			case ch == '$' && i+1 < len(s) && s[i+1] == '(':
				i++
				b.WriteByte(s[i])
				push(ctxBare)
			case ch == '(':
				parens[len(parens)-1]++
			case ch == ')' && parens[len(parens)-1] > 0:
				parens[len(parens)-1]--
			case ch == ')' && len(stack) > 1 && top() == ctxBare:
				pop()
			}
		}
	}
	return b.String()
}

// quoteFor is what substitute writes for a placeholder with value val in
// quoting context ctx: val itself when it is shell-safe, else a reference
// to the environment variable env, quoted for ctx.
func quoteFor(ctx int, val, env string) string {
	if shellSafe(val) {
		return val
	}
	switch ctx {
	case ctxSingle:
		return `'"${` + env + `}"'`
	case ctxDouble:
		return "${" + env + "}"
	default:
		return `"${` + env + `}"`
	}
}

// shellSafe reports whether s means the same to /bin/sh bare, in single
// quotes and in double quotes, and is one word: letters, digits and
// / . _ - + , : @ % only (no ~, =, space, quote, $, `, \, glob or operator).
func shellSafe(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("/._-+,:@%", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// cmdEnv is the environment of a check_cmd or reload_cmd: confit's own
// (or, with clean, only cleanEnvKeys of it) plus CONFIT_SRC and
// CONFIT_DEST, the paths {{.src}} and {{.dest}} stand for.
func cmdEnv(clean bool, src, dest string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "CONFIT_SRC" || k == "CONFIT_DEST" {
			continue
		}
		if clean && !keepInCleanEnv(k) {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "CONFIT_SRC="+src, "CONFIT_DEST="+dest)
}

// cleanEnvKeys are the variables a command keeps with Options.CmdEnvClean
// (-cmd-env-clean), besides LC_*.
var cleanEnvKeys = map[string]bool{
	"PATH": true, "HOME": true, "LANG": true, "LANGUAGE": true, "TZ": true,
	"USER": true, "LOGNAME": true, "SHELL": true, "TMPDIR": true, "TERM": true,
}

// keepInCleanEnv reports whether the variable k stays in a clean
// environment.
func keepInCleanEnv(k string) bool {
	return cleanEnvKeys[k] || strings.HasPrefix(k, "LC_")
}

// fmtDuration writes whole seconds as "60s" rather than "1m0s".
func fmtDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}
