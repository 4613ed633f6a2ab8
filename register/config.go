package register

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/internal/tomlline"
)

// Defaults of a Registration's optional settings.
const (
	DefaultInterval = 2 * time.Second
	DefaultTimeout  = time.Second
	DefaultRise     = 2
	DefaultFall     = 3
	DefaultTTL      = 15 * time.Second
	DefaultDrain    = 5 * time.Second
	// DefaultDeregisterAfter is Consul's deregister_critical_service_after.
	DefaultDeregisterAfter = 10 * time.Minute
	// DefaultFlapLimit ups are allowed per DefaultFlapWindow.
	DefaultFlapLimit  = 6
	DefaultFlapWindow = 5 * time.Minute

	// MinTTL is the shortest TTL accepted: etcd's lessor and Consul's
	// check reaper both work at second granularity, and a sidecar stalled
	// by CPU throttling must not lose its lease.
	MinTTL = 3 * time.Second
	// minDeregisterAfter is Consul's own minimum.
	minDeregisterAfter = time.Minute
	// maxCheckOutput bounds what a failed check keeps of its output.
	maxCheckOutput = 4 << 10
)

// Registration is one instance to announce while its check passes. It is
// built by FromTable (a conf.d [register] table) or by the caller (the
// confit register flags), then checked by Validate.
type Registration struct {
	// Name identifies the registration in logs, metrics and /health: the
	// conf.d file it came from, or "flags".
	Name string
	// Backend is the store to register in; nil means the process-wide
	// backend (-backend and its flags).
	Backend *backends.Spec

	// Key and Value are what etcd stores (Value defaults to the JSON of
	// the instance: {"id", "service", "address", "port", "tags", "meta"}).
	Key, Value string

	// Service, ID, Address, Port, Tags and Meta describe the instance to
	// Consul (Service and Port are required there; ID defaults to
	// SERVICE-ADDRESS-PORT).
	Service, ID, Address string
	Port                 int
	Tags                 []string
	Meta                 map[string]string

	// Check decides whether the instance is up.
	Check Check

	// TTL is etcd's lease TTL, or the Consul TTL check's TTL.
	TTL time.Duration
	// Drain is how long, on shutdown, the instance stays marked down
	// before it is deregistered and confit exits (0: the default; negative:
	// none).
	Drain time.Duration
	// DeregisterAfter is Consul's deregister_critical_service_after.
	DeregisterAfter time.Duration
	// FlapLimit is how many times the instance may come up within
	// FlapWindow; past it, it stays down until the window allows another.
	FlapLimit  int
	FlapWindow time.Duration
}

// Check is how a registration's health is checked: exactly one of HTTP
// (a GET answered with Status, default any 2xx), TCP (a connection
// accepted) and Cmd (exit code 0; run without a shell).
type Check struct {
	HTTP   string
	Status int
	TCP    string
	Cmd    []string

	// Interval between checks, and the Timeout of each.
	Interval, Timeout time.Duration
	// Rise consecutive passes mark the instance up, Fall consecutive
	// failures mark it down.
	Rise, Fall int
}

// kind names the check's type, for logs and errors.
func (c Check) kind() string {
	switch {
	case c.HTTP != "":
		return "http"
	case c.TCP != "":
		return "tcp"
	case len(c.Cmd) > 0:
		return "cmd"
	}
	return "none"
}

// WithDefaults returns r with every unset optional setting at its
// default.
func (r Registration) WithDefaults() Registration {
	c := &r.Check
	c.Interval = orDur(c.Interval, DefaultInterval)
	c.Timeout = orDur(c.Timeout, min(DefaultTimeout, c.Interval))
	if c.Rise == 0 {
		c.Rise = DefaultRise
	}
	if c.Fall == 0 {
		c.Fall = DefaultFall
	}
	r.TTL = orDur(r.TTL, DefaultTTL)
	switch {
	case r.Drain == 0:
		r.Drain = DefaultDrain
	case r.Drain < 0:
		r.Drain = 0 // none asked for
	}
	r.DeregisterAfter = orDur(r.DeregisterAfter, DefaultDeregisterAfter)
	if r.FlapLimit == 0 {
		r.FlapLimit = DefaultFlapLimit
	}
	r.FlapWindow = orDur(r.FlapWindow, DefaultFlapWindow)
	if r.ID == "" && r.Service != "" {
		r.ID = r.Service
		if r.Address != "" {
			r.ID += "-" + r.Address
		}
		if r.Port != 0 {
			r.ID += "-" + strconv.Itoa(r.Port)
		}
	}
	return r
}

