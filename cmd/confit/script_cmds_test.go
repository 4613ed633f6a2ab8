package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdWaitFile waits until a file exists and contains a string:
// waitfile FILE SUBSTRING. It gives up after 30 s (a bound, not a timing
// assertion: the change normally shows within milliseconds).
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: waitfile FILE SUBSTRING")
	}
	path := ts.MkAbs(args[0])
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(path)
		has := err == nil && bytes.Contains(b, []byte(args[1]))
		if has != neg {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitfile %s %q: not satisfied after 30s; file now:\n%s", args[0], args[1], b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cmdSignal sends a signal to every background command: signal HUP|TERM|INT.
func cmdSignal(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: signal HUP|TERM|INT")
	}
	sigs := map[string]os.Signal{"HUP": syscall.SIGHUP, "TERM": syscall.SIGTERM, "INT": syscall.SIGINT}
	sig, ok := sigs[strings.TrimPrefix(args[0], "-")]
	if !ok {
		ts.Fatalf("signal: unknown signal %s", args[0])
	}
	for _, c := range ts.BackgroundCmds() {
		if c.Process != nil {
			ts.Check(c.Process.Signal(sig))
		}
	}
}

// cmdExitCode runs a program and checks its exact exit status:
// exitcode N PROGRAM [ARGS...]. Its stdout and stderr are then what the
// stdout and stderr commands match (as after exec). `! exec` accepts any
// failure; this tells exit 1 (the run failed) from 2 (a usage or
// configuration error) and from a crash.
func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N PROGRAM [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: %q is not a number", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			ts.Fatalf("exitcode: %s: %v", args[1], err)
		}
		got = exit.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", args[1], got, want)
	}
}
