package template

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"text/template/parse"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/template/internal/exec"
)

// Options tune how a template is parsed.
type Options struct {
	// Funcs are extra functions, added after every built-in one, so a
	// caller may override any name (including the store functions). May be
	// nil. A render that the fast executor gives up on runs again in
	// text/template: a function may then be called twice for one render.
	Funcs map[string]any
	// LeftDelim and RightDelim are the action delimiters; "" means the
	// default "{{" and "}}".
	LeftDelim, RightDelim string
	// TextTemplate renders with text/template alone, never with the fast
	// executor (fast.go): a switch to rule the fast executor out.
	TextTemplate bool
	// Decrypter opens the values cget, cgets, cgetv, cgetvs and decrypt
	// read (crypt.go); nil fails the parse of a template calling them.
	Decrypter Decrypter
}

// Template is a parsed template. It is parsed once (and once more the
// first time a render of a template the fast executor runs falls back to
// text/template) and is safe for concurrent use by any number of
// goroutines calling Execute.
type Template struct {
	name        string
	text        string
	left, right string   // the delimiters
	bound       []string // store functions not overridden by Options.Funcs
	// free holds the bindings not in use. It is a plain list rather
	// than a sync.Pool: a pool is reachable from the runtime until two
	// garbage collections after its last use, which kept every template
	// of a one-shot run alive long after its single render.
	mu   sync.Mutex
	free []*binding
	size atomic.Int64 // length of the last output, to size the buffer

	virtual []string // service-discovery prefixes the template reads

	dec      Decrypter // Options.Decrypter
	decrypts bool      // the template calls a decrypting function

	// fast is the template compiled for the fast executor, nil if it
	// cannot run there; funcs are the first binding's functions. slow is
	// set once a render fell back to text/template for what the fast
	// executor does not handle, so later renders go there directly.
	fast  *exec.Prog
	funcs template.FuncMap
	slow  atomic.Bool
	// trees are the parse trees text/template runs (under mu). A
	// template the fast executor runs drops them after compiling (a
	// daemon keeps every template) and parses text again the first time
	// a render falls back.
	trees map[string]*parse.Tree
}

// VirtualKeys returns the service-discovery prefixes the template reads
// (see backends.ServicePrefix), sorted: a resource fetches and watches them
// besides its keys.
func (t *Template) VirtualKeys() []string { return t.virtual }

// binding is the template with its store functions bound to its own
// recorder. A binding serves one Execute at a time.
type binding struct {
	rec   *recorder
	funcs template.FuncMap
	fast  []exec.Func        // the functions for the fast executor; nil without it
	tmpl  *template.Template // built on first use (textTemplate)
}

// ParseFile reads and parses the template file at path. The template is
// named after the file's base name, as confd names it; parse errors name
// path once (WithPath): `templates/haproxy.cfg.tmpl:12: function "nope"
// not defined`.
func ParseFile(path string, opts Options) (*Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	name := filepath.Base(path)
	t, err := Parse(name, string(b), opts)
	if err != nil {
		return nil, WithPath(err, name, path)
	}
	return t, nil
}

// Parse parses text as a template called name. Errors name the template
// and the line, e.g. `template: name:3: unexpected "}" in operand`. A value
// in opts.Funcs that is not a usable function is an error.
//
// Only the functions the template calls are registered with it: with ~250
// functions available (confd's and sprig's), registering all of them cost
// two 250-entry maps per template and per concurrent render.
func Parse(name, text string, opts Options) (_ *Template, err error) {
	defer func() {
		// text/template panics on a bad function value or name.
		if r := recover(); r != nil {
			err = fmt.Errorf("template: %s: bad function in Options.Funcs: %v", name, r)
		}
	}()
	for n, f := range opts.Funcs {
		// Funcs validates names and values (and panics on bad ones).
		template.New("").Funcs(template.FuncMap{n: f})
	}
	trees, err := parseText(name, text, opts.LeftDelim, opts.RightDelim)
	if err != nil {
		return nil, err
	}
	var prog *exec.Prog
	if !opts.TextTemplate {
		prog = exec.Compile(text, trees, name)
	}
	used, checked := compiledFuncs(prog, opts)
	var virtual []string
	if !checked {
		if used, virtual, err = checkTrees(trees, opts); err != nil {
			return nil, err
		}
	}
	// The first binding's store functions are bound to rec; concurrent
	// renders get bindings of their own (acquire).
	rec := &recorder{dec: opts.Decrypter}
	funcs := make(template.FuncMap, len(used))
	t := &Template{name: name, text: text, left: opts.LeftDelim, right: opts.RightDelim, virtual: virtual,
		dec: opts.Decrypter, decrypts: decrypts(used, opts)}
	for _, fn := range used {
		if f, ok := opts.Funcs[fn]; ok {
			funcs[fn] = f
			continue
		}
		if f, ok := storeFunc(rec, fn); ok {
			funcs[fn] = f
			t.bound = append(t.bound, fn)
			continue
		}
		funcs[fn] = baseFuncs[fn]
	}
	t.funcs = funcs
	first := &binding{rec: rec, funcs: funcs}
	if prog != nil {
		if first.fast = prog.Bind(funcs, fastAdapters); first.fast != nil {
			t.fast = prog
		}
	}
	if t.fast == nil {
		t.trees = trees
		if _, err := t.textTemplate(first); err != nil {
			return nil, err
		}
	}
	t.free = append(t.free, first)
	return t, nil
}

