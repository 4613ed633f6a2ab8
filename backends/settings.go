package backends

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A backend declares its settings once, as the fields of an options struct
// carrying a `setting` tag, and registers that struct's type with its
// factory (Register). Everything a user can set is derived from the
// declaration: confit's flags (-NAME), the config file's keys, the
// CONFIT_<NAME> variables and a resource's [backend] table. The tags:
//
//	setting:"client-ca-keys"  the setting's name, as a flag (required)
//	usage:"..."               the flag's help text
//	default:"http"            the value when the setting is not given
//	alias:"client_cakeys"     other spellings accepted in config files and
//	                          [backend] tables (comma-separated)
//	env:"CONFD_CLIENT_CAKEYS" other variables read after CONFIT_<NAME>
//	secret:"true"             the value is a credential: never logged
//
// A field's type gives the setting's kind: string, bool, int,
// time.Duration, or []string (a repeatable setting). Fields without a
// setting tag are not settings; embedded structs are walked, so settings
// several backends share (Config: nodes, TLS, auth) are declared once and
// embedded by each. Settings of the same name declared by several backends
// must agree.

// Kind is a setting's value type.
type Kind int

// The kinds of setting.
const (
	KindString Kind = iota
	KindBool
	KindInt
	KindDuration
	KindList // []string: repeatable; every value given is kept
)

// Setting describes one declared backend setting.
type Setting struct {
	Name     string   // the flag name: "client-cert"
	Usage    string   // help text
	Kind     Kind     // value type
	Default  string   // value when not given ("" for none)
	Aliases  []string // other config-file / [backend] spellings
	Env      []string // variables read after CONFIT_<NAME>
	Secret   bool     // a credential: never logged
	Backends []string // the backends that declare it, sorted
}

// TableKey is the setting's key in a TOML table: the name with '_' for '-'
// ("client-cert" is client_cert), as confd.toml spells its keys.
func (s Setting) TableKey() string { return strings.ReplaceAll(s.Name, "-", "_") }

// Settings are setting values as a user gave them: a setting's name to its
// values (several for a KindList setting; for the others the last one
// counts). A setting missing from the map has its declared default.
type Settings map[string][]string

// Spec names a backend and the settings to build it with: what a resource's
// [backend] table or confit's flags say.
type Spec struct {
	Backend  string
	Settings Settings
}

// Key returns a string equal for specs that build the same backend, for use
// as a map key. It holds no setting value in clear (values are hashed), so
// it is safe to log.
func (s Spec) Key() string {
	names := make([]string, 0, len(s.Settings))
	for n := range s.Settings {
		names = append(names, n)
	}
	slices.Sort(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%d:%s%d;", len(n), n, len(s.Settings[n]))
		for _, v := range s.Settings[n] {
			fmt.Fprintf(h, "%d:%s", len(v), v)
		}
	}
	return s.Backend + "/" + hex.EncodeToString(h.Sum(nil)[:12])
}

// field is one setting of a registered options struct.
type field struct {
	Setting
	index []int // reflect field path
}

// registration is what Register records for one backend name.
type registration struct {
	typ    reflect.Type // the options struct
	fields []field
	build  func(ctx context.Context, opts any, log *slog.Logger) (Backend, error)
}

// Register makes a backend available by name with its options struct O
// (see the settings declaration rules above) and the factory that builds
// it. The factory receives O decoded from a Spec's settings, defaults
// applied and O.Validate (if *O has one) passed; it must not leave
// goroutines or connections behind when it returns an error. Register
// panics if name is already registered or O's declaration is malformed;
// call it from the backend package's init.
func Register[O any](name string, f func(ctx context.Context, opts *O, log *slog.Logger) (Backend, error)) {
	typ := reflect.TypeFor[O]()
	fields, err := declaredFields(typ, nil)
	if err != nil {
		panic(fmt.Sprintf("backends: Register(%q): %v", name, err))
	}
	reg := &registration{typ: typ, fields: fields, build: func(ctx context.Context, opts any, log *slog.Logger) (Backend, error) {
		return f(ctx, opts.(*O), log)
	}}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("backends: Register called twice for " + name)
	}
	for _, fl := range fields {
		for other, r := range registry {
			for _, of := range r.fields {
				if of.Name == fl.Name && !sameDeclaration(of.Setting, fl.Setting) {
					panic(fmt.Sprintf("backends: Register(%q): setting %q is declared differently by %q", name, fl.Name, other))
				}
			}
		}
	}
	registry[name] = reg
}

