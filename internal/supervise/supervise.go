// Package supervise runs exec mode's child: the application confit starts
// once every resource rendered, signals or restarts when its files change,
// and stops when confit is stopped.
//
// The child runs in its own process group, so that signals reach every
// process of an `sh -c` command. One goroutine owns it: requests (Signal,
// Restart, Stop) go to that goroutine through a channel; Signal and
// Restart never block the caller. When the child dies on its own, the
// restart policy says whether it starts again, after a jittered backoff;
// too many deaths within a window make the supervisor give up. Done is closed when the supervisor
// is finished, and ExitCode is then confit's exit code: the child's own,
// 128+N when a signal N killed it.
package supervise

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/confit-dev/confit/internal/reap"
	"github.com/confit-dev/confit/internal/retry"
	"github.com/confit-dev/confit/internal/signame"
)

// Restart is what happens when the child exits on its own.
type Restart int

// The restart policies.
const (
	// OnFailure restarts a child that exited non-zero or was killed by a
	// signal; an exit 0 ends confit with 0.
	OnFailure Restart = iota
	// Always restarts the child whatever its exit.
	Always
	// Never ends confit with the child's exit code.
	Never
)

// ParseRestart reads "on-failure", "always" or "never".
func ParseRestart(s string) (Restart, error) {
	switch s {
	case "on-failure":
		return OnFailure, nil
	case "always":
		return Always, nil
	case "never":
		return Never, nil
	}
	return 0, fmt.Errorf("unknown restart policy %q: want on-failure, always or never", s)
}

// Config is what the supervisor runs and how.
type Config struct {
	// Argv is the command: Argv[0] is looked up in PATH.
	Argv []string
	// Stdout and Stderr are the child's (nil: the null device). Its
	// stdin is the null device.
	Stdout, Stderr io.Writer
	// KillSignal asks the child to stop (default SIGTERM); SIGKILL follows
	// after KillTimeout (default 30s).
	KillSignal  syscall.Signal
	KillTimeout time.Duration
	// Restart is the policy for a child that exits on its own.
	Restart Restart
	// RestartLimit deaths within RestartWindow make the supervisor give
	// up (defaults 5 and 60s).
	RestartLimit  int
	RestartWindow time.Duration
	// BackoffMin and BackoffMax bound the jittered exponential delay
	// before a restart (defaults 1s and 30s).
	BackoffMin, BackoffMax time.Duration
	Logger                 *slog.Logger
}

// Status is the child's state.
type Status string

// The states of the child.
const (
	Starting   Status = "starting"
	Running    Status = "running"
	Restarting Status = "restarting" // dead, waiting out the backoff
	Exited     Status = "exited"     // the supervisor is finished
)

// State is a snapshot of the child and its history.
type State struct {
	Status Status
	PID    int // 0 when not running
	// Restarts counts every start after the first (restart actions and
	// restarts after a death alike).
	Restarts int
	// LastExit is the last child's exit code (128+N when killed by signal
	// N); -1 before any exit.
	LastExit int
	// Signals counts the signals sent to the child's process group.
	Signals int
}

type reqKind int

const (
	reqSignal reqKind = iota
	reqRestart
	reqStop
)

type request struct {
	kind reqKind
	sig  syscall.Signal
}

// Supervisor runs one child. Its methods are safe for concurrent use.
type Supervisor struct {
	cfg  Config
	log  *slog.Logger
	reqs chan request
	done chan struct{}

	mu    sync.Mutex
	state State
	code  int // exit code, set before done is closed
}

// New checks cfg and returns a supervisor; nothing starts before Start.
func New(cfg Config) (*Supervisor, error) {
	if len(cfg.Argv) == 0 || cfg.Argv[0] == "" {
		return nil, errors.New("exec: empty command")
	}
	if cfg.KillSignal == 0 {
		cfg.KillSignal = syscall.SIGTERM
	}
	if cfg.KillTimeout <= 0 {
		cfg.KillTimeout = 30 * time.Second
	}
	if cfg.RestartLimit <= 0 {
		cfg.RestartLimit = 5
	}
	if cfg.RestartWindow <= 0 {
		cfg.RestartWindow = time.Minute
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = time.Second
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(30*time.Second, cfg.BackoffMin)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Supervisor{
		cfg:   cfg,
		log:   log.With("exec", progName(cfg.Argv)),
		reqs:  make(chan request, 16),
		done:  make(chan struct{}),
		state: State{Status: Starting, LastExit: -1},
	}, nil
}

// progName names the program in logs: argv[0], or the first word of an
// sh -c command (not its arguments, which may hold a secret).
func progName(argv []string) string {
	if len(argv) == 3 && argv[0] == "/bin/sh" && argv[1] == "-c" {
		if f := strings.Fields(argv[2]); len(f) > 0 {
			return f[0]
		}
	}
	return argv[0]
}

// child is one run of the command.
type child struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed when Wait returned
	started time.Time
}

