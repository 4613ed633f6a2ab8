// Command confit keeps configuration files in step with a key-value store.
// It is a drop-in successor to confd: same flags, conf.d format, template
// functions and stage/check/reload behaviour. Run `confit -help` for usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/confit-dev/confit/backends"
	_ "github.com/confit-dev/confit/backends/env"
	_ "github.com/confit-dev/confit/backends/file"
	"github.com/confit-dev/confit/internal/daemon"
	"github.com/confit-dev/confit/resource"
	"github.com/confit-dev/confit/template"
)

// oneshotGOGC is the garbage collector's GOGC in a one-shot run.
const oneshotGOGC = 200

// tuneGC sets GOGC to oneshotGOGC for a one-shot run, unless GOGC is in
// the environment, and returns the func that puts the old value back. A
// one-shot run allocates much and keeps little: with the default GOGC=100
// its small heap is collected every 2 MB, which cost 200 resources ~9 ms
// of their ~45 ms, for ~3 MB less peak RSS; the process exits in moments.
func tuneGC(onetime bool, getenv func(string) string) (restore func()) {
	if !onetime || getenv("GOGC") != "" {
		return func() {}
	}
	old := debug.SetGCPercent(oneshotGOGC)
	return func() { debug.SetGCPercent(old) }
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // a resource failed (one-shot) or the daemon could not run
	exitUsage  = 2 // bad flags, environment or config file
)

func main() {
	os.Exit(mainWithSignals())
}

// mainWithSignals runs confit on the process's arguments: SIGINT and
// SIGTERM cancel the run (work in flight finishes), SIGHUP asks for a
// reload of conf.d.
func mainWithSignals() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	return run(ctx, os.Args[1:], os.Getenv, os.Environ, reload, os.Stdout, os.Stderr)
}

// run is main without globals: it parses args, runs the daemon and returns
// the exit code. getenv and environ read the environment; reload receives
// a value for each SIGHUP.
func run(ctx context.Context, args []string, getenv func(string) string, environ func() []string, reload <-chan struct{}, stdout, stderr io.Writer) int {
	if sub, ok := subcommand(args); ok {
		switch sub[0] {
		case "keygen":
			return runKeygen(sub[1:], stdout, stderr) // crypt.go
		case "encrypt":
			return runEncrypt(sub[1:], stdin, stdout, stderr) // crypt.go
		}
		return secretUsage(sub[1:], stdout, stderr)
	}
	var rf *registerFlags // confit register: its flags
	if len(args) > 0 && args[0] == "register" {
		rf, args = &registerFlags{}, args[1:]
	}
	o, err := parseOptions(args, getenv, environ, stdout, rf.declare)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		for line := range strings.Lines(err.Error()) {
			fmt.Fprintf(stderr, "confit: %s\n", strings.TrimSuffix(strings.TrimPrefix(line, errUsage.Error()+": "), "\n"))
		}
		if errors.Is(err, errUsage) {
			if rf != nil {
				fmt.Fprintln(stderr, "Run 'confit register -help' for usage.")
				return exitUsage
			}
			fmt.Fprintln(stderr, "Run 'confit -help' for usage.")
			return exitUsage
		}
		return exitFailed
	}
	if o.version {
		fmt.Fprintf(stdout, "confit %s (%s, %s/%s; backends: %s)\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH,
			backendList())
		return exitOK
	}
	log := newLogger(stderr, o.logFormat, o.logLevel)
	for _, w := range o.warnings {
		log.Warn(w)
	}
	defer startProfiles(getenv, stderr)()
	defer tuneGC(o.onetime, getenv)()

	spec := o.backendSpec(getenv)
	if _, err := backends.Decode(spec); err != nil && !errors.Is(err, backends.ErrUnknownBackend) {
		fmt.Fprintf(stderr, "confit: %v\nRun 'confit -help' for usage.\n", err)
		return exitUsage
	}
	wait, _ := resource.ParseWait(o.wait)     // checked by validate
	decrypter, reloadKeys, err := loadKeys(o) // crypt.go
	if err != nil {
		log.Error(err.Error())
		return exitUsage
	}
	if reloadKeys != nil && reload != nil {
		reload = reloadKeysFirst(ctx, reload, reloadKeys, log)
	}
	cfg := daemon.Config{
		Resource: resource.Options{
			ConfDir:       o.confdir,
			Prefix:        o.prefix,
			Noop:          o.noop,
			SyncOnly:      o.syncOnly,
			KeepStageFile: o.keepStageFile,
			CmdTimeout:    o.cmdTimeout,
			CmdEnvClean:   o.cmdEnvClean,
			Logger:        log,
			Diff:          stdout,
			TemplateOptions: template.Options{
				TextTemplate: o.templateExecutor == "text",
				Decrypter:    decrypter,
			},
		},
		Backend:     spec,
		Onetime:     o.onetime,
		ReadTimeout: o.timeout,
		Watch:       o.watch,
		Interval:    time.Duration(o.interval) * time.Second,
		Wait:        wait,
		Logger:      log,
		Reload:      reload,
		MetricsAddr: o.metricsAddr,
	}
	if o.watch && os.Getenv("GOMAXPROCS") == "" {
		cfg.Steady = daemon.OneProcWhenSteady
	}
	cfg.Resource.NoopShowSecrets = o.noopShowSecrets
	stopReaper, err := startReaper(o, log)
	if err != nil {
		log.Error(err.Error())
		return exitFailed
	}
	defer stopReaper()
	if o.exec.argv() != nil {
		return runExec(ctx, o, rf, cfg, reload, stdout, stderr, log)
	}
	err = runWithRegister(ctx, o, rf, cfg)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, daemon.ErrConfig):
		log.Error(err.Error())
		return exitUsage
	default:
		log.Error(err.Error())
		return exitFailed
	}
}