func orDur(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Validate checks a registration (with defaults applied) for the store
// backend it registers in ("etcd" or "consul"). Errors name the setting,
// spelt as in a [register] table.
func (r *Registration) Validate(backend string) error {
	c := r.Check
	n := 0
	for _, set := range []bool{c.HTTP != "", c.TCP != "", len(c.Cmd) > 0} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		return errors.New("check: want one of http, tcp or cmd")
	case n > 1:
		return errors.New("check: want only one of http, tcp and cmd")
	}
	if c.HTTP != "" {
		u, err := url.Parse(c.HTTP)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("check.http: %q: want an http:// or https:// URL", redactURL(c.HTTP))
		}
	}
	if c.Status != 0 && (c.Status < 100 || c.Status > 599) {
		return fmt.Errorf("check.status: %d: want an HTTP status code", c.Status)
	}
	if c.TCP != "" {
		if _, _, err := net.SplitHostPort(c.TCP); err != nil {
			return fmt.Errorf("check.tcp: %q: want HOST:PORT", c.TCP)
		}
	}
	switch {
	case c.Interval <= 0:
		return errors.New("check.interval: must be positive")
	case c.Timeout <= 0 || c.Timeout > c.Interval:
		return fmt.Errorf("check.timeout: %v: want positive and at most check.interval (%v)", c.Timeout, c.Interval)
	case c.Rise < 1:
		return fmt.Errorf("check.rise: %d: want at least 1", c.Rise)
	case c.Fall < 1:
		return fmt.Errorf("check.fall: %d: want at least 1", c.Fall)
	case r.TTL < MinTTL:
		return fmt.Errorf("ttl: %v: want at least %v", r.TTL, MinTTL)
	case r.FlapLimit < 0:
		return fmt.Errorf("flap_limit: %d: want 0 (no limit) or more", r.FlapLimit)
	case r.FlapWindow < 0:
		return fmt.Errorf("flap_window: %v: want positive", r.FlapWindow)
	}
	if r.TTL.Truncate(time.Second) != r.TTL {
		return fmt.Errorf("ttl: %v: want whole seconds", r.TTL)
	}
	switch backend {
	case "etcd", "etcdv3":
		if r.Key == "" {
			return errors.New("key: required with the etcd backend")
		}
		if !strings.HasPrefix(r.Key, "/") || backends.HasDotSegment(r.Key) || backends.CleanKey(r.Key) != r.Key {
			return fmt.Errorf("key: %q: want an absolute clean path such as /services/web/10.0.0.5:8080", r.Key)
		}
	case "consul":
		if r.Service == "" {
			return errors.New("service: required with the consul backend")
		}
		if r.Port < 0 || r.Port > 65535 {
			return fmt.Errorf("port: %d: want 0 to 65535", r.Port)
		}
		if r.DeregisterAfter < minDeregisterAfter {
			return fmt.Errorf("deregister_critical_after: %v: Consul's minimum is %v", r.DeregisterAfter, minDeregisterAfter)
		}
	default:
		return fmt.Errorf("backend %q: register mode supports etcd and consul", backend)
	}
	return nil
}

// FromTable builds the registration of a conf.d file's [register] table,
// as decoded by BurntSushi/toml into table; spec is the file's [backend]
// table (nil: the process-wide backend). data is the file's content, used
// only to find the line of a bad key. Unknown keys and values of the wrong
// type are errors naming the file, line and key.
func FromTable(file string, data []byte, table map[string]any, spec *backends.Spec) (*Registration, error) {
	r := &Registration{Name: file, Backend: spec}
	fail := func(key string, err error) error {
		return &ConfigError{File: file, Line: tomlline.KeyLine(data, key), Key: key, Err: err}
	}
	if err := decodeTable("register", table, r.fields(), fail); err != nil {
		return nil, err
	}
	return r, nil
}

// ConfigError is a bad [register] table: the file, the line when known,
// the dotted key ("register.check.rise") and what is wrong.
type ConfigError struct {
	File string
	Line int
	Key  string
	Err  error
}

