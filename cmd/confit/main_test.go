package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain makes the test binary double as the confit command inside
// testscript scripts.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"confit": func() { os.Exit(mainWithSignals()) },
	})
}

// TestScripts runs the CLI scripts in testdata/script: each asserts exit
// codes, output and the files left behind.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// Keep a machine-wide /etc/confd/confd.toml out of the tests.
			env.Setenv("CONFIT_CONFIG_FILE", os.DevNull)
			return nil
		},
		Condition: func(cond string) (bool, error) {
			if cond == "root" {
				return os.Geteuid() == 0, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitfile": cmdWaitFile,
			"signal":   cmdSignal,
			"exitcode": cmdExitCode,
		},
	})
}

// TestCommandHelpExitCodes: a command's -help exits 0 with its usage on
// stdout; confit secret without a subcommand, or with an unknown one,
// exits 2 with the subcommands on stderr.
func TestCommandHelpExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		out, err string // what each must hold ("": nothing at all)
	}{
		{args: []string{"-help"}, code: exitOK, out: "confit COMMAND [flags]"},
		{args: []string{"register", "-help"}, code: exitOK, out: "Usage: confit register [flags]"},
		{args: []string{"secret", "-help"}, code: exitOK, out: "  keygen    print a new age identity"},
		{args: []string{"secret", "-h"}, code: exitOK, out: "  encrypt   encrypt standard input"},
		{args: []string{"encrypt", "-help"}, code: exitOK, out: "Usage: confit encrypt -key KEY"},
		{args: []string{"secret", "encrypt", "-h"}, code: exitOK, out: "Usage: confit encrypt -key KEY"},
		{args: []string{"secret", "keygen", "-help"}, code: exitOK, out: "Usage: confit secret keygen > identity.txt"},
		{args: []string{"secret", "keygen", "extra"}, code: exitUsage, err: "takes no arguments"},
		{args: []string{"secret"}, code: exitUsage, err: "a subcommand is needed: keygen or encrypt"},
		{args: []string{"secret", "bogus"}, code: exitUsage, err: `unknown subcommand "bogus"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr strings.Builder
			getenv := func(k string) string {
				if k == "CONFIT_CONFIG_FILE" {
					return os.DevNull
				}
				return ""
			}
			code := run(t.Context(), tc.args, getenv, func() []string { return nil }, nil, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.out) || tc.out == "" && stdout.Len() > 0 {
				t.Errorf("stdout = %q, want it to hold %q", stdout.String(), tc.out)
			}
			if !strings.Contains(stderr.String(), tc.err) || tc.err == "" && stderr.Len() > 0 {
				t.Errorf("stderr = %q, want it to hold %q", stderr.String(), tc.err)
			}
		})
	}
}