// backendSpec is the process-wide backend as the flags, environment and
// config file give it: every backend setting some source set. With the
// etcd backend and no -node, ETCDCTL_PEERS names the nodes, as in confd.
func (o *options) backendSpec(getenv func(string) string) backends.Spec {
	spec := backends.Spec{Backend: o.backend, Settings: backends.Settings{}}
	for name, sf := range o.settings {
		if sf.set {
			spec.Settings[name] = slices.Clone(sf.vals)
		}
	}
	if o.backend == "etcd" && spec.Settings["node"] == nil {
		if peers := getenv("ETCDCTL_PEERS"); peers != "" {
			spec.Settings["node"] = strings.Split(peers, ",")
		}
	}
	return spec
}

// stdin is what `confit encrypt` encrypts.
var stdin io.Reader = os.Stdin

// subcommand returns the subcommand and its arguments of `confit encrypt
// ARGS`, `confit secret encrypt ARGS` and `confit secret keygen`; for
// `confit secret` with anything else (-help, nothing, a typo), "secret"
// and its arguments.
func subcommand(args []string) ([]string, bool) {
	switch {
	case len(args) > 0 && args[0] == "encrypt":
		return args, true
	case len(args) > 1 && args[0] == "secret" && (args[1] == "encrypt" || args[1] == "keygen"):
		return args[1:], true
	case len(args) > 0 && args[0] == "secret":
		return args, true
	}
	return nil, false
}

// helpAsked reports whether args ask for help (-h, -help, --help), which
// every command answers on stdout with exit 0.
func helpAsked(args []string) bool {
	return slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "-help" || a == "--help" })
}

// keygenUsage is `confit secret keygen -help`.
const keygenUsage = `Usage: confit secret keygen > identity.txt

Prints a new age identity in age-keygen's layout (a comment with its public
key, then the secret key) and the public key (age1...) on stderr. Write it to
a file of mode 0600 and give that file to -age-identity; encrypt to the public
key with confit encrypt -recipient.
`

// secretUsage is `confit secret` without one of its subcommands: with
// -help (-h, --help) it prints them on stdout and exits 0; with nothing
// it prints them on stderr and exits 2, as for anything else, which it
// names.
func secretUsage(args []string, stdout, stderr io.Writer) int {
	const text = `Usage: confit secret keygen > identity.txt
       confit secret encrypt [flags] < plaintext

Subcommands:
  keygen    print a new age identity (its public key, age1..., on stderr);
            write it to a file of mode 0600 for -age-identity
  encrypt   encrypt standard input as a value to store, as confit encrypt
            (confit secret encrypt -help for its flags)
`
	switch {
	case len(args) > 0 && helpAsked(args[:1]):
		fmt.Fprint(stdout, text)
		return exitOK
	case len(args) > 0:
		fmt.Fprintf(stderr, "confit secret: unknown subcommand %q: want keygen or encrypt\n", args[0])
	default:
		fmt.Fprintln(stderr, "confit secret: a subcommand is needed: keygen or encrypt")
	}
	fmt.Fprint(stderr, "\n"+text)
	return exitUsage
}

// reloadKeysFirst returns a channel that passes on each value of reload
// once the keys are read again (reloadKeys), so that the daemon's SIGHUP
// reload renders with the new keys. Keys that fail to load are logged,
// and the keys in use stay.
func reloadKeysFirst(ctx context.Context, reload <-chan struct{}, reloadKeys func() error, log *slog.Logger) <-chan struct{} {
	return afterEachReload(ctx, reload, func(context.Context) {
		if err := reloadKeys(); err != nil {
			log.Error("keys not reloaded, the keys in use stay: " + err.Error())
		} else {
			log.Info("keys reloaded (-secret-keyring, -age-identity)")
		}
	})
}

// afterEachReload returns a channel that passes on each value of reload
// (SIGHUP) once first has run for it: what must be read again before the
// daemon reloads conf.d (keys, registrations) is, and the daemon's reload
// comes after.
func afterEachReload(ctx context.Context, reload <-chan struct{}, first func(context.Context)) <-chan struct{} {
	out := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-reload:
			}
			first(ctx)
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out
}

func backendList() string {
	return strings.Join(backends.Names(), ", ")
}

func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}
