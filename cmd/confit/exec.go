package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/confit-dev/confit/internal/daemon"
	"github.com/confit-dev/confit/internal/reap"
	"github.com/confit-dev/confit/internal/signame"
	"github.com/confit-dev/confit/internal/supervise"
	"github.com/confit-dev/confit/resource"
)

// execFlag is -exec: one value is a command line (supervise.ShellArgv),
// several (exec = ["prog", "arg"] in the config file, or the words after
// --) are the argv itself.
type execFlag struct {
	vals  []string
	exact bool // vals is the argv even when it is one word (after --)
}

func (f *execFlag) String() string {
	if f == nil {
		return ""
	}
	return strings.Join(f.vals, " ")
}

// Set implements flag.Value; each value is one more word of the argv.
func (f *execFlag) Set(v string) error {
	if strings.TrimSpace(v) == "" {
		return errors.New("empty command")
	}
	f.vals = append(f.vals, v)
	return nil
}

// argv is the command to run, nil without -exec.
func (f *execFlag) argv() []string {
	switch {
	case len(f.vals) == 0:
		return nil
	case len(f.vals) == 1 && !f.exact:
		return supervise.ShellArgv(f.vals[0])
	}
	return slices.Clone(f.vals)
}

// validateExec checks the exec mode flags.
func (o *options) validateExec() error {
	if _, err := signame.Parse(o.execReloadSignal); err != nil {
		return fmt.Errorf("%w: -exec-reload-signal: %v", errUsage, err)
	}
	if _, err := signame.Parse(o.execKillSignal); err != nil {
		return fmt.Errorf("%w: -exec-kill-signal: %v", errUsage, err)
	}
	if _, err := supervise.ParseRestart(o.execRestart); err != nil {
		return fmt.Errorf("%w: -exec-restart: %v", errUsage, err)
	}
	if o.execKillTimeout <= 0 {
		return fmt.Errorf("%w: -exec-kill-timeout %s: must be positive", errUsage, o.execKillTimeout)
	}
	if o.execRestartLimit < 1 {
		return fmt.Errorf("%w: -exec-restart-limit %d: must be at least 1", errUsage, o.execRestartLimit)
	}
	if o.execRestartWindow <= 0 {
		return fmt.Errorf("%w: -exec-restart-window %s: must be positive", errUsage, o.execRestartWindow)
	}
	if o.exec.argv() != nil && o.noop {
		return fmt.Errorf("%w: -exec and -noop exclude each other: -noop writes no file for the command to run on", errUsage)
	}
	return nil
}

// forwarded are the signals exec mode passes on to the command's process
// group as they come. SIGTERM and SIGINT stop it (-exec-kill-signal),
// SIGHUP reloads conf.d (unless -exec-forward-hup); SIGURG (Go's own
// preemption signal) and SIGCHLD are never forwarded.
var forwarded = []os.Signal{syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH,
	syscall.SIGALRM, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGCONT}

