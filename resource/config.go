package resource

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/internal/tomlline"
)

// LoadError is an error in one resource file. File is the path as it was
// opened; Line (1-based) and Key (dotted, "template.mode") are set when they
// are known.
type LoadError struct {
	File string
	Line int
	Key  string
	Err  error
}

// Error formats the error as "file:line: key: message", leaving out what is
// not known.
func (e *LoadError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		fmt.Fprintf(&b, "%s: ", e.Key)
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the underlying error.
func (e *LoadError) Unwrap() error { return e.Err }

// Wait is the quiet period the daemon waits for after a change before it
// renders: at least Min after the last change, at most Max after the first.
// The zero Wait means "no wait".
type Wait struct {
	Min, Max time.Duration
}

// Config is the decoded content of one resource file, before paths, prefix
// and the template are resolved. Field names follow the TOML keys.
type Config struct {
	Template TemplateConfig `toml:"template"`
	// Backend is nil when the file has no [backend] table.
	Backend BackendConfig `toml:"backend"`
	// Register is the [register] table as decoded, for the register
	// package (nil when the file has none). A file with [register] and no
	// [template] is no template resource: Load returns ErrRegisterOnly.
	Register map[string]any `toml:"register"`
	// Warnings are about keys confit read but the file should spell
	// otherwise ("file:line: ..."); the loader logs them.
	Warnings []string `toml:"-"`

	spec        *backends.Spec // Backend, checked by DecodeConfig
	hasTemplate bool           // the file has a [template] table
}

// TemplateConfig is the [template] table.
type TemplateConfig struct {
	Src              string   `toml:"src"`
	Dest             string   `toml:"dest"`
	Keys             []string `toml:"keys"`
	Prefix           string   `toml:"prefix"`
	UID              *int     `toml:"uid"`
	GID              *int     `toml:"gid"`
	Owner            string   `toml:"owner"`
	Group            string   `toml:"group"`
	Mode             string   `toml:"mode"`
	CheckCmd         string   `toml:"check_cmd"`
	ReloadCmd        string   `toml:"reload_cmd"`
	CheckCmdTimeout  string   `toml:"check_cmd_timeout"`
	ReloadCmdTimeout string   `toml:"reload_cmd_timeout"`
	Wait             string   `toml:"wait"`
	Rollback         *bool    `toml:"rollback"`
	// ExecAction and ExecSignal say what exec mode does to its child when
	// this file changes (see Resource.ExecAction).
	ExecAction string `toml:"exec_action"`
	ExecSignal string `toml:"exec_signal"`
}

// BackendConfig is the optional [backend] table as decoded: backend = NAME
// and that backend's settings, each spelt as its flag with '_' for '-'
// (nodes = [...], client_cert = "...", consul_stale = true). Which settings
// a backend has is its own declaration (backends.Register); Spec checks the
// table against it.
type BackendConfig map[string]any

// Spec converts the table to the backend spec it names, checking each key
// against the settings that backend declares (every backend's, when the
// table names none) and each value's type. On error, key names the
// offending key ("backend.nodez").
func (b BackendConfig) Spec() (spec *backends.Spec, key string, err error) {
	if b == nil {
		return nil, "", nil
	}
	name, named := b["backend"].(string)
	if _, given := b["backend"]; given && (!named || name == "") {
		return nil, "backend.backend", errors.New("want the name of a backend")
	}
	decl := backends.AllSettings()
	if named {
		if err := backends.Check(name); err != nil {
			return nil, "backend.backend", err
		}
		decl = backends.SettingsOf(name)
	}
	spec = &backends.Spec{Backend: name, Settings: backends.Settings{}}
	keys := make([]string, 0, len(b))
	for k := range b {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == "backend" {
			continue
		}
		i := slices.IndexFunc(decl, func(s backends.Setting) bool { return s.Matches(k) })
		if i < 0 {
			return nil, "backend." + k, unknownSetting(k, name, decl)
		}
		vals, err := decl[i].FromTOML(b[k])
		if err != nil {
			return nil, "backend." + k, err
		}
		spec.Settings[decl[i].Name] = vals
	}
	if !named {
		return nil, "backend", errors.New(`missing backend = "NAME" (known: ` + strings.Join(backends.Names(), ", ") + ")")
	}
	if _, err := backends.Decode(*spec); err != nil {
		return nil, "backend", err
	}
	return spec, "", nil
}

// errUnknownKey marks unknownSetting's errors, which name the key
// themselves.
var errUnknownKey = errors.New("unknown key")

// unknownSetting is the error for a [backend] key no setting matches.
func unknownSetting(key, backend string, decl []backends.Setting) error {
	known := make([]string, len(decl))
	for j, s := range decl {
		known[j] = s.TableKey()
	}
	msg := fmt.Sprintf("%q", "backend."+key)
	if backend != "" {
		msg += fmt.Sprintf(" (backend %q has: %s)", backend, strings.Join(known, ", "))
	}
	return fmt.Errorf("%w %s", errUnknownKey, msg)
}

// knownKeys are the keys a resource file may contain, exactly spelt.
var knownKeys = map[string]bool{"template": true, "backend": true, "register": true}

func init() {
	for _, k := range []string{"src", "dest", "keys", "prefix", "uid", "gid", "owner", "group", "mode",
		"check_cmd", "reload_cmd", "check_cmd_timeout", "reload_cmd_timeout", "wait", "rollback", "exec_action", "exec_signal"} {
		knownKeys["template."+k] = true
	}
}

// decodeErrRE picks the line and key out of the errors BurntSushi/toml
// returns as plain strings while unifying values with the struct. It
// serves only errors, so it is compiled on first use.
var decodeErrRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key "([^"]*)"\): (.*)$`)
})