func (e *ConfigError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Key == "" {
		return loc + ": " + e.Err.Error()
	}
	return loc + ": " + e.Key + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }

// field is one key of the table: set stores its value.
type field struct {
	set   func(v any) error
	table map[string]field // a sub-table instead
}

func (r *Registration) fields() map[string]field {
	c := &r.Check
	return map[string]field{
		"key":                       {set: str(&r.Key)},
		"value":                     {set: str(&r.Value)},
		"service":                   {set: str(&r.Service)},
		"id":                        {set: str(&r.ID)},
		"address":                   {set: str(&r.Address)},
		"port":                      {set: integer(&r.Port)},
		"tags":                      {set: strs(&r.Tags)},
		"meta":                      {set: strMap(&r.Meta)},
		"ttl":                       {set: dur(&r.TTL)},
		"drain":                     {set: drainDur(&r.Drain)},
		"deregister_critical_after": {set: dur(&r.DeregisterAfter)},
		"flap_limit":                {set: integer(&r.FlapLimit)},
		"flap_window":               {set: dur(&r.FlapWindow)},
		"check": {table: map[string]field{
			"http":     {set: str(&c.HTTP)},
			"status":   {set: integer(&c.Status)},
			"tcp":      {set: str(&c.TCP)},
			"cmd":      {set: strs(&c.Cmd)},
			"interval": {set: dur(&c.Interval)},
			"timeout":  {set: dur(&c.Timeout)},
			"rise":     {set: integer(&c.Rise)},
			"fall":     {set: integer(&c.Fall)},
		}},
	}
}

func decodeTable(prefix string, table map[string]any, fields map[string]field, fail func(string, error) error) error {
	keys := make([]string, 0, len(table))
	for k := range table {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		name := prefix + "." + k
		f, ok := fields[k]
		if !ok {
			known := make([]string, 0, len(fields))
			for k := range fields {
				known = append(known, k)
			}
			slices.Sort(known)
			return fail(name, fmt.Errorf("unknown key (known: %s)", strings.Join(known, ", ")))
		}
		if f.table != nil {
			sub, ok := table[k].(map[string]any)
			if !ok {
				return fail(name, errors.New("want a table"))
			}
			if err := decodeTable(name, sub, f.table, fail); err != nil {
				return err
			}
			continue
		}
		if err := f.set(table[k]); err != nil {
			return fail(name, err)
		}
	}
	return nil
}

func str(p *string) func(any) error {
	return func(v any) error {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want a string, not %T", v)
		}
		*p = s
		return nil
	}
}

func integer(p *int) func(any) error {
	return func(v any) error {
		n, ok := v.(int64)
		if !ok {
			return fmt.Errorf("want an integer, not %T", v)
		}
		*p = int(n)
		return nil
	}
}

func dur(p *time.Duration) func(any) error {
	return func(v any) error {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf(`want a duration such as "10s", not %T`, v)
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q: want a duration such as \"10s\"", s)
		}
		if d < 0 {
			return fmt.Errorf("%q: want a duration of 0 or more", s)
		}
		*p = d
		return nil
	}
}

// drainDur is dur, with "0s" meaning no drain.
func drainDur(p *time.Duration) func(any) error {
	set := dur(p)
	return func(v any) error {
		if err := set(v); err != nil {
			return err
		}
		if *p == 0 {
			*p = -1
		}
		return nil
	}
}

func strs(p *[]string) func(any) error {
	return func(v any) error {
		list, ok := v.([]any)
		if !ok {
			return fmt.Errorf("want a list of strings, not %T", v)
		}
		out := make([]string, 0, len(list))
		for _, e := range list {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("want a list of strings, not a list holding %T", e)
			}
			out = append(out, s)
		}
		*p = out
		return nil
	}
}

func strMap(p *map[string]string) func(any) error {
	return func(v any) error {
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("want a table of strings, not %T", v)
		}
		out := make(map[string]string, len(m))
		for k, e := range m {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("%s: want a string, not %T", k, e)
			}
			out[k] = s
		}
		*p = out
		return nil
	}
}

// redactURL is u with any password replaced by "xxxxx", for messages.
func redactURL(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Redacted()
	}
	if i := strings.LastIndexByte(u, '@'); i >= 0 {
		return "[redacted]" + u[i:]
	}
	return u
}
