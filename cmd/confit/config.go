package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/resource"
)

// errUsage marks errors in flags, environment or the config file: exit code 2.
var errUsage = errors.New("usage")

// options holds every flag. Field names follow the flag names. The
// backends' settings (-node, -client-cert, -file, -datacenter, ...) are not
// fields: each backend package declares its own (backends.Register), and
// newFlagSet derives a flag from each declaration into settings.
type options struct {
	appID, authType, backend string
	confdir, configFile      string
	interval                 int
	keepStageFile            bool
	logLevel, logFormat      string
	noop, onetime            bool
	noopShowSecrets          bool
	path, prefix             string
	roleID, secretID         string
	secretKeyring            string
	syncOnly                 bool
	table, userID            string
	version, watch           bool
	wait                     string
	cmdTimeout               time.Duration
	timeout                  time.Duration
	cmdEnvClean              bool
	metricsAddr              string
	templateExecutor         string
	ageIdentity              listFlag
	settings                 map[string]*settingFlag // by setting name

	// Exec mode (exec.go).
	exec                               execFlag
	execReloadSignal, execKillSignal   string
	execKillTimeout, execRestartWindow time.Duration
	execRestart                        string
	execRestartLimit                   int
	execForwardHUP, execSubreaper      bool

	// warnings found while parsing, logged once the logger is set up.
	warnings []string
}

// settingFlag is the flag of one backend setting. Values are checked
// against the setting's kind as they are set; set records whether any
// source (command line, environment, config file) gave one.
type settingFlag struct {
	s    backends.Setting
	vals []string
	set  bool
}

func (f *settingFlag) String() string {
	if f == nil {
		return ""
	}
	if f.s.Secret && f.set {
		return "(secret)"
	}
	return strings.Join(f.vals, ",")
}

// Set implements flag.Value: a list setting appends, others replace.
func (f *settingFlag) Set(v string) error {
	if err := f.s.Check(v); err != nil {
		return err
	}
	if f.s.Kind == backends.KindList {
		f.vals = append(f.vals, v)
	} else {
		f.vals = []string{v}
	}
	f.set = true
	return nil
}

// listFlag is a repeatable flag: each -name VALUE appends.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

// Set implements flag.Value.
func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// IsBoolFlag lets a bool setting be given as -name alone.
func (f *settingFlag) IsBoolFlag() bool { return f.s.Kind == backends.KindBool }