// textTemplate returns b's text/template, building it on first use from
// the parse trees (parsed again if they were dropped).
func (t *Template) textTemplate(b *binding) (*template.Template, error) {
	if b.tmpl != nil {
		return b.tmpl, nil
	}
	t.mu.Lock()
	if t.trees == nil {
		// The function names were checked at Parse (against an
		// Options.Funcs the caller may have changed since).
		trees, err := parseText(t.name, t.text, t.left, t.right)
		if err != nil {
			t.mu.Unlock()
			return nil, err
		}
		t.trees = trees
	}
	trees := t.trees
	t.mu.Unlock()
	// The trees are shared, read-only, as text/template's Clone shares them.
	tm := template.New(t.name).Delims(t.left, t.right).Funcs(b.funcs)
	for _, tn := range slices.Sorted(maps.Keys(trees)) {
		if _, err := tm.AddParseTree(tn, trees[tn]); err != nil {
			return nil, err
		}
	}
	b.tmpl = tm
	return tm, nil
}

// compiledFuncs returns the sorted names of the non-builtin functions
// prog calls, and true, when they are all a template parsed with opts may
// call, none needs a Decrypter it lacks, and none is service or services
// (whose prefixes checkTrees collects): then checkTrees would find no
// error, nor anything else. prog must cover every tree (exec's AllTrees);
// otherwise, or with prog nil, it returns false and checkTrees must run.
func compiledFuncs(prog *exec.Prog, opts Options) ([]string, bool) {
	if prog == nil || !prog.AllTrees() {
		return nil, false
	}
	for _, fn := range prog.Funcs() {
		if fn == "service" || fn == "services" || !knownFunc(fn, opts) || needsDecrypter(fn, opts) != nil {
			return nil, false
		}
	}
	return slices.Sorted(slices.Values(prog.Funcs())), true
}