// DecodeConfig decodes the resource file content data. name is used in
// errors, which are *LoadError. Unknown keys and values of the wrong type
// are errors; nothing is resolved against the file system.
//
// A key spelt in another case ("Dest", "Check_cmd") is read as its lower
// case spelling, as confd (BurntSushi/toml's case-insensitive field match)
// reads it, with a warning in Config.Warnings naming the file, the line, the
// key and its lower-case spelling. A key given in two spellings is an error.
func DecodeConfig(name string, data []byte) (*Config, error) {
	var c Config
	md, err := toml.Decode(string(data), &c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &LoadError{File: name, Line: pe.Position.Line, Key: pe.LastKey, Err: errors.New(pe.Message)}
		}
		if m := decodeErrRE().FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			return nil, &LoadError{File: name, Line: line, Key: m[2], Err: errors.New(m[3])}
		}
		return nil, &LoadError{File: name, Err: errors.New(strings.TrimPrefix(err.Error(), "toml: "))}
	}
	// Undecoded catches keys matching no field; the loop over Keys catches
	// keys BurntSushi/toml matched case-insensitively ("Dest").
	bad := map[string]bool{}
	for _, k := range md.Undecoded() {
		if !strings.EqualFold(k[0], "register") { // the register package checks its own table
			bad[k.String()] = true
		}
	}
	spelt := map[string]string{} // lower-case key -> the spelling first seen
	for _, k := range md.Keys() {
		key := k.String()
		if bad[key] {
			continue
		}
		lower := strings.ToLower(key)
		if strings.HasPrefix(lower, "backend.") || strings.HasPrefix(lower, "register.") {
			continue // checked by BackendConfig.Spec, and by the register package
		}
		if !knownKeys[lower] {
			bad[key] = true
			continue
		}
		if other, dup := spelt[lower]; dup && !isTable(lower) {
			return nil, &LoadError{File: name, Line: tomlline.KeyLine(data, key),
				Err: fmt.Errorf("key %q is also set as %q: keep one (keys are lower case)", key, other)}
		}
		spelt[lower] = key
		if key != lower {
			line := ""
			if n := tomlline.KeyLine(data, key); n > 0 {
				line = fmt.Sprintf(":%d", n)
			}
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s%s: key %q read as %q, as confd reads it; write it in lower case", name, line, key, lower))
		}
	}
	if len(bad) > 0 {
		return nil, unknownKeyError(name, data, bad)
	}
	c.hasTemplate = spelt["template"] != "" || md.IsDefined("template")
	if !c.hasTemplate && !md.IsDefined("register") {
		return nil, &LoadError{File: name, Err: errors.New("missing [template] table")}
	}
	spec, key, err := c.Backend.Spec()
	if err != nil {
		le := &LoadError{File: name, Line: tomlline.KeyLine(data, key), Key: key, Err: err}
		if errors.Is(err, errUnknownKey) {
			le.Key = "" // the message names it
		}
		return nil, le
	}
	c.spec = spec
	return &c, nil
}