// startReaper reaps orphaned processes when confit is PID 1 (in every
// mode: a reload_cmd's background job is re-parented to it too) or, with
// -exec-subreaper, after making confit the child subreaper. The returned
// func stops it.
func startReaper(o *options, log *slog.Logger) (stop func(), err error) {
	if !reap.Needed() && !o.execSubreaper {
		return func() {}, nil
	}
	if !reap.Needed() {
		if err := reap.SetSubreaper(); err != nil {
			return nil, fmt.Errorf("-exec-subreaper: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		reap.Reap(ctx, log)
	}()
	return func() { cancel(); <-done }, nil
}

// runExec is exec mode: it renders every resource once (any failure: exit
// 1, nothing started), starts the command, then runs the mode cfg selects
// with the command signalled or restarted after each batch that changed
// files, until a signal stops confit or the command ends for good. It
// returns the command's exit code. ctx is cancelled by SIGTERM/SIGINT;
// reload receives SIGHUPs.
func runExec(ctx context.Context, o *options, rf *registerFlags, cfg daemon.Config, reload <-chan struct{}, stdout, stderr io.Writer, log *slog.Logger) int {
	// Every resource first: an application must not start on a missing
	// or stale file.
	once := cfg
	once.Onetime, once.Watch, once.MetricsAddr = true, false, ""
	if err := daemon.Run(ctx, once); err != nil {
		log.Error("not starting the -exec command: " + err.Error())
		if errors.Is(err, daemon.ErrConfig) {
			return exitUsage
		}
		return exitFailed
	}
	if ctx.Err() != nil {
		log.Info("stopped before the -exec command started")
		return exitOK
	}

	reloadSig, _ := signame.Parse(o.execReloadSignal) // checked by validate
	killSig, _ := signame.Parse(o.execKillSignal)
	restart, _ := supervise.ParseRestart(o.execRestart)
	sup, err := supervise.New(supervise.Config{
		Argv:          o.exec.argv(),
		Stdout:        stdout,
		Stderr:        stderr,
		KillSignal:    killSig,
		KillTimeout:   o.execKillTimeout,
		Restart:       restart,
		RestartLimit:  o.execRestartLimit,
		RestartWindow: o.execRestartWindow,
		Logger:        log,
	})
	if err != nil {
		log.Error(err.Error())
		return exitFailed
	}
	if err := sup.Start(); err != nil {
		log.Error(err.Error())
		return sup.ExitCode() // 127, as a shell's command not found
	}

	fwd := make(chan os.Signal, 8)
	signal.Notify(fwd, forwarded...)
	defer signal.Stop(fwd)

	follow := !o.onetime // -onetime: render once, then only supervise
	daemonReload := make(chan struct{}, 1)
	cfg.Reload = daemonReload
	cfg.Reporters = append(cfg.Reporters, sup)
	cfg.AfterBatch = func(changed []*resource.Resource) {
		act := execActions(changed, reloadSig)
		if act.restart {
			sup.Restart()
			return
		}
		for _, s := range act.signals {
			sup.Signal(s)
		}
	}
	dctx, stopDaemon := context.WithCancel(context.Background())
	defer stopDaemon()
	ddone := make(chan error, 1)
	if follow {
		go func() { ddone <- runWithRegister(dctx, o, rf, cfg) }() // [register] tables run beside it
	} else {
		ddone <- nil
	}

	stopping := ctx.Done()
	var daemonErr error
	for {
		select {
		case <-stopping:
			stopping = nil
			log.Info("stopping the -exec command", "signal", o.execKillSignal)
			sup.Stop()
			stopDaemon()
		case s := <-fwd:
			sup.Signal(s.(syscall.Signal))
		case <-reload:
			if o.execForwardHUP || !follow {
				sup.Signal(syscall.SIGHUP)
				continue
			}
			select {
			case daemonReload <- struct{}{}:
			default:
			}
		case err := <-ddone:
			ddone = nil
			if follow && err != nil && ctx.Err() == nil {
				daemonErr = err
				log.Error(err.Error() + "; stopping the -exec command")
				sup.Stop()
			}
		case <-sup.Done():
			stopDaemon()
			if ddone != nil {
				select {
				case <-ddone:
				case <-time.After(time.Minute): // a reload_cmd in flight has its own timeout
				}
			}
			code := sup.ExitCode()
			if daemonErr != nil && code == 0 {
				code = exitFailed
			}
			return code
		}
	}
}

// actions is what one batch asks of the command: a restart (which makes
// any signal moot), else one of each distinct signal.
type actions struct {
	restart bool
	signals []syscall.Signal
}

// execActions merges the exec_action of the resources a batch changed;
// def is the signal of those that name none (-exec-reload-signal).
func execActions(changed []*resource.Resource, def syscall.Signal) actions {
	var a actions
	for _, r := range changed {
		switch r.ExecAction {
		case resource.ExecRestart:
			a.restart = true
		case resource.ExecSignal, "":
			s := r.ExecSignal
			if s == 0 {
				s = def
			}
			if !slices.Contains(a.signals, s) {
				a.signals = append(a.signals, s)
			}
		}
	}
	if a.restart {
		a.signals = nil
	}
	return a
}
