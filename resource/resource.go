package resource

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/internal/signame"
	"github.com/confit-dev/confit/template"
)

// The values of exec_action (Resource.ExecAction).
const (
	ExecSignal  = "signal"
	ExecRestart = "restart"
	ExecNone    = "none"
)

// parseExecAction checks exec_action and exec_signal ("" is the default,
// signal; exec_signal only goes with it).
func parseExecAction(action, sig string) (string, syscall.Signal, error) {
	switch action {
	case "":
		action = ExecSignal
	case ExecSignal, ExecRestart, ExecNone:
	default:
		return "", 0, fmt.Errorf("unknown exec_action %q: want signal, restart or none", action)
	}
	if sig == "" {
		return action, 0, nil
	}
	if action != ExecSignal {
		return "", 0, fmt.Errorf("exec_signal %q goes with exec_action = \"signal\", not %q", sig, action)
	}
	s, err := signame.Parse(sig)
	if err != nil {
		return "", 0, err
	}
	return action, s, nil
}

// DefaultCmdTimeout is the timeout of check_cmd and reload_cmd when neither
// the resource nor Options.CmdTimeout sets one.
const DefaultCmdTimeout = 60 * time.Second

// Options are the settings shared by every resource of one confdir.
type Options struct {
	// ConfDir holds conf.d/ and templates/.
	ConfDir string
	// Prefix, when non-empty, replaces every resource's prefix (as confd's
	// global -prefix does; the abtreece fork concatenates instead).
	Prefix string
	// Noop renders and compares but never writes and never runs a command;
	// differences are written to Diff.
	Noop bool
	// SyncOnly writes files but never runs check_cmd or reload_cmd.
	SyncOnly bool
	// KeepStageFile keeps the stage file when it is not committed (check
	// failure). After a commit the stage file has become the destination.
	KeepStageFile bool
	// CmdTimeout is the default timeout of check_cmd and reload_cmd;
	// zero means DefaultCmdTimeout.
	CmdTimeout time.Duration
	// CmdEnvClean gives check_cmd and reload_cmd a minimal environment
	// (PATH, HOME, LANG, LC_*, TZ, USER, LOGNAME, SHELL, TMPDIR, TERM, plus
	// CONFIT_SRC and CONFIT_DEST) instead of confit's whole environment,
	// which may hold tokens such as CONSUL_HTTP_TOKEN.
	CmdEnvClean bool
	// Logger receives the pipeline's logs; nil discards them.
	Logger *slog.Logger
	// Diff receives a unified diff per changed resource in Noop mode;
	// nil discards it. For a destination others may not read (its mode,
	// or the mode it would get, lacks o+r: it may hold secrets) Diff
	// gets one line saying how many lines change, unless
	// NoopShowSecrets.
	Diff io.Writer
	// NoopShowSecrets makes Noop print the diff of every destination in
	// full, also of those others may not read.
	NoopShowSecrets bool
	// TemplateOptions are passed to template.Parse.
	TemplateOptions template.Options
	// DeferParse reads each template when its resource loads but parses
	// it at each render and does not keep the parsed form, so a run that
	// renders every resource once (one-shot) holds only the templates
	// being rendered rather than all of them. A syntax error is then
	// reported by the render. A template that may call service or
	// services (template.MayReadServices) is parsed at load all the same:
	// the service discovery it reads must be known before the store is
	// read.
	DeferParse bool
}

// Reads is what one render looked at, in absolute store keys.
type Reads struct {
	// Keys are the exact keys read (get, getv, exists), sorted.
	Keys []string
	// Prefixes are the subtrees read (gets, getvs, ls, lsdir), sorted.
	Prefixes []string
}

