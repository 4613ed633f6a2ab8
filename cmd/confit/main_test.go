package main

import (
	"fmt"
	"os"
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
