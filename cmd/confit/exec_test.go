package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/confit-dev/confit/resource"
)

func TestExecActions(t *testing.T) {
	res := func(action string, sig syscall.Signal) *resource.Resource {
		return &resource.Resource{ExecAction: action, ExecSignal: sig}
	}
	for _, tc := range []struct {
		name        string
		changed     []*resource.Resource
		wantRestart bool
		wantSignals []syscall.Signal
	}{
		{name: "three with the default signal: one signal",
			changed:     []*resource.Resource{res("signal", 0), res("signal", 0), res("signal", 0)},
			wantSignals: []syscall.Signal{syscall.SIGHUP}},
		{name: "two signals", changed: []*resource.Resource{res("signal", syscall.SIGUSR1), res("signal", 0), res("signal", syscall.SIGUSR1)},
			wantSignals: []syscall.Signal{syscall.SIGUSR1, syscall.SIGHUP}},
		{name: "a restart wins", changed: []*resource.Resource{res("signal", 0), res("restart", 0)}, wantRestart: true},
		{name: "none", changed: []*resource.Resource{res("none", 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := execActions(tc.changed, syscall.SIGHUP)
			if got.restart != tc.wantRestart || !slices.Equal(got.signals, tc.wantSignals) {
				t.Errorf("execActions = %+v, want restart %v, signals %v", got, tc.wantRestart, tc.wantSignals)
			}
		})
	}
}

func TestExecFlag(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "confd.toml")
	if err := os.WriteFile(cfgFile, []byte(`exec = ["myapp", "-config", "/etc/my app.conf"]`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	noenv := func(string) string { return "" }
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want []string
		err  string
	}{
		{name: "none", args: nil, want: nil},
		{name: "a command line", args: []string{"-exec", "myapp -v"}, want: []string{"myapp", "-v"}},
		{name: "shell syntax", args: []string{"-exec", "myapp > /log"}, want: []string{"/bin/sh", "-c", "myapp > /log"}},
		{name: "after --", args: []string{"-onetime", "--", "myapp", "a b"}, want: []string{"myapp", "a b"}},
		{name: "one word after --", args: []string{"--", "my app"}, want: []string{"my app"}},
		{name: "config file list", args: []string{"-config-file", cfgFile}, want: []string{"myapp", "-config", "/etc/my app.conf"}},
		{name: "environment", env: map[string]string{"CONFIT_EXEC": "myapp -x"}, want: []string{"myapp", "-x"}},
		{name: "both", args: []string{"-exec", "a", "--", "b"}, err: "exclude each other"},
		{name: "argument without --", args: []string{"-onetime", "myapp"}, err: `unexpected argument "myapp"`},
		{name: "bad restart", args: []string{"-exec-restart", "sometimes"}, err: `-exec-restart: unknown restart policy "sometimes"`},
		{name: "bad signal", args: []string{"-exec-kill-signal", "SIGFOO"}, err: `-exec-kill-signal: unknown signal "SIGFOO"`},
		{name: "bad reload signal", args: []string{"-exec-reload-signal", "x"}, err: `-exec-reload-signal: unknown signal "x"`},
		{name: "empty", args: []string{"-exec", " "}, err: "empty command"},
		{name: "noop", args: []string{"-noop", "-exec", "a"}, err: "-exec and -noop exclude each other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := noenv
			if tc.env != nil {
				getenv = func(k string) string { return tc.env[k] }
			}
			args := append([]string{"-config-file", os.DevNull}, tc.args...)
			o, err := parseOptions(args, getenv, func() []string { return nil }, &strings.Builder{})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := o.exec.argv(); !slices.Equal(got, tc.want) {
				t.Errorf("argv %q, want %q", got, tc.want)
			}
		})
	}
}