// Resource is one template resource: where its data comes from, how it is
// rendered and where it goes. Its fields are set by LoadDir and must not be
// changed afterwards. Methods are safe for concurrent use; Commit, Stage,
// Install and Restore of one Resource run one at a time.
type Resource struct {
	// Name is the resource file's path relative to <confdir>/conf.d, used
	// in logs.
	Name string
	// File is the absolute path of the resource file.
	File string
	// Src is the template's path (<confdir>/templates/<src>).
	Src string
	// Dest is the destination file.
	Dest string
	// Prefix is the effective prefix: clean and absolute.
	Prefix string
	// Keys are the absolute prefixes to fetch and watch:
	// path.Join(Prefix, key) for each key of the file.
	Keys []string
	// Backend is non-nil when the file has a [backend] table.
	Backend *backends.Spec
	// Mode is the destination's mode; ModeSet reports whether the file set
	// it. When it did not, an existing destination keeps its mode and a new
	// one gets 0644.
	Mode    os.FileMode
	ModeSet bool
	// UID and GID are the destination's owner, -1 when not set: an
	// existing destination then keeps its owner, a new one gets the
	// process's effective ids.
	UID, GID int
	// CheckCmd and ReloadCmd are the commands as written in the file
	// (templates); ReloadCmd is what the daemon compares to coalesce
	// reloads.
	CheckCmd, ReloadCmd string
	// CheckCmdTimeout and ReloadCmdTimeout bound each command's run.
	CheckCmdTimeout, ReloadCmdTimeout time.Duration
	// Wait is the quiet period the daemon applies before rendering.
	Wait Wait
	// AutoRollback is the file's "rollback" key: it tells the daemon to
	// restore the previous file (Restore) when a reload fails. It defaults
	// to true.
	AutoRollback bool
	// ExecAction is what exec mode (-exec) does to its child after this
	// file changed (written, checked and reloaded): ExecSignal (send
	// ExecSignal, or -exec-reload-signal when it is 0), ExecRestart or
	// ExecNone. The file's "exec_action"; default ExecSignal.
	ExecAction string
	ExecSignal syscall.Signal

	tmpl      *template.Template // nil while deferred (Options.DeferParse)
	tmplText  string             // the template's text while deferred
	shared    *sharedTemplate    // the parse shared with resources using the same template
	checkTmpl *cmdTemplate
	reloadTpl *cmdTemplate
	opts      Options
	log       *slog.Logger

	mu   sync.Mutex // serialises Commit, Stage, Install and Restore
	prev *previous  // what the last commit replaced

	decrypts atomic.Bool // the template decrypts values (secret.go)
}

// ErrNoConfDir is returned by LoadDir when <confdir>/conf.d cannot be read.
var ErrNoConfDir = errors.New("cannot read conf.d")

// LoadDir loads every *.toml file under <confdir>/conf.d, recursively, in
// lexical order. A file that fails to load yields one error (a *LoadError
// naming the file, and the line and key when known) and the others still
// load. A missing conf.d directory is an error wrapping ErrNoConfDir.
func LoadDir(opts Options) ([]*Resource, []error) {
	dir := filepath.Join(opts.ConfDir, "conf.d")
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".toml") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, []error{fmt.Errorf("%w: %w", ErrNoConfDir, err)}
	}
	slices.Sort(files)
	// Parse in parallel (templates dominate the cost of a load), each
	// distinct template once; keep the results in file order.
	cache := &templateCache{m: map[templateKey]*sharedTemplate{}}
	loaded := make([]*Resource, len(files))
	failed := make([]error, len(files))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, f := range files {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			loaded[i], failed[i] = load(f, opts, cache)
		}()
	}
	wg.Wait()
	var (
		rs   []*Resource
		errs []error
	)
	for i := range files {
		if errors.Is(failed[i], ErrRegisterOnly) {
			continue // the register package's
		}
		if failed[i] != nil {
			errs = append(errs, failed[i])
			continue
		}
		rs = append(rs, loaded[i])
	}
	return rs, errs
}

// load reads one resource file, resolves its paths, prefix, owner and
// commands, and parses its template (shared with other resources through
// cache; nil: not shared). Errors name the file (and the line and key when
// known); template parse errors also name the template file.
func load(file string, opts Options, cache *templateCache) (*Resource, error) {
	data, err := readFile(file)
	if err != nil {
		return nil, &LoadError{File: file, Err: err}
	}
	c, err := DecodeConfig(file, data)
	if err != nil {
		return nil, err
	}
	if !c.HasTemplate() {
		return nil, &LoadError{File: file, Err: ErrRegisterOnly}
	}
	r, err := newResource(file, c, opts, cache)
	if err != nil {
		return nil, err
	}
	for _, w := range c.Warnings {
		r.log.Warn(w)
	}
	return r, nil
}