// checkTrees checks the function names of trees (the template and its
// {{define}}s, parsed without checking them) and returns the sorted names
// of the non-builtin functions they call and the service-discovery
// prefixes they read. An error names the template and the line of the
// first bad call, trees taken in the order of their names.
func checkTrees(trees map[string]*parse.Tree, opts Options) ([]string, []string, error) {
	seen := map[string]bool{}
	virtual := map[string]bool{}
	for _, tn := range slices.Sorted(maps.Keys(trees)) {
		t := trees[tn]
		var err error
		walkNodes(t.Root, func(n parse.Node) {
			if err != nil {
				return
			}
			if cmd, ok := n.(*parse.CommandNode); ok {
				err = virtualKeys(t, cmd, virtual)
				return
			}
			id, ok := n.(*parse.IdentifierNode)
			if !ok || exec.IsBuiltin(id.Ident) || seen[id.Ident] {
				return
			}
			if !knownFunc(id.Ident, opts) {
				err = fmt.Errorf("template: %s: function %q not defined", location(t, id), id.Ident)
				return
			}
			if err = needsDecrypter(id.Ident, opts); err != nil { // crypt.go
				err = fmt.Errorf("template: %s: %w", location(t, id), err)
				return
			}
			seen[id.Ident] = true
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return slices.Sorted(maps.Keys(seen)), slices.Sorted(maps.Keys(virtual)), nil
}

// knownFunc reports whether name is a function a template parsed with
// opts may call (builtins aside).
func knownFunc(name string, opts Options) bool {
	if _, ok := opts.Funcs[name]; ok {
		return true
	}
	if _, ok := baseFuncs[name]; ok {
		return true
	}
	return slices.Contains(storeFuncNames, name)
}

// parseText parses text into its trees (the template and its
// {{define}}s) without checking function names.
func parseText(name, text, left, right string) (map[string]*parse.Tree, error) {
	tr := parse.New(name)
	tr.Mode = parse.SkipFuncCheck
	trees := map[string]*parse.Tree{}
	if _, err := tr.Parse(text, left, right, trees); err != nil {
		return nil, err
	}
	return trees, nil
}

// location is "name:line" of n, as text/template reports errors.
func location(t *parse.Tree, n parse.Node) string {
	loc, _ := t.ErrorContext(n)
	if i := strings.LastIndex(loc, ":"); i > len(t.ParseName) {
		loc = loc[:i]
	}
	return loc
}

// virtualKeys adds the service-discovery prefixes a command reads to keys:
// `service NAME [any|TAG...]` reads ServicePrefix/NAME (ServiceAnyPrefix/NAME
// with "any"), `services` reads ServicesPrefix. The service name must be a
// string literal, so that what to fetch and watch is known before the first
// render.
func virtualKeys(t *parse.Tree, cmd *parse.CommandNode, keys map[string]bool) error {
	id, ok := cmd.Args[0].(*parse.IdentifierNode)
	if !ok {
		return nil
	}
	switch id.Ident {
	case "services":
		keys[backends.ServicesPrefix] = true
	case "service":
		if len(cmd.Args) < 2 {
			return fmt.Errorf("template: %s: service needs a service name", location(t, id))
		}
		name, ok := cmd.Args[1].(*parse.StringNode)
		if !ok {
			return fmt.Errorf("template: %s: the service name must be a quoted string (confit watches it before the first render)", location(t, id))
		}
		healthy, any := true, false
		for _, a := range cmd.Args[2:] {
			s, lit := a.(*parse.StringNode)
			switch {
			case !lit:
				any = true // unknown at parse time: fetch both
			case s.Text == "any":
				healthy, any = false, true
			}
		}
		if healthy {
			keys[path.Join(backends.ServicePrefix, name.Text)] = true
		}
		if any {
			keys[path.Join(backends.ServiceAnyPrefix, name.Text)] = true
		}
	}
	return nil
}

// walkNodes calls fn for every node of the tree.
func walkNodes(n parse.Node, fn func(parse.Node)) {
	if n == nil {
		return
	}
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			walkNodes(c, fn)
		}
		return
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			walkNodes(c, fn)
		}
		return
	}
	fn(n)
	switch n := n.(type) {
	case *parse.ActionNode:
		walkNodes(n.Pipe, fn)
	case *parse.CommandNode:
		for _, a := range n.Args {
			walkNodes(a, fn)
		}
	case *parse.ChainNode:
		walkNodes(n.Node, fn)
	case *parse.IfNode:
		walkBranch(&n.BranchNode, fn)
	case *parse.RangeNode:
		walkBranch(&n.BranchNode, fn)
	case *parse.WithNode:
		walkBranch(&n.BranchNode, fn)
	case *parse.TemplateNode:
		walkNodes(n.Pipe, fn)
	}
}

func walkBranch(b *parse.BranchNode, fn func(parse.Node)) {
	walkNodes(b.Pipe, fn)
	walkNodes(b.List, fn)
	walkNodes(b.ElseList, fn)
}

// Name returns the template's name.
func (t *Template) Name() string { return t.name }

// acquire returns a free binding, or a new one when none is free. There
// are at most as many bindings as renders of the template ever ran at
// once.
func (t *Template) acquire() (*binding, error) {
	t.mu.Lock()
	if n := len(t.free); n > 0 {
		b := t.free[n-1]
		t.free = t.free[:n-1]
		t.mu.Unlock()
		return b, nil
	}
	t.mu.Unlock()
	rec := &recorder{dec: t.dec}
	funcs := maps.Clone(t.funcs)
	for _, n := range t.bound {
		funcs[n], _ = storeFunc(rec, n)
	}
	b := &binding{rec: rec, funcs: funcs}
	if t.fast != nil {
		b.fast = t.fast.Bind(funcs, fastAdapters)
	}
	return b, nil
}