// newFlagSet declares every flag on a fresh FlagSet bound to o. Usage text is
// written to w. The FlagSet does not parse the command line itself:
// parseCommandLine does, and describes errors in terms of these flags.
func newFlagSet(o *options, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("confit", flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() { usage(fs) } // a subcommand's flags replace it (registerFlags.declare)
	s := fs.StringVar
	b := fs.BoolVar

	// confd's flags, same names and defaults.
	s(&o.appID, "app-id", "", "Vault app-id (accepted for confd compatibility; no Vault backend yet)")
	s(&o.authType, "auth-type", "", "Vault auth type (accepted for confd compatibility; no Vault backend yet)")
	s(&o.backend, "backend", "etcd", "backend to use: "+backendList())
	s(&o.confdir, "confdir", "/etc/confd", "confd conf directory: resources in CONFDIR/conf.d, templates in CONFDIR/templates")
	s(&o.configFile, "config-file", "/etc/confd/confd.toml", "confd config file (skipped if the default path is missing)")
	fs.IntVar(&o.interval, "interval", 600, "seconds between polls; with -watch, seconds between full resyncs (0 disables)")
	b(&o.keepStageFile, "keep-stage-file", false, "keep staged files that were not moved into place")
	s(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	b(&o.noop, "noop", false, "render and print a diff, never write a destination nor run a command")
	b(&o.noopShowSecrets, "noop-show-secrets", false, "with -noop, print the diff of destinations others may not read (mode without o+r, e.g. 0600) too; without it they get a line counting the changes")
	b(&o.onetime, "onetime", false, "render every resource once and exit (1 if any failed)")
	s(&o.path, "path", "", "Vault auth mount path (accepted for confd compatibility)")
	s(&o.prefix, "prefix", "", "key prefix; replaces the prefix of every resource")
	s(&o.roleID, "role-id", "", "Vault app-role role_id (accepted for confd compatibility)")
	s(&o.secretID, "secret-id", "", "Vault app-role secret_id (accepted for confd compatibility)")
	s(&o.secretKeyring, "secret-keyring", "", "armored OpenPGP secret keyring (unprotected) for crypt-encrypted values: cget, cgets, cgetv, cgetvs, decrypt (mode 0600 or stricter)")
	b(&o.syncOnly, "sync-only", false, "write files but never run check_cmd or reload_cmd")
	s(&o.table, "table", "", "DynamoDB table (not supported)")
	s(&o.userID, "user-id", "", "Vault app-id user_id (accepted for confd compatibility)")
	b(&o.version, "version", false, "print version and exit")
	b(&o.watch, "watch", false, "watch the store and re-render what changed")

	// confit's own.
	s(&o.logFormat, "log-format", "text", "log format: text (confd's layout) or json")
	s(&o.wait, "wait", "", "watch: render after MIN of quiet, at most MAX after the first change (MIN[:MAX], e.g. 100ms:2s)")
	fs.DurationVar(&o.cmdTimeout, "cmd-timeout", 60*time.Second, "default timeout of check_cmd and reload_cmd")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "one-shot and interval mode: deadline of each read of the store, connecting included")
	b(&o.cmdEnvClean, "cmd-env-clean", false, "run check_cmd and reload_cmd with only PATH, HOME, LANG, LC_*, TZ, USER, LOGNAME, SHELL, TMPDIR, TERM and CONFIT_SRC/CONFIT_DEST (not tokens such as CONSUL_HTTP_TOKEN); without it they inherit confit's environment")
	s(&o.metricsAddr, "metrics-addr", "", "serve /metrics, /health and /debug/pprof/ on this address (e.g. 127.0.0.1:9115)")
	fs.Var(&o.ageIdentity, "age-identity", "age identity file (AGE-SECRET-KEY-1... lines) for age-encrypted values; repeatable; mode 0600 or stricter")
	s(&o.templateExecutor, "template-executor", "auto", "auto: confit's template executor where it can, text/template for the rest (same output); text: text/template only")

	// Exec mode (exec.go).
	fs.Var(&o.exec, "exec", "exec mode: render every resource, then run this command as confit's child (sh -c when it has shell syntax; or the words after --), signal or restart it on change (exec_action), stop it with confit")
	s(&o.execReloadSignal, "exec-reload-signal", "SIGHUP", "exec mode: the signal sent to the command's process group when a resource with exec_action = \"signal\" changed")
	s(&o.execKillSignal, "exec-kill-signal", "SIGTERM", "exec mode: the signal that stops the command (on SIGTERM/SIGINT to confit, and before a restart)")
	fs.DurationVar(&o.execKillTimeout, "exec-kill-timeout", 30*time.Second, "exec mode: SIGKILL the command's process group this long after -exec-kill-signal")
	s(&o.execRestart, "exec-restart", "on-failure", "exec mode: when the command exits on its own: on-failure (restart unless it exited 0), always, never (confit exits with its code)")
	fs.IntVar(&o.execRestartLimit, "exec-restart-limit", 5, "exec mode: give up (exit non-zero) when the command died this many times within -exec-restart-window")
	fs.DurationVar(&o.execRestartWindow, "exec-restart-window", time.Minute, "exec mode: the window of -exec-restart-limit")
	b(&o.execForwardHUP, "exec-forward-hup", false, "exec mode: forward SIGHUP to the command instead of reloading confit's conf.d")
	b(&o.execSubreaper, "exec-subreaper", false, "when confit is not PID 1: become the child subreaper (PR_SET_CHILD_SUBREAPER) and reap orphaned processes, as confit does as PID 1 in every mode")

	// The backends' settings, as each backend package declares them.
	o.settings = map[string]*settingFlag{}
	for _, st := range backends.AllSettings() {
		f := &settingFlag{s: st}
		if st.Default != "" {
			f.vals = []string{st.Default}
		}
		o.settings[st.Name] = f
		fs.Var(f, st.Name, st.Usage)
		if st.Default != "" {
			fs.Lookup(st.Name).DefValue = st.Default
		}
	}
	return fs
}

// normKey folds a flag or config-file key for comparison: case, '-' and '_'
// are ignored, so "sync-only", "sync_only" and "SyncOnly" are one key.
func normKey(k string) string { return backends.FoldKey(k) }

// configAliases maps confd.toml keys that are not flag names to flags (the
// backends' settings declare their own aliases).
var configAliases = map[string]string{
	"configdir": "confdir",
}

// envName is the CONFIT_* variable of a flag: -client-ca-keys is CONFIT_CLIENT_CA_KEYS.
func envName(flagName string) string {
	return "CONFIT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseOptions resolves flags, environment and config file with the
// precedence defaults < config file < environment < command line. environ
// lists the environment (os.Environ), for the CONFIT_* variables that name
// no flag: each is a warning in o.warnings. The -help text is written to
// helpOut, and flag.ErrHelp returned. extra declares more flags (those of
// a subcommand) on the same FlagSet, so that they are read from the same
// sources.
func parseOptions(args []string, getenv func(string) string, environ func() []string, helpOut io.Writer, extra ...func(*flag.FlagSet)) (*options, error) {
	o := &options{}
	fs := newFlagSet(o, helpOut)
	for _, declare := range extra {
		declare(fs)
	}
	setOnCLI, err := parseCommandLine(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fs.Usage()
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}

	// The config file path itself: flag > env > default.
	cfgPath, explicit := o.configFile, setOnCLI["config-file"]
	if !explicit {
		if v := getenv(envName("config-file")); v != "" {
			cfgPath, explicit = v, true
		}
	}
	fileVals, err := readConfigFile(cfgPath, explicit, fs, o.settings)
	if err != nil {
		return nil, err
	}

	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if setOnCLI[f.Name] || f.Name == "config-file" {
			return
		}
		if v, src := o.envValue(f.Name, getenv); src != "" {
			if err := setValue(fs, f.Name, v, true); err != nil {
				errs = append(errs, fmt.Errorf("%w: %w", errUsage, badValue(f, fromEnv, src, v, err)))
			}
			return
		}
		if vals, ok := fileVals[f.Name]; ok {
			for _, v := range vals {
				if err := fs.Set(f.Name, v); err != nil {
					errs = append(errs, fmt.Errorf("%w: %w", errUsage, badValue(f, fromConfig, fmt.Sprintf("%s: key %q", cfgPath, f.Name), v, err)))
				}
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	o.warnings = unknownEnv(fs, environ())
	return o, o.validate()
}

// otherEnv are the CONFIT_* variables that are not flags.
var otherEnv = []string{
	"CONFIT_CPUPROFILE", "CONFIT_MEMPROFILE", "CONFIT_TRACE", // profile.go
	"CONFIT_CONSUL_EMPTY_GRACE",            // backends/consul
	"CONFIT_ETCD_BIN", "CONFIT_CONSUL_BIN", // internal/testserver: the servers tests start
}

// unknownEnv returns a warning for each CONFIT_* variable of environ that
// names no flag (a typo such as CONFIT_BACKEN would otherwise be ignored
// without a word), with the nearest variable that does.
func unknownEnv(fs *flag.FlagSet, environ []string) []string {
	known := slices.Clone(otherEnv)
	fs.VisitAll(func(f *flag.Flag) { known = append(known, envName(f.Name)) })
	var warns []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "CONFIT_") || slices.Contains(known, name) {
			continue
		}
		w := "environment variable " + name + " names no flag and is ignored"
		if near := nearest(name, known); near != "" {
			w += " (did you mean " + near + "?)"
		}
		warns = append(warns, w)
	}
	slices.Sort(warns)
	return warns
}

// envValue returns the environment value for a flag and the variable's
// name: CONFIT_<FLAG>, then the other variables a backend setting declares
// (confd's CONFD_CLIENT_CERT and the like).
func (o *options) envValue(name string, getenv func(string) string) (string, string) {
	if v := getenv(envName(name)); v != "" {
		return v, envName(name)
	}
	if sf, ok := o.settings[name]; ok {
		for _, e := range sf.s.Env {
			if v := getenv(e); v != "" {
				return v, e
			}
		}
	}
	return "", ""
}

// setValue sets a flag; list flags take comma-separated values from the environment.
func setValue(fs *flag.FlagSet, name, v string, fromEnv bool) error {
	_, isList := fs.Lookup(name).Value.(*listFlag)
	if sf, ok := fs.Lookup(name).Value.(*settingFlag); ok && sf.s.Kind == backends.KindList && fromEnv || isList && fromEnv {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				if err := fs.Set(name, part); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return fs.Set(name, v)
}

// readConfigFile decodes a confd.toml into flag name -> values. A missing
// file is an error only when its path was given explicitly. Unknown keys are
// errors that name the file and the key.
func readConfigFile(path string, explicit bool, fs *flag.FlagSet, settings map[string]*settingFlag) (map[string][]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !explicit {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: config file: %v", errUsage, err)
	}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%w: %s:%d: %s", errUsage, path, pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("%w: %s: %v", errUsage, path, err)
	}
	byNorm := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { byNorm[normKey(f.Name)] = f.Name })
	for alias, name := range configAliases {
		byNorm[normKey(alias)] = name
	}
	for name, sf := range settings {
		for _, a := range sf.s.Aliases {
			byNorm[normKey(a)] = name
		}
	}
	out := map[string][]string{}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name, ok := byNorm[normKey(k)]
		if !ok || name == "config-file" || name == "version" {
			return nil, fmt.Errorf("%w: %s: unknown key %q", errUsage, path, k)
		}
		vals, err := tomlStrings(raw[k])
		if err != nil {
			return nil, fmt.Errorf("%w: %s: key %q: %v", errUsage, path, k, err)
		}
		out[name] = vals
	}
	return out, nil
}

