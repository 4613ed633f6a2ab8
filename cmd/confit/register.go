package main

// confit register and [register] tables: register mode (package register)
// beside the daemon, or alone.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/confit-dev/confit/internal/daemon"
	"github.com/confit-dev/confit/register"
	"github.com/confit-dev/confit/resource"
)

// registerFlags are confit register's own flags: one registration.
type registerFlags struct {
	key, value, service, id, address string
	port                             int
	tags, meta                       listFlag
	checkHTTP, checkTCP, checkCmd    string
	checkStatus                      int
	checkInterval, checkTimeout      time.Duration
	rise, fall                       int
	ttl, drain, deregisterAfter      time.Duration
	flapLimit                        int
	flapWindow                       time.Duration
}

// declare adds the flags to fs, and makes fs's -help confit register's;
// a nil rf (not confit register) adds none.
func (rf *registerFlags) declare(fs *flag.FlagSet) {
	if rf == nil {
		return
	}
	confits := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { confits[f.Name] = true })
	defer func() {
		own := map[string]bool{}
		fs.VisitAll(func(f *flag.Flag) { own[f.Name] = !confits[f.Name] })
		fs.Usage = func() { registerUsage(fs, own) }
	}()
	s, d, n := fs.StringVar, fs.DurationVar, fs.IntVar
	s(&rf.key, "key", "", "register (etcd): the key to announce, e.g. /services/web/10.0.0.5:8080")
	s(&rf.value, "value", "", "register (etcd): the key's value (default: JSON of -id, -service, -address, -port, -tag, -meta)")
	s(&rf.service, "service", "", "register (consul): the service name")
	s(&rf.id, "id", "", "register: the instance ID (default SERVICE-ADDRESS-PORT)")
	s(&rf.address, "address", "", "register: the instance's address")
	n(&rf.port, "port", 0, "register: the instance's port")
	fs.Var(&rf.tags, "tag", "register: a tag of the instance (repeatable)")
	fs.Var(&rf.meta, "meta", "register: KEY=VALUE metadata of the instance (repeatable)")
	s(&rf.checkHTTP, "check-http", "", "register: check with an HTTP GET of this URL (2xx, or -check-status)")
	n(&rf.checkStatus, "check-status", 0, "register: the status -check-http expects (default any 2xx)")
	s(&rf.checkTCP, "check-tcp", "", "register: check by connecting to HOST:PORT")
	s(&rf.checkCmd, "check-cmd", "", "register: check by running this command (split at spaces, no shell; exit 0 passes)")
	d(&rf.checkInterval, "check-interval", register.DefaultInterval, "register: time between checks")
	d(&rf.checkTimeout, "check-timeout", register.DefaultTimeout, "register: timeout of each check")
	n(&rf.rise, "rise", register.DefaultRise, "register: consecutive passes that mark the instance up")
	n(&rf.fall, "fall", register.DefaultFall, "register: consecutive failures that mark it down")
	d(&rf.ttl, "ttl", register.DefaultTTL, "register: etcd lease TTL / Consul TTL check (whole seconds)")
	d(&rf.drain, "drain", register.DefaultDrain, "register: on SIGTERM, time marked down before deregistering and exiting")
	d(&rf.deregisterAfter, "deregister-critical-after", register.DefaultDeregisterAfter, "register (consul): deregister_critical_service_after")
	n(&rf.flapLimit, "flap-limit", register.DefaultFlapLimit, "register: times the instance may come up per -flap-window (0: no limit)")
	d(&rf.flapWindow, "flap-window", register.DefaultFlapWindow, "register: the window of -flap-limit")
}