// Execute renders the template with s as the data source (a nil s is an
// empty store) and returns the output and what the render read. Reads is
// filled in on error too: a render that failed on a missing key lists that
// key, so a caller knows when to try again. Execution errors carry the
// template name and position, e.g. `template: app.tmpl:3:4: executing
// "app.tmpl" at <getv "/database/url">: error calling getv: key does not
// exist: /database/url`, and wrap the function's error (ErrNotExist).
// They never show a value of s (errors.go): a function that fails on a
// value returns a *ValueError naming the key and the value's length, and
// any value left in another error's message is replaced by "[value of KEY
// redacted, N bytes]" (values of 4 bytes or more). Print the error
// returned, not an error it wraps.
//
// Execute is safe for concurrent use; each call records its own Reads.
func (t *Template) Execute(s *Store) ([]byte, Reads, error) {
	return t.execute(s, true)
}

// execute is Execute, with the fast executor tried first if fast is set.
func (t *Template) execute(s *Store, fast bool) ([]byte, Reads, error) {
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
	rendered := false
	if fast && b.fast != nil && !t.slow.Load() {
		err = t.fast.Exec(&buf, b.fast)
		rendered = err == nil
		if errors.Is(err, exec.ErrBail) {
			t.slow.Store(true)
		}
		if !rendered {
			// Run again in text/template: its output, or its error.
			buf.Reset()
			b.rec.reset(s)
		}
	}
	if !rendered {
		var tm *template.Template
		if tm, err = t.textTemplate(b); err == nil {
			err = tm.Execute(&buf, nil)
		}
	}
	reads := b.rec.reads()
	if err != nil {
		err = redact(err, s, b.rec)
	}
	b.rec.store = nil
	b.rec.forgetPlain()
	t.mu.Lock()
	t.free = append(t.free, b)
	t.mu.Unlock()
	if err != nil {
		return nil, reads, err
	}
	t.size.Store(int64(buf.Len()))
	return buf.Bytes(), reads, nil
}

var emptyStore = NewStore(nil)

// MayReadServices reports whether text, once parsed with opts, may call
// service or services: when it returns false the parsed template's
// VirtualKeys would be empty. It scans the actions for those identifiers
// (skipping string and character literals and comments) without parsing,
// so a caller can learn what to fetch while deferring the parse. It may
// return true for a template that does not call them (a field or a
// variable of that name).
func MayReadServices(text string, opts Options) bool {
	left, right := opts.LeftDelim, opts.RightDelim
	if left == "" {
		left = "{{"
	}
	if right == "" {
		right = "}}"
	}
	for {
		i := strings.Index(text, left)
		if i < 0 {
			return false
		}
		text = text[i+len(left):]
		var found bool
		text, found = scanAction(text, right)
		if found {
			return true
		}
	}
}

// scanAction scans one action up to and past its right delimiter and
// reports whether it names service or services as a function. It returns
// the text after the action. An action it cannot follow to its end (not
// closed, or a comment or raw string not closed) counts as found: the
// safe answer, and the parse will report the error anyway.
func scanAction(text, right string) (rest string, found bool) {
	for i := 0; i < len(text); {
		if strings.HasPrefix(text[i:], right) {
			return text[i+len(right):], false
		}
		if strings.HasPrefix(text[i:], "/*") {
			// A comment ("{{/* */}}", "{{- /* */ -}}"); outside a string
			// "/*" can start nothing else.
			j := strings.Index(text[i+2:], "*/")
			if j < 0 {
				return "", true
			}
			i += j + 4
			continue
		}
		switch c := text[i]; {
		case c == '"' || c == '\'':
			// Quoted string or character: skip to the unescaped close.
			i++
			for i < len(text) && text[i] != c && text[i] != '\n' {
				if text[i] == '\\' {
					i++
				}
				i++
			}
			i++
		case c == '`':
			j := strings.IndexByte(text[i+1:], '`')
			if j < 0 {
				return "", true
			}
			i += j + 2
		case isIdentByte(c):
			j := i
			for j < len(text) && isIdentByte(text[j]) {
				j++
			}
			word := text[i:j]
			field := i > 0 && (text[i-1] == '.' || text[i-1] == '$')
			if !field && (word == "service" || word == "services") {
				return text[j:], true
			}
			i = j
		default:
			i++
		}
	}
	return "", true
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}