// newResource builds a Resource from a decoded file.
func newResource(file string, c *Config, opts Options, cache *templateCache) (*Resource, error) {
	fail := func(key string, err error) error {
		return &LoadError{File: file, Key: key, Err: err}
	}
	t := c.Template
	if t.Src == "" {
		return nil, fail("template.src", errors.New("empty src template"))
	}
	if t.Dest == "" {
		return nil, fail("template.dest", errors.New("empty dest"))
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, fail("", err)
	}
	if opts.CmdTimeout <= 0 {
		opts.CmdTimeout = DefaultCmdTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	spec := c.spec
	if spec == nil && c.Backend != nil { // a Config not from DecodeConfig
		var key string
		var err error
		if spec, key, err = c.Backend.Spec(); err != nil {
			return nil, fail(key, err)
		}
	}
	r := &Resource{
		Name:     resourceName(opts.ConfDir, abs),
		File:     abs,
		Src:      filepath.Join(opts.ConfDir, "templates", t.Src),
		Dest:     t.Dest,
		Backend:  spec,
		UID:      -1,
		GID:      -1,
		CheckCmd: t.CheckCmd, ReloadCmd: t.ReloadCmd,
		AutoRollback: t.Rollback == nil || *t.Rollback,
		ExecAction:   ExecSignal,
		opts:         opts,
	}
	r.log = log.With("resource", r.Name, "dest", r.Dest)

	r.Prefix = opts.Prefix
	if r.Prefix == "" {
		r.Prefix = t.Prefix
	}
	r.Prefix = backends.CleanKey(r.Prefix)
	for _, k := range t.Keys {
		r.Keys = append(r.Keys, path.Join(r.Prefix, k))
	}

	if t.Mode != "" {
		if r.Mode, err = parseMode(t.Mode); err != nil {
			return nil, fail("template.mode", err)
		}
		r.ModeSet = true
	}
	switch {
	case t.UID != nil:
		if *t.UID < 0 {
			return nil, fail("template.uid", fmt.Errorf("invalid uid %d", *t.UID))
		}
		r.UID = *t.UID
	case t.Owner != "":
		if r.UID, err = lookupUser(t.Owner); err != nil {
			return nil, fail("template.owner", err)
		}
	}
	switch {
	case t.GID != nil:
		if *t.GID < 0 {
			return nil, fail("template.gid", fmt.Errorf("invalid gid %d", *t.GID))
		}
		r.GID = *t.GID
	case t.Group != "":
		if r.GID, err = lookupGroup(t.Group); err != nil {
			return nil, fail("template.group", err)
		}
	}
	if r.CheckCmdTimeout, err = parseTimeout(t.CheckCmdTimeout, opts.CmdTimeout); err != nil {
		return nil, fail("template.check_cmd_timeout", err)
	}
	if r.ReloadCmdTimeout, err = parseTimeout(t.ReloadCmdTimeout, opts.CmdTimeout); err != nil {
		return nil, fail("template.reload_cmd_timeout", err)
	}
	if r.Wait, err = ParseWait(t.Wait); err != nil {
		return nil, fail("template.wait", err)
	}
	if r.ExecAction, r.ExecSignal, err = parseExecAction(t.ExecAction, t.ExecSignal); err != nil {
		key := "template.exec_action"
		if t.ExecSignal != "" && (t.ExecAction == "" || t.ExecAction == ExecSignal) {
			key = "template.exec_signal"
		}
		return nil, fail(key, err)
	}
	if r.checkTmpl, err = parseCmdTemplate("check_cmd", t.CheckCmd); err != nil {
		return nil, fail("template.check_cmd", err)
	}
	if r.reloadTpl, err = parseCmdTemplate("reload_cmd", t.ReloadCmd); err != nil {
		return nil, fail("template.reload_cmd", err)
	}

	data, err := readFile(r.Src)
	if err != nil {
		return nil, fail("", fmt.Errorf("template: %w", err))
	}
	text := string(data)
	r.shared = cache.entry(r.Src, text)
	if opts.DeferParse && !template.MayReadServices(text, opts.TemplateOptions) {
		r.tmplText = text
		return r, nil
	}
	if r.tmpl, err = r.shared.parse(r, text); err != nil {
		return nil, fail("", err)
	}
	// Service discovery the template reads (service "web") is fetched and
	// watched like a key; its keys stay absolute.
	r.Keys = append(r.Keys, r.tmpl.VirtualKeys()...)
	return r, nil
}

// parseTemplate parses the template's text. The error names the template
// file and the line.
func (r *Resource) parseTemplate(text string) (*template.Template, error) {
	name := filepath.Base(r.Src)
	t, err := template.Parse(name, text, r.opts.TemplateOptions)
	if err != nil {
		// "parse templates/web.tmpl:4: ...", not text/template's
		// "template: web.tmpl:4: ..." after the path.
		return nil, fmt.Errorf("parse %w", template.WithPath(err, name, r.Src))
	}
	return t, nil
}

// resourceName is file relative to <confdir>/conf.d, or file itself when it
// lies elsewhere.
func resourceName(confDir, file string) string {
	base, err := filepath.Abs(filepath.Join(confDir, "conf.d"))
	if err == nil {
		if rel, err := filepath.Rel(base, file); err == nil && filepath.IsLocal(rel) {
			return filepath.ToSlash(rel)
		}
	}
	return file
}

// RenderSorted renders the template from kvs (absolute keys; keys outside
// r.Keys are ignored) and returns the output and what the template read,
// in absolute keys. It touches no file and does not keep or modify kvs.
// keys are kvs's keys in sorted order, or nil: a caller that holds them
// sorted (the daemon's key index) spares the render a sort, ~3 ms with
// 20,000 keys.
func (r *Resource) RenderSorted(kvs map[string]string, keys []string) ([]byte, Reads, error) {
	if keys == nil || len(keys) != len(kvs) {
		keys = make([]string, 0, len(kvs))
		for k := range kvs {
			if backends.UnderAny(k, r.Keys) {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
	}
	rel, relKeys := kvs, keys
	if !r.keysAsIs(kvs, keys) {
		rel = make(map[string]string, len(kvs))
		relKeys = make([]string, 0, len(kvs))
		for _, k := range keys {
			if backends.UnderAny(k, r.Keys) {
				rk := r.relKey(k)
				rel[rk] = kvs[k]
				relKeys = append(relKeys, rk) // sorted unless ".." or a collision
			}
		}
	}
	tmpl, err := r.template()
	if err != nil {
		return nil, Reads{}, fmt.Errorf("resource %s: %w", r.Name, err)
	}
	out, reads, err := tmpl.Execute(r.secretStore(tmpl, template.NewStoreSorted(rel, relKeys))) // secret.go
	abs := Reads{Keys: r.absKeys(reads.Keys, false), Prefixes: r.absKeys(reads.Prefixes, true)}
	if err != nil {
		err = r.explainMissing(template.WithPath(err, tmpl.Name(), r.Src))
		return nil, abs, fmt.Errorf("resource %s: render %w", r.Name, err)
	}
	return out, abs, nil
}

// explainMissing adds to the message of err, when it ends with a
// template.NotExistError, the store key (when there is a prefix) and
// whether the key lies outside the resource's keys, which is then why the
// store's key is not seen: "key does not exist: /db/host (store key
// /app/db/host, not under this resource's keys [/app/web])".
func (r *Resource) explainMissing(err error) error {
	var ne *template.NotExistError
	msg := err.Error()
	if !errors.As(err, &ne) || !strings.HasSuffix(msg, ne.Error()) {
		return err
	}
	key := path.Join(r.Prefix, backends.CleanKey(ne.Key))
	var notes []string
	if r.Prefix != "/" {
		notes = append(notes, "store key "+key)
	}
	if !backends.UnderAny(key, r.Keys) {
		var keys []string
		for _, k := range r.Keys {
			if !backends.IsVirtual(k) {
				keys = append(keys, k)
			}
		}
		notes = append(notes, fmt.Sprintf("not under this resource's keys [%s]", strings.Join(keys, " ")))
	}
	if len(notes) == 0 {
		return err
	}
	return &noteError{msg: msg + " (" + strings.Join(notes, ", ") + ")", err: err}
}

// noteError is err with more said in its message.
type noteError struct {
	msg string
	err error
}

func (e *noteError) Error() string { return e.msg }
func (e *noteError) Unwrap() error { return e.err }

// template returns the parsed template. A deferred one is parsed now: a
// template only this resource uses is parsed at each render and not kept;
// one that others use too is parsed once for all of them and kept.
func (r *Resource) template() (*template.Template, error) {
	switch {
	case r.tmpl != nil:
		return r.tmpl, nil
	case r.shared != nil && r.shared.users > 1:
		return r.shared.parse(r, r.tmplText)
	}
	return r.parseTemplate(r.tmplText)
}

// keysAsIs reports whether kvs, whose keys are keys, is the template's key
// space as it is: every key is one the resource reads, and relKey leaves it
// alone (the prefix is "/"). The daemon passes just the keys a resource
// reads, so with no prefix the render needs no copy of them.
func (r *Resource) keysAsIs(kvs map[string]string, keys []string) bool {
	if len(keys) != len(kvs) {
		return false
	}
	for _, k := range keys {
		if !backends.UnderAny(k, r.Keys) || r.relKey(k) != k {
			return false
		}
	}
	return true
}

// relKey maps an absolute store key to the template's key space, as confd
// does: path.Join("/", strings.TrimPrefix(key, prefix)), applied only when
// key lies under the prefix (a key reached through ".." stays absolute) and
// is not a service-discovery key.
func (r *Resource) relKey(k string) string {
	if !backends.Under(k, r.Prefix) || backends.IsVirtual(k) {
		return k
	}
	if r.Prefix == "/" {
		return backends.CleanKey(k)
	}
	return backends.CleanKey(k[len(r.Prefix):])
}

// absKeys maps template keys back to absolute store keys, sorted, unique:
// the inverse of relKey. A template key K comes from prefix+K when that is
// under r.Keys, or from the absolute key K itself when K is under r.Keys but
// not under the prefix (a key reached through ".."); when both exist they
// collide in the template's key space and both are returned. A key read that
// matches neither (a missing key) maps to prefix+K. A subtree read (prefixes
// true) returns prefix+K and also K when K lies outside the prefix and
// contains or is inside a key of r.Keys there. Service-discovery keys are
// absolute already.
func (r *Resource) absKeys(keys []string, prefixes bool) []string {
	if len(keys) == 0 {
		return nil
	}
	if r.Prefix == "/" {
		return keys // template.Reads are clean, absolute, sorted, unique
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if backends.IsVirtual(k) {
			out = append(out, k)
			continue
		}
		joined := path.Join(r.Prefix, k)
		outside := !backends.Under(k, r.Prefix) && r.outsideKey(k, prefixes)
		if prefixes || !outside || backends.UnderAny(joined, r.Keys) {
			out = append(out, joined)
		}
		if outside {
			out = append(out, k)
		}
	}
	if !slices.IsSorted(out) {
		slices.Sort(out)
	}
	return slices.Compact(out)
}

// outsideKey reports whether the clean template key k stands for itself: it
// is under a key of r.Keys that lies outside the prefix, or, for a subtree
// read (prefixes true), such a key is under k.
func (r *Resource) outsideKey(k string, prefixes bool) bool {
	for _, rk := range r.Keys {
		if backends.Under(rk, r.Prefix) {
			continue
		}
		if backends.Under(k, rk) || prefixes && backends.Under(rk, k) {
			return true
		}
	}
	return false
}