// sameDeclaration reports whether two declarations of a setting agree.
func sameDeclaration(a, b Setting) bool {
	return a.Kind == b.Kind && a.Default == b.Default && a.Secret == b.Secret && a.Usage == b.Usage &&
		slices.Equal(a.Aliases, b.Aliases) && slices.Equal(a.Env, b.Env)
}

var durationType = reflect.TypeFor[time.Duration]()

// declaredFields walks a struct type for setting tags.
func declaredFields(t reflect.Type, path []int) ([]field, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("options type %s is not a struct", t)
	}
	var out []field
	for i := range t.NumField() {
		sf := t.Field(i)
		idx := append(slices.Clone(path), i)
		name, tagged := sf.Tag.Lookup("setting")
		if !tagged {
			if sf.Anonymous && sf.Type.Kind() == reflect.Struct {
				sub, err := declaredFields(sf.Type, idx)
				if err != nil {
					return nil, err
				}
				out = append(out, sub...)
			}
			continue
		}
		if name == "" || !sf.IsExported() {
			return nil, fmt.Errorf("field %s: setting tag needs a name and an exported field", sf.Name)
		}
		s := Setting{Name: name, Usage: sf.Tag.Get("usage"), Default: sf.Tag.Get("default"), Secret: sf.Tag.Get("secret") == "true"}
		if a := sf.Tag.Get("alias"); a != "" {
			s.Aliases = strings.Split(a, ",")
		}
		if e := sf.Tag.Get("env"); e != "" {
			s.Env = strings.Split(e, ",")
		}
		switch {
		case sf.Type == durationType:
			s.Kind = KindDuration
		case sf.Type.Kind() == reflect.String:
			s.Kind = KindString
		case sf.Type.Kind() == reflect.Bool:
			s.Kind = KindBool
		case sf.Type.Kind() == reflect.Int:
			s.Kind = KindInt
		case sf.Type.Kind() == reflect.Slice && sf.Type.Elem().Kind() == reflect.String:
			s.Kind = KindList
		default:
			return nil, fmt.Errorf("field %s: setting %q has unsupported type %s", sf.Name, name, sf.Type)
		}
		if s.Default != "" {
			if err := s.Check(s.Default); err != nil {
				return nil, fmt.Errorf("field %s: default: %w", sf.Name, err)
			}
		}
		out = append(out, field{Setting: s, index: idx})
	}
	return out, nil
}

// Check reports whether v is a valid value of the setting's kind, with an
// error that says what is expected (never repeating a secret value).
func (s Setting) Check(v string) error {
	var err error
	switch s.Kind {
	case KindBool:
		_, err = strconv.ParseBool(v)
		if err != nil {
			err = errors.New("want true or false")
		}
	case KindInt:
		_, err = strconv.Atoi(v)
		if err != nil {
			err = errors.New("want an integer")
		}
	case KindDuration:
		_, err = time.ParseDuration(v)
		if err != nil {
			err = errors.New("want a duration with a unit, such as 5s or 1m30s")
		}
	}
	if err != nil && !s.Secret {
		err = fmt.Errorf("%q: %w", v, err)
	}
	return err
}