// start starts the command in its own process group.
func (s *Supervisor) start() (*child, error) {
	cmd := exec.Command(s.cfg.Argv[0], s.cfg.Argv[1:]...)
	cmd.Stdout, cmd.Stderr = s.cfg.Stdout, s.cfg.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := reap.Start(cmd); err != nil {
		return nil, fmt.Errorf("exec: start %q: %w", s.cfg.Argv[0], err)
	}
	c := &child{cmd: cmd, exited: make(chan struct{}), started: time.Now()}
	go func() {
		_ = reap.Wait(cmd) // the status is in cmd.ProcessState
		close(c.exited)
	}()
	s.update(func(st *State) { st.Status, st.PID = Running, cmd.Process.Pid })
	s.log.Info("exec: started", "pid", cmd.Process.Pid)
	return c, nil
}

// Start starts the child and the goroutine that supervises it. An error
// (the program is not found, not executable) leaves nothing running.
func (s *Supervisor) Start() error {
	c, err := s.start()
	if err != nil {
		s.finish(exitCannotRun)
		return err
	}
	go s.loop(c)
	return nil
}

// exitCannotRun is the exit code when the command cannot be started, as a
// shell's 127 for a command not found.
const exitCannotRun = 127

// Signal sends sig to the child's process group; it is dropped while no
// child runs (the next one reads the new files anyway).
func (s *Supervisor) Signal(sig syscall.Signal) { s.send(request{kind: reqSignal, sig: sig}) }

// Restart stops the child (KillSignal, then SIGKILL after KillTimeout)
// and starts it again. It does not count towards RestartLimit.
func (s *Supervisor) Restart() { s.send(request{kind: reqRestart}) }

// Stop stops the child as Restart does, and finishes: Done is closed once
// it exited, and ExitCode is its exit code.
func (s *Supervisor) Stop() { s.send(request{kind: reqStop}) }

// send queues r. Signal and Restart never block: with the queue full
// (the child is being stopped, up to KillTimeout) they are dropped, as the
// requests queued already signal or restart the child after the same
// changes. Stop waits for room.
func (s *Supervisor) send(r request) {
	if r.kind != reqStop {
		select {
		case s.reqs <- r:
		case <-s.done:
		default:
			s.log.Warn("exec: busy; request dropped", "queued", len(s.reqs))
		}
		return
	}
	select {
	case s.reqs <- r:
	case <-s.done:
	}
}

// Done is closed when the supervisor is finished: stopped, the child
// exited and is not restarted, or it gave up after RestartLimit deaths.
func (s *Supervisor) Done() <-chan struct{} { return s.done }

// ExitCode is the exit code confit should exit with, once Done is closed:
// the last child's (128+N if signal N killed it), at least 1 when the
// supervisor gave up on a crash loop.
func (s *Supervisor) ExitCode() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.code
}

// State returns the child's state now.
func (s *Supervisor) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

func (s *Supervisor) update(f func(*State)) {
	s.mu.Lock()
	f(&s.state)
	s.mu.Unlock()
}

func (s *Supervisor) finish(code int) {
	s.mu.Lock()
	s.code = code
	s.state.Status, s.state.PID = Exited, 0
	s.mu.Unlock()
	close(s.done)
}