// isTable reports whether the known key k names a table.
func isTable(k string) bool { return k == "template" || k == "backend" || k == "register" }

// unknownKeyError reports the first unknown key (in file order, as far as
// it can tell), with its line.
func unknownKeyError(name string, data []byte, bad map[string]bool) error {
	keys := make([]string, 0, len(bad))
	for k := range bad {
		// Report a table rather than each of its keys.
		if i := strings.LastIndexByte(k, '.'); i < 0 || !bad[k[:i]] {
			keys = append(keys, k)
		}
	}
	type found struct {
		key  string
		line int
	}
	var all []found
	for _, k := range keys {
		all = append(all, found{k, tomlline.KeyLine(data, k)})
	}
	slices.SortFunc(all, func(a, b found) int {
		if a.line != b.line {
			// Unknown lines (0) sort last.
			if a.line == 0 {
				return 1
			}
			if b.line == 0 {
				return -1
			}
			return a.line - b.line
		}
		return strings.Compare(a.key, b.key)
	})
	first := all[0]
	msg := fmt.Sprintf("unknown key %q", first.key)
	if len(all) > 1 {
		rest := make([]string, 0, len(all)-1)
		for _, f := range all[1:] {
			rest = append(rest, strconv.Quote(f.key))
		}
		msg += " (also unknown: " + strings.Join(rest, ", ") + ")"
	}
	return &LoadError{File: name, Line: first.line, Err: errors.New(msg)}
}

// parseMode parses mode as octal digits ("644", "0644", "04755"), whatever
// the leading zeros. It returns the os.FileMode with the setuid, setgid and
// sticky bits translated.
func parseMode(s string) (os.FileMode, error) {
	if s == "" || strings.TrimLeft(s, "01234567") != "" {
		return 0, fmt.Errorf("invalid mode %q: want octal digits such as \"0644\"", s)
	}
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o7777 {
		return 0, fmt.Errorf("invalid mode %q: want octal digits no larger than 7777", s)
	}
	m := os.FileMode(n & 0o777)
	if n&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if n&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if n&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m, nil
}

// ParseWait parses "min[:max]". Without max, Max is 4×Min (as in
// consul-template). Max may not be below Min.
func ParseWait(s string) (Wait, error) {
	if s == "" {
		return Wait{}, nil
	}
	minS, maxS, hasMax := strings.Cut(s, ":")
	minD, err := time.ParseDuration(strings.TrimSpace(minS))
	if err != nil {
		return Wait{}, fmt.Errorf("invalid wait %q: %w", s, err)
	}
	w := Wait{Min: minD, Max: 4 * minD}
	if hasMax {
		if w.Max, err = time.ParseDuration(strings.TrimSpace(maxS)); err != nil {
			return Wait{}, fmt.Errorf("invalid wait %q: %w", s, err)
		}
	}
	if w.Min < 0 || w.Max < w.Min {
		return Wait{}, fmt.Errorf("invalid wait %q: want 0 <= min <= max", s)
	}
	return w, nil
}

// parseTimeout parses a command timeout; empty means def.
func parseTimeout(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: %w", s, err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("invalid duration %q: must be positive", s)
	}
	return d, nil
}

// lookupUser resolves a user name (or a numeric id) to a uid.
func lookupUser(name string) (int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if n, nerr := strconv.Atoi(name); nerr == nil && n >= 0 {
			return n, nil
		}
		return 0, fmt.Errorf("unknown owner %q: %w", name, err)
	}
	return strconv.Atoi(u.Uid)
}

// lookupGroup resolves a group name (or a numeric id) to a gid.
func lookupGroup(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		if n, nerr := strconv.Atoi(name); nerr == nil && n >= 0 {
			return n, nil
		}
		return 0, fmt.Errorf("unknown group %q: %w", name, err)
	}
	return strconv.Atoi(g.Gid)
}