// registerUsage prints confit register -help: what it does, its own flags
// (own), then the rest of confit's.
func registerUsage(fs *flag.FlagSet, own map[string]bool) {
	w := fs.Output()
	fmt.Fprint(w, `Usage: confit register [flags]

Register mode: announce one instance (-key KEY for etcd, -service NAME for
Consul) while its health check (-check-http, -check-tcp or -check-cmd) passes,
and withdraw it after -fall failures; it is announced again after -rise
passes. The [register] tables of CONFDIR/conf.d are run too. etcd: the key is
on a lease of -ttl, so a kill -9 of confit removes it within the TTL. Consul:
the service has a TTL check that goes critical when confit stops passing it.
On SIGTERM or SIGINT each instance is marked down, confit waits -drain, then
deregisters and exits 0. With -watch, confit also renders CONFDIR's templates
as confit -watch does. Exit codes: 2 bad flags or registrations, 1 a store
that cannot be set up.

Example:
  confit register -backend etcd -node http://127.0.0.1:2379 \
    -key /services/web/10.0.0.5:8080 -value 10.0.0.5:8080 \
    -check-http http://127.0.0.1:8080/health

Registration flags:
`)
	sub := func(keep bool) *flag.FlagSet {
		out := flag.NewFlagSet("confit register", flag.ContinueOnError)
		out.SetOutput(w)
		fs.VisitAll(func(f *flag.Flag) {
			if own[f.Name] == keep {
				out.Var(f.Value, f.Name, f.Usage)
				out.Lookup(f.Name).DefValue = f.DefValue
			}
		})
		return out
	}
	sub(true).PrintDefaults()
	fmt.Fprint(w, "\nconfit's flags (the store with -backend and its settings, logging, -watch, -metrics-addr; see confit -help):\n")
	sub(false).PrintDefaults()
}

// registration is the registration the flags describe; nil when neither
// -key nor -service is given.
func (rf *registerFlags) registration() (*register.Registration, error) {
	if rf.key == "" && rf.service == "" {
		return nil, nil
	}
	meta := map[string]string{}
	for _, kv := range rf.meta {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("-meta %q: want KEY=VALUE", kv)
		}
		meta[k] = v
	}
	if len(meta) == 0 {
		meta = nil
	}
	r := &register.Registration{
		Name: "flags", Key: rf.key, Value: rf.value, Service: rf.service, ID: rf.id,
		Address: rf.address, Port: rf.port, Tags: rf.tags, Meta: meta,
		Check: register.Check{HTTP: rf.checkHTTP, Status: rf.checkStatus, TCP: rf.checkTCP, Cmd: strings.Fields(rf.checkCmd),
			Interval: rf.checkInterval, Timeout: rf.checkTimeout, Rise: rf.rise, Fall: rf.fall},
		TTL: rf.ttl, Drain: rf.drain, DeregisterAfter: rf.deregisterAfter, FlapLimit: rf.flapLimit, FlapWindow: rf.flapWindow,
	}
	if r.Drain == 0 {
		r.Drain = -1 // -drain 0: none (the zero value means the default)
	}
	return r, nil
}

// loadRegistrations reads the [register] tables of CONFDIR/conf.d. A file
// that does not decode is left to the daemon's load to report, unless only
// register mode runs (report).
func loadRegistrations(confdir string, report bool) ([]*register.Registration, []error) {
	var files []string
	_ = filepath.WalkDir(filepath.Join(confdir, "conf.d"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(d.Name(), ".toml") {
			files = append(files, p)
		}
		return nil
	})
	slices.Sort(files)
	var (
		regs []*register.Registration
		errs []error
	)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			if report {
				errs = append(errs, err)
			}
			continue
		}
		c, err := resource.DecodeConfig(f, data)
		if err != nil {
			if report {
				errs = append(errs, err)
			}
			continue
		}
		if c.Register == nil {
			continue
		}
		r, err := register.FromTable(f, data, c.Register, c.BackendSpec())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		regs = append(regs, r)
	}
	return regs, errs
}