// tomlStrings turns a decoded TOML value into flag strings.
func tomlStrings(v any) ([]string, error) {
	switch t := v.(type) {
	case string:
		return []string{t}, nil
	case bool:
		return []string{strconv.FormatBool(t)}, nil
	case int64:
		return []string{strconv.FormatInt(t, 10)}, nil
	case float64:
		return []string{strconv.FormatFloat(t, 'f', -1, 64)}, nil
	case []any:
		var out []string
		for _, e := range t {
			s, err := tomlStrings(e)
			if err != nil {
				return nil, err
			}
			out = append(out, s...)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("unsupported value of type %T", v)
	}
}

// validate checks values that flag parsing cannot.
func (o *options) validate() error {
	if _, ok := parseLevel(o.logLevel); !ok {
		return fmt.Errorf("%w: -log-level %q: want debug, info, warn or error", errUsage, o.logLevel)
	}
	switch o.logFormat {
	case "text", "json":
	default:
		return fmt.Errorf("%w: -log-format %q: want text or json", errUsage, o.logFormat)
	}
	if o.interval < 0 {
		return fmt.Errorf("%w: -interval %d: must not be negative", errUsage, o.interval)
	}
	switch o.templateExecutor {
	case "auto", "text":
	default:
		return fmt.Errorf("%w: -template-executor %q: want auto or text", errUsage, o.templateExecutor)
	}
	if o.onetime && o.watch {
		return fmt.Errorf("%w: -onetime and -watch exclude each other: -onetime renders once and exits, -watch stays up and follows changes", errUsage)
	}
	if _, err := resource.ParseWait(o.wait); err != nil {
		return fmt.Errorf("%w: -wait %q: %s", errUsage, o.wait, waitHint(o.wait, err))
	}
	if o.timeout <= 0 {
		return fmt.Errorf("%w: -timeout %s: must be positive", errUsage, o.timeout)
	}
	if o.cmdTimeout <= 0 {
		return fmt.Errorf("%w: -cmd-timeout %s: must be positive", errUsage, o.cmdTimeout)
	}
	return o.validateExec()
}

// waitHint says what is wrong with a -wait value: for a number without a
// unit, how to write it ("5:10" gets "durations take a unit: 5s:10s").
func waitHint(wait string, err error) string {
	minS, maxS, hasMax := strings.Cut(wait, ":")
	_, e1 := strconv.ParseFloat(strings.TrimSpace(minS), 64)
	_, e2 := strconv.ParseFloat(strings.TrimSpace(maxS), 64)
	switch {
	case e1 == nil && !hasMax:
		return "durations take a unit: " + strings.TrimSpace(minS) + "s"
	case e1 == nil && e2 == nil:
		return "durations take a unit: " + strings.TrimSpace(minS) + "s:" + strings.TrimSpace(maxS) + "s"
	case strings.Contains(err.Error(), "min <= max"):
		return "want MIN <= MAX"
	}
	return "want MIN[:MAX] durations, e.g. 100ms:2s"
}

// usage prints the -help text.
func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprintf(w, `Usage: confit [flags]
       confit COMMAND [flags]

confit keeps configuration files in step with a key-value store. It reads
template resources from CONFDIR/conf.d/*.toml (confd's format), renders each
template from the store's keys and, when the output differs from the
destination, checks it with check_cmd, moves it into place atomically and runs
reload_cmd.

Modes: -onetime renders once and exits (0 all good, 1 a resource failed,
2 bad flags or config); -watch follows the store's changes; otherwise confit
polls every -interval seconds.

Every flag can also be set in the config file (-config-file, confd.toml keys
such as backend, nodes, confdir, log-level) or in the environment as
CONFIT_<FLAG> (e.g. CONFIT_BACKEND, CONFIT_NODE=a,b). Precedence, lowest
first: defaults < config file < environment < command line.
CONFD_CLIENT_CAKEYS, CONFD_CLIENT_CERT and CONFD_CLIENT_KEY are read too.

Commands (each has its -help):
  register   register mode: announce this instance in etcd or Consul while
             its health check passes, withdraw it when the check fails or
             confit stops (README: Register mode)
  encrypt    encrypt standard input as a value to store: confit encrypt -key
             KEY -recipient age1... < plaintext (README: Encrypted values)
  secret     keygen: print a new age identity; encrypt: as confit encrypt

Flags:
`)
	fs.PrintDefaults()
}