// loop owns the child c until the supervisor finishes.
func (s *Supervisor) loop(c *child) {
	var deaths []time.Time // within RestartWindow
	for {
		select {
		case <-c.exited:
			code := s.exited(c)
			now := time.Now()
			restart := s.cfg.Restart == Always || s.cfg.Restart == OnFailure && code != 0
			if !restart {
				s.log.Info("exec: exited; not restarted (-exec-restart)", "code", code)
				s.finish(code)
				return
			}
			deaths = append(deaths, now)
			for len(deaths) > 0 && now.Sub(deaths[0]) > s.cfg.RestartWindow {
				deaths = deaths[1:]
			}
			if len(deaths) >= s.cfg.RestartLimit {
				s.log.Error("exec: giving up: the command died too often", "deaths", len(deaths),
					"within", s.cfg.RestartWindow.String(), "code", code)
				s.finish(max(code, 1))
				return
			}
			delay := retry.Backoff(s.cfg.BackoffMin, s.cfg.BackoffMax, len(deaths))
			s.update(func(st *State) { st.Status = Restarting })
			s.log.Warn("exec: exited; restarting", "code", code, "in", delay.Round(time.Millisecond).String())
			var stop bool
			c, stop = s.backoff(delay)
			if stop {
				s.finish(code)
				return
			}
			if c == nil {
				s.finish(exitCannotRun)
				return
			}
		case r := <-s.reqs:
			switch r.kind {
			case reqSignal:
				s.signal(c, r.sig)
			case reqRestart:
				s.log.Info("exec: restarting: its files changed")
				s.terminate(c)
				s.exited(c)
				next, err := s.start()
				if err != nil {
					s.log.Error(err.Error())
					s.finish(exitCannotRun)
					return
				}
				s.update(func(st *State) { st.Restarts++ })
				c = next
			case reqStop:
				s.terminate(c)
				s.finish(s.exited(c))
				return
			}
		}
	}
}

// backoff waits delay, then starts a new child. Signals and restarts
// asked for meanwhile are dropped (the new child reads the files as they
// are); a Stop returns stop. c is nil when the start failed.
func (s *Supervisor) backoff(delay time.Duration) (c *child, stop bool) {
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c, err := s.start()
			if err != nil {
				s.log.Error(err.Error())
				return nil, false
			}
			s.update(func(st *State) { st.Restarts++ })
			return c, false
		case r := <-s.reqs:
			if r.kind == reqStop {
				return nil, true
			}
		}
	}
}

// exited records the exit of c (which has exited) and returns its code.
func (s *Supervisor) exited(c *child) int {
	code := ExitCode(c.cmd.ProcessState)
	s.update(func(st *State) { st.LastExit, st.PID = code, 0 })
	return code
}

// ExitCode is a process's exit code as a shell reports it: 128+N when
// signal N killed it.
func ExitCode(ps *os.ProcessState) int {
	if ps == nil {
		return exitCannotRun
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// signal sends sig to c's process group.
func (s *Supervisor) signal(c *child, sig syscall.Signal) {
	select {
	case <-c.exited:
		return // it is gone; the loop sees that next
	default:
	}
	if err := syscall.Kill(-c.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		s.log.Warn("exec: signal", "signal", signame.Name(sig), "err", err)
		return
	}
	s.update(func(st *State) { st.Signals++ })
	s.log.Info("exec: signalled", "signal", signame.Name(sig), "pid", c.cmd.Process.Pid)
}

// terminate sends KillSignal to c's group, then SIGKILL after KillTimeout,
// and returns once c exited.
func (s *Supervisor) terminate(c *child) {
	s.signal(c, s.cfg.KillSignal)
	t := time.NewTimer(s.cfg.KillTimeout)
	defer t.Stop()
	select {
	case <-c.exited:
		return
	case <-t.C:
	}
	s.log.Warn("exec: still running after the kill timeout; SIGKILL", "timeout", s.cfg.KillTimeout.String())
	s.signal(c, syscall.SIGKILL)
	<-c.exited
}

// ShellArgv is the argv of a -exec command line: run by /bin/sh -c when it
// holds shell syntax (quotes, $, ;, |, &, redirections, globs, a leading
// VAR=value...), else
// split at spaces and run directly, so that the program itself is the
// child and gets the signals.
func ShellArgv(cmd string) []string {
	f := strings.Fields(cmd)
	if strings.ContainsAny(cmd, "'\"`$;|&<>(){}*?[]~#\\") || len(f) > 0 && strings.Contains(f[0], "=") {
		return []string{"/bin/sh", "-c", cmd}
	}
	return f
}