// AllSettings lists every setting the registered backends declare, once
// each, sorted by name; Backends says which declare it.
func AllSettings() []Setting {
	registryMu.RLock()
	defer registryMu.RUnlock()
	byName := map[string]*Setting{}
	for bn, r := range registry {
		for _, f := range r.fields {
			s, ok := byName[f.Name]
			if !ok {
				c := f.Setting
				byName[f.Name] = &c
				s = &c
			}
			s.Backends = append(s.Backends, bn)
		}
	}
	out := make([]Setting, 0, len(byName))
	for _, s := range byName {
		slices.Sort(s.Backends)
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b Setting) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// SettingsOf lists the settings backend name declares, sorted by name, or
// nil for a name not registered.
func SettingsOf(name string) []Setting {
	registryMu.RLock()
	r := registry[name]
	registryMu.RUnlock()
	if r == nil {
		return nil
	}
	out := make([]Setting, len(r.fields))
	for i, f := range r.fields {
		out[i] = f.Setting
		out[i].Backends = []string{name}
	}
	slices.SortFunc(out, func(a, b Setting) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Decode builds the options value backend spec.Backend's factory would
// receive for spec: a pointer to its options struct with defaults applied,
// spec's settings set, and its Validate method (if any) passed. Settings
// the backend does not declare are ignored (confit's flags are global: -file
// means nothing to etcd). Errors name the backend and the setting.
func Decode(spec Spec) (any, error) {
	if err := Check(spec.Backend); err != nil {
		return nil, err
	}
	registryMu.RLock()
	r := registry[spec.Backend]
	registryMu.RUnlock()
	return r.decode(spec)
}

func (r *registration) decode(spec Spec) (any, error) {
	pv := reflect.New(r.typ)
	v := pv.Elem()
	for _, f := range r.fields {
		vals, given := spec.Settings[f.Name]
		if !given {
			if f.Default == "" {
				continue
			}
			vals = []string{f.Default}
		}
		if len(vals) == 0 {
			continue
		}
		fv := v.FieldByIndex(f.index)
		if f.Kind == KindList {
			fv.Set(reflect.ValueOf(slices.Clone(vals)))
			continue
		}
		s := vals[len(vals)-1]
		if err := f.Check(s); err != nil {
			return nil, fmt.Errorf("%s: setting %s: %w", spec.Backend, f.Name, err)
		}
		switch f.Kind {
		case KindString:
			fv.SetString(s)
		case KindBool:
			b, _ := strconv.ParseBool(s)
			fv.SetBool(b)
		case KindInt:
			n, _ := strconv.Atoi(s)
			fv.SetInt(int64(n))
		case KindDuration:
			d, _ := time.ParseDuration(s)
			fv.SetInt(int64(d))
		}
	}
	if val, ok := pv.Interface().(interface{ Validate() error }); ok {
		if err := val.Validate(); err != nil {
			return nil, err
		}
	}
	return pv.Interface(), nil
}

// New builds the backend spec names, with its settings decoded as Decode
// does. log receives the backend's logs; nil discards them.
func New(ctx context.Context, spec Spec, log *slog.Logger) (Backend, error) {
	if err := Check(spec.Backend); err != nil {
		return nil, err
	}
	registryMu.RLock()
	r := registry[spec.Backend]
	registryMu.RUnlock()
	opts, err := r.decode(spec)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return r.build(ctx, opts, log)
}

// Matches reports whether key names the setting in a config file or a
// [backend] table: its name or an alias, ignoring case, '-' and '_'
// ("client_cert", "ClientCert" and "client-cert" are one key).
func (s Setting) Matches(key string) bool {
	k := FoldKey(key)
	if k == FoldKey(s.Name) {
		return true
	}
	for _, a := range s.Aliases {
		if k == FoldKey(a) {
			return true
		}
	}
	return false
}

// FoldKey folds a setting or config-file key for comparison: case, '-' and
// '_' are ignored.
func FoldKey(k string) string {
	return strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(k))
}

// FromTOML turns a value decoded from a TOML table into the setting's
// values, checking its type: a string for a string or duration setting
// (a string or an array of strings for a list), a boolean for a bool, an
// integer for an int.
func (s Setting) FromTOML(v any) ([]string, error) {
	switch s.Kind {
	case KindList:
		switch t := v.(type) {
		case string:
			return []string{t}, nil
		case []any:
			out := make([]string, 0, len(t))
			for _, e := range t {
				str, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("want a string or an array of strings, found an element of type %T", e)
				}
				out = append(out, str)
			}
			return out, nil
		}
		return nil, fmt.Errorf("want a string or an array of strings, found %T", v)
	case KindBool:
		if b, ok := v.(bool); ok {
			return []string{strconv.FormatBool(b)}, nil
		}
		return nil, fmt.Errorf("want true or false, found %T", v)
	case KindInt:
		if n, ok := v.(int64); ok {
			return []string{strconv.FormatInt(n, 10)}, nil
		}
		return nil, fmt.Errorf("want an integer, found %T", v)
	}
	str, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("want a string, found %T", v)
	}
	if err := s.Check(str); err != nil {
		return nil, err
	}
	return []string{str}, nil
}

// SpecOf is Decode's inverse: the spec naming backend name with the
// settings that v (an options struct, or a pointer to one, such as a
// Config) declares and holds, zero values left out. Tests and programs
// that build a backend from Go values use it with New.
func SpecOf(name string, v any) Spec {
	rv := reflect.Indirect(reflect.ValueOf(v))
	fields, err := declaredFields(rv.Type(), nil)
	if err != nil {
		panic("backends: SpecOf: " + err.Error())
	}
	spec := Spec{Backend: name, Settings: Settings{}}
	for _, f := range fields {
		fv := rv.FieldByIndex(f.index)
		if fv.IsZero() {
			continue
		}
		switch f.Kind {
		case KindList:
			spec.Settings[f.Name] = slices.Clone(fv.Interface().([]string))
		case KindDuration:
			spec.Settings[f.Name] = []string{time.Duration(fv.Int()).String()}
		default:
			spec.Settings[f.Name] = []string{fmt.Sprint(fv.Interface())}
		}
	}
	return spec
}
