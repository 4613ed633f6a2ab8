package template

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"text/template"
)

// Options tune how a template is parsed.
type Options struct {
	// Funcs are extra functions, added after every built-in one, so a
	// caller may override any name (including the store functions). May be
	// nil.
	Funcs map[string]any
	// LeftDelim and RightDelim are the action delimiters; "" means the
	// default "{{" and "}}".
	LeftDelim, RightDelim string
}

// Template is a parsed template. It is parsed once and is safe for
// concurrent use by any number of goroutines calling Execute.
type Template struct {
	name  string
	base  *template.Template // parsed; its store functions are never called
	bound []string           // store functions not overridden by Options.Funcs
	pool  sync.Pool          // *binding
	size  atomic.Int64       // length of the last output, to size the buffer
}

// binding is a clone of the parsed template whose store functions are
// bound to its own recorder. A binding serves one Execute at a time.
type binding struct {
	tmpl *template.Template
	rec  *recorder
}

// ParseFile reads and parses the template file at path. The template is
// named after the file's base name, as confd names it, so errors read
// `template: haproxy.cfg.tmpl:12: function "nope" not defined`; parse
// errors are prefixed with path.
func ParseFile(path string, opts Options) (*Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := Parse(filepath.Base(path), string(b), opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Parse parses text as a template called name. Errors name the template
// and the line, e.g. `template: name:3: unexpected "}" in operand`. A value
// in opts.Funcs that is not a usable function is an error.
func Parse(name, text string, opts Options) (_ *Template, err error) {
	defer func() {
		// text/template panics on a bad function value or name.
		if r := recover(); r != nil {
			err = fmt.Errorf("template: %s: bad function in Options.Funcs: %v", name, r)
		}
	}()
	funcs := maps.Clone(baseFuncs)
	maps.Copy(funcs, storeFuncs(&recorder{}))
	maps.Copy(funcs, opts.Funcs)
	base, err := template.New(name).
		Delims(opts.LeftDelim, opts.RightDelim).
		Funcs(funcs).
		Parse(text)
	if err != nil {
		return nil, err
	}
	t := &Template{name: name, base: base}
	for _, n := range storeFuncNames {
		if _, over := opts.Funcs[n]; !over {
			t.bound = append(t.bound, n)
		}
	}
	return t, nil
}

// Name returns the template's name.
func (t *Template) Name() string { return t.name }

// acquire returns a binding from the pool, cloning the parsed template
// (no re-parse) when the pool is empty.
func (t *Template) acquire() (*binding, error) {
	if b, ok := t.pool.Get().(*binding); ok {
		return b, nil
	}
	c, err := t.base.Clone()
	if err != nil {
		return nil, err
	}
	rec := &recorder{}
	all := storeFuncs(rec)
	fm := make(template.FuncMap, len(t.bound))
	for _, n := range t.bound {
		fm[n] = all[n]
	}
	c.Funcs(fm)
	return &binding{tmpl: c, rec: rec}, nil
}

// Execute renders the template with s as the data source (a nil s is an
// empty store) and returns the output and what the render read. Reads is
// filled in on error too: a render that failed on a missing key lists that
// key, so a caller knows when to try again. Execution errors carry the
// template name and position, e.g. `template: app.tmpl:3:4: executing
// "app.tmpl" at <getv "/database/url">: error calling getv: key does not
// exist: /database/url`, and wrap the function's error (ErrNotExist).
//
// Execute is safe for concurrent use; each call records its own Reads.
func (t *Template) Execute(s *Store) ([]byte, Reads, error) {
	if s == nil {
		s = emptyStore
	}
	b, err := t.acquire()
	if err != nil {
		return nil, Reads{}, err
	}
	b.rec.reset(s)
	var buf bytes.Buffer
	buf.Grow(int(t.size.Load()) + 512)
	err = b.tmpl.Execute(&buf, nil)
	reads := b.rec.reads()
	b.rec.store = nil
	t.pool.Put(b)
	if err != nil {
		return nil, reads, err
	}
	t.size.Store(int64(buf.Len()))
	return buf.Bytes(), reads, nil
}

var emptyStore = NewStore(nil)