// runWithRegister runs the daemon as cfg says and, beside it, the
// registrations of conf.d's [register] tables and (confit register) the
// flags. confit register runs the daemon too only with -watch. On
// cancellation it returns once the registrations are drained and
// deregistered.
func runWithRegister(ctx context.Context, o *options, rf *registerFlags, cfg daemon.Config) error {
	log := cfg.Logger
	if o.onetime {
		if rf != nil {
			return fmt.Errorf("%w: confit register: -onetime: register mode runs until stopped", daemon.ErrConfig)
		}
		return daemon.Run(ctx, cfg) // a one-shot run registers nothing
	}
	regs, errs := loadRegistrations(o.confdir, rf != nil && !o.watch)
	for _, err := range errs {
		log.Error("load registration", "err", err)
	}
	if rf != nil {
		r, err := rf.registration()
		if err != nil {
			return fmt.Errorf("%w: confit register: %w", daemon.ErrConfig, err)
		}
		if r != nil {
			regs = append(regs, r)
		}
		if len(regs) == 0 {
			return fmt.Errorf("%w: confit register: nothing to register: give -key (etcd) or -service (consul), or [register] tables in %s",
				daemon.ErrConfig, filepath.Join(o.confdir, "conf.d"))
		}
	}
	if len(regs) == 0 {
		cfg.Reload = afterEachReload(ctx, cfg.Reload, func(context.Context) {
			// Nothing to reload: only say when tables appeared, which
			// need a restart. A file that does not decode is the
			// daemon's to report.
			regs, errs := loadRegistrations(o.confdir, false)
			if len(regs)+len(errs) == 0 {
				return
			}
			names := make([]string, 0, len(regs)+len(errs))
			for _, r := range regs {
				names = append(names, r.Name)
			}
			for _, err := range errs {
				names = append(names, err.Error())
			}
			log.Warn("conf.d has [register] tables now, but confit started without any: they run after a restart", "tables", strings.Join(names, "; "))
		})
		return daemon.Run(ctx, cfg)
	}
	runner, err := register.New(regs, register.Options{Backend: cfg.Backend, Logger: log})
	if err != nil {
		return fmt.Errorf("%w: %w", daemon.ErrConfig, err)
	}
	cfg.Reload = afterEachReload(ctx, cfg.Reload, func(ctx context.Context) {
		// Every file must load: a file that does not might hold a
		// [register] table, whose registration would otherwise go.
		regs, errs := loadRegistrations(o.confdir, true)
		if rf != nil {
			if r, err := rf.registration(); err != nil {
				errs = append(errs, err)
			} else if r != nil {
				regs = append(regs, r)
			}
		}
		if len(errs) > 0 {
			log.Error("registrations not reloaded, the ones in use stay", "err", errors.Join(errs...).Error())
		} else if err := runner.Reload(ctx, regs); err != nil && ctx.Err() == nil {
			log.Error("registrations not reloaded, the ones in use stay", "err", err.Error())
		}
	})
	withDaemon := rf == nil || o.watch
	log.Info("register mode", "registrations", runner.Len(), "beside_daemon", withDaemon)

	rctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		wg     sync.WaitGroup
		regErr error
	)
	dctx, stopDaemon := context.WithCancel(ctx)
	defer stopDaemon()
	wg.Go(func() {
		regErr = runner.Run(rctx)
		if regErr != nil {
			log.Error(regErr.Error())
			stopDaemon() // a registration that cannot run is a failed run
		}
	})
	if !withDaemon {
		if o.metricsAddr != "" {
			srv, err := serveRegisterMetrics(o.metricsAddr, runner)
			if err != nil {
				stop()
				wg.Wait()
				return fmt.Errorf("%w: -metrics-addr: %v", daemon.ErrConfig, err)
			}
			defer srv.Close()
		}
		wg.Wait()
		return regErr
	}
	cfg.Reporters = append(cfg.Reporters, runner)
	err = daemon.Run(dctx, cfg)
	stop() // the daemon is done (cancelled or failed): drain and deregister
	wg.Wait()
	return errors.Join(err, regErr)
}

// serveRegisterMetrics serves /metrics and /health of register mode alone.
func serveRegisterMetrics(addr string, runner *register.Runner) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: runner.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, nil
}
