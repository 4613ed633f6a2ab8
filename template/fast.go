package template

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"text/template/parse"

	"github.com/confit-dev/confit/backends"
)

// The fast executor renders the common shape of a confd template (text,
// actions, if, with, range over lists and maps, variables, field access,
// calls of functions with plain signatures) directly from the parse tree,
// without text/template's reflection. text/template calls every function
// through reflect.Value.Call, ~30 allocations per call; a haproxy.cfg of
// 10,000 servers spent 22 ms of a 45 ms one-shot run there.
//
// It never decides an outcome text/template would decide differently: a
// template it cannot compile (a chain such as (get "/k").Value, a builtin
// other than those in fastBuiltins, a number that is not a plain decimal
// integer, or a function signature adaptFast does not know)
// is always run by text/template, and
// at render time anything outside what it knows (a nil, a pointer, a
// method, an unknown type, a function's error or panic) abandons its output and the
// render is run again by text/template, which then produces the output or
// the error, with text/template's message. Its outputs are checked against
// text/template's by TestFastExecutor, the golden cases and
// FuzzFastMatchesTextTemplate.

// errBail abandons a fast render for something it does not handle.
var errBail = errors.New("template: outside the fast executor")

// errFuncFailed abandons a fast render on a function's error or panic, so
// that text/template reports it in its own words.
var errFuncFailed = errors.New("template: a function failed")

// fastFunc calls a template function with evaluated arguments. It
// returns errBail when the arguments are not what the function takes.
type fastFunc func(args []any) (any, error)

type fastOp uint8

const (
	fText fastOp = iota
	fAction
	fIf
	fWith
	fRange
	fBreak
	fContinue
	fTemplate
)

// fastNode is one node of a compiled template. It is kept small: a
// long-running daemon keeps every template compiled.
type fastNode struct {
	op   fastOp
	text string      // a substring of the template's text, or a copy
	pipe *fastPipe   // nil for a {{template}} without one
	br   *fastBranch // if, with, range and template
}

// fastBranch holds what an if, with or range runs, or what a {{template}}
// calls.
type fastBranch struct {
	list, elseList []fastNode
	tmpl           *fastTree
}

// fastTree is a compiled template tree ({{define}}).
type fastTree struct {
	nodes []fastNode
}

// maxFastDepth bounds nested {{template}} calls; deeper renders go to
// text/template (whose own limit is 100,000).
const maxFastDepth = 1000

// fastPipe is a pipeline: commands, and the variables it declares (or,
// with assign, sets).
type fastPipe struct {
	decl   []string
	assign bool
	cmds   []fastCmd
}

const (
	cmdValue uint8 = iota // args[0] is the value
	cmdFunc               // a function: fn indexes the binding's fastFuncs
	cmdPrintf
	cmdPrint
	cmdNot
	cmdAnd
	cmdOr
	cmdEq
	cmdNe
	cmdLen
	cmdIndex
)

// fastBuiltins are the text/template builtins the fast executor runs.
var fastBuiltins = map[string]uint8{
	"printf": cmdPrintf, "print": cmdPrint, "not": cmdNot, "and": cmdAnd, "or": cmdOr,
	"eq": cmdEq, "ne": cmdNe, "len": cmdLen, "index": cmdIndex,
}

type fastCmd struct {
	op   uint8
	fn   int
	args []fastArg
}

const (
	argConst uint8 = iota
	argDot
	argField // fields of dot
	argVar   // a variable, then fields
	argPipe
	argFunc // a function called without arguments
)

// fastArg is an operand. val is the constant (argConst), the variable's
// name (argVar) or the *fastPipe (argPipe).
type fastArg struct {
	kind   uint8
	fn     int32 // argFunc
	val    any
	fields []string // argField, argVar
}

// fastProg is a compiled template.
type fastProg struct {
	root  []fastNode
	funcs []string // the functions it calls; fastCmd.fn and fastArg.fn index it
}

// compileFast compiles the template called name of trees (and the ones
// it calls), or returns nil if they use anything the fast executor does
// not run.
func compileFast(trees map[string]*parse.Tree, name string) *fastProg {
	c := &fastCompiler{trees: trees}
	root, ok := c.tree(name)
	if !ok {
		return nil
	}
	return &fastProg{root: root.nodes, funcs: c.names}
}

// fastCompiler compiles trees. A template is compiled at every parse and
// in one-shot mode rendered once, so the compiler allocates its pipes,
// commands and arguments in blocks rather than one by one.
type fastCompiler struct {
	names    []string // the functions called, in order of first call
	trees    map[string]*parse.Tree
	compiled map[string]*fastTree
	pipes    []fastPipe // a block of pipes to hand out
	cmds     []fastCmd  // a block that every pipe's commands are cut from
	args     []fastArg  // a block that every command's arguments are cut from
}

// newPipe returns a pipe from the current block.
func (c *fastCompiler) newPipe() *fastPipe {
	if len(c.pipes) == cap(c.pipes) {
		c.pipes = make([]fastPipe, 0, 16)
	}
	c.pipes = c.pipes[:len(c.pipes)+1]
	return &c.pipes[len(c.pipes)-1]
}

// keepCmds and keepArgs copy a finished list into the shared block and
// return the copy. A block that grows leaves the lists cut from it
// earlier where they are.
func (c *fastCompiler) keepCmds(l []fastCmd) []fastCmd {
	if cap(c.cmds)-len(c.cmds) < len(l) {
		c.cmds = make([]fastCmd, 0, max(32, len(l)))
	}
	n := len(c.cmds)
	c.cmds = append(c.cmds, l...)
	return c.cmds[n:len(c.cmds):len(c.cmds)]
}

func (c *fastCompiler) keepArgs(l []fastArg) []fastArg {
	if len(l) == 0 {
		return nil
	}
	if cap(c.args)-len(c.args) < len(l) {
		c.args = make([]fastArg, 0, max(32, len(l)))
	}
	n := len(c.args)
	c.args = append(c.args, l...)
	return c.args[n:len(c.args):len(c.args)]
}

// tree compiles the tree called name once; a recursive call finds it in
// compiled before its body is done.
func (c *fastCompiler) tree(name string) (*fastTree, bool) {
	if t, ok := c.compiled[name]; ok {
		return t, true
	}
	if c.compiled == nil {
		c.compiled = map[string]*fastTree{}
	}
	tr := c.trees[name]
	if tr == nil || tr.Root == nil {
		return nil, false
	}
	t := &fastTree{}
	c.compiled[name] = t
	nodes, ok := c.list(tr.Root)
	t.nodes = nodes
	return t, ok
}

func (c *fastCompiler) fn(name string) int {
	if i := slices.Index(c.names, name); i >= 0 {
		return i // a template calls a handful of functions
	}
	c.names = append(c.names, name)
	return len(c.names) - 1
}

func (c *fastCompiler) list(l *parse.ListNode) ([]fastNode, bool) {
	if l == nil {
		return nil, true
	}
	out := make([]fastNode, 0, len(l.Nodes))
	for _, n := range l.Nodes {
		var fn fastNode
		var ok bool
		switch n := n.(type) {
		case *parse.TextNode:
			fn, ok = fastNode{op: fText, text: string(n.Text)}, true
		case *parse.CommentNode:
			continue
		case *parse.ActionNode:
			fn.op = fAction
			fn.pipe, ok = c.pipe(n.Pipe)
		case *parse.IfNode:
			fn, ok = c.branch(fIf, &n.BranchNode)
		case *parse.WithNode:
			fn, ok = c.branch(fWith, &n.BranchNode)
		case *parse.RangeNode:
			ok = !n.Pipe.IsAssign
			if ok {
				fn, ok = c.branch(fRange, &n.BranchNode)
			}
		case *parse.BreakNode:
			fn, ok = fastNode{op: fBreak}, true
		case *parse.ContinueNode:
			fn, ok = fastNode{op: fContinue}, true
		case *parse.TemplateNode:
			fn.op = fTemplate
			fn.br = &fastBranch{}
			if fn.br.tmpl, ok = c.tree(n.Name); ok && n.Pipe != nil {
				fn.pipe, ok = c.pipe(n.Pipe)
			}
		}
		if !ok {
			return nil, false
		}
		out = append(out, fn)
	}
	return out, true
}

func (c *fastCompiler) branch(op fastOp, b *parse.BranchNode) (fastNode, bool) {
	n := fastNode{op: op}
	var ok1, ok2, ok3 bool
	n.pipe, ok1 = c.pipe(b.Pipe)
	n.br = &fastBranch{}
	n.br.list, ok2 = c.list(b.List)
	n.br.elseList, ok3 = c.list(b.ElseList)
	return n, ok1 && ok2 && ok3
}

func (c *fastCompiler) pipe(p *parse.PipeNode) (*fastPipe, bool) {
	if p == nil || len(p.Cmds) == 0 {
		return nil, false
	}
	fp := c.newPipe()
	fp.assign = p.IsAssign
	for _, v := range p.Decl {
		if len(v.Ident) != 1 {
			return nil, false
		}
		fp.decl = append(fp.decl, v.Ident[0])
	}
	var buf [2]fastCmd
	cmds := buf[:0]
	for i, cmd := range p.Cmds {
		fc, ok := c.cmd(cmd, i > 0)
		if !ok {
			return nil, false
		}
		cmds = append(cmds, fc)
	}
	fp.cmds = c.keepCmds(cmds)
	return fp, true
}

func (c *fastCompiler) cmd(cmd *parse.CommandNode, final bool) (fastCmd, bool) {
	id, ok := cmd.Args[0].(*parse.IdentifierNode)
	if !ok {
		// An operand: nothing may follow it, nor come from a pipe.
		if final || len(cmd.Args) != 1 {
			return fastCmd{}, false
		}
		a, ok := c.arg(cmd.Args[0])
		return fastCmd{op: cmdValue, args: c.keepArgs([]fastArg{a})}, ok
	}
	fc := fastCmd{op: cmdFunc}
	if builtins[id.Ident] {
		if fc.op, ok = fastBuiltins[id.Ident]; !ok {
			return fastCmd{}, false
		}
	} else {
		fc.fn = c.fn(id.Ident)
	}
	var buf [4]fastArg
	args := buf[:0]
	for _, n := range cmd.Args[1:] {
		a, ok := c.arg(n)
		if !ok {
			return fastCmd{}, false
		}
		args = append(args, a)
	}
	fc.args = c.keepArgs(args)
	return fc, true
}

func (c *fastCompiler) arg(n parse.Node) (fastArg, bool) {
	switch n := n.(type) {
	case *parse.StringNode:
		return fastArg{kind: argConst, val: n.Text}, true
	case *parse.BoolNode:
		return fastArg{kind: argConst, val: n.True}, true
	case *parse.NumberNode:
		// Plain decimal integers only: they are an int both where
		// text/template knows the parameter's type (int) and where it
		// does not (any). Other forms run in text/template.
		t := strings.TrimLeft(n.Text, "+-")
		if !n.IsInt || t == "" || strings.Trim(t, "0123456789") != "" || int64(int(n.Int64)) != n.Int64 {
			return fastArg{}, false
		}
		return fastArg{kind: argConst, val: int(n.Int64)}, true
	case *parse.DotNode:
		return fastArg{kind: argDot}, true
	case *parse.FieldNode:
		return fastArg{kind: argField, fields: n.Ident}, true
	case *parse.VariableNode:
		return fastArg{kind: argVar, val: n.Ident[0], fields: n.Ident[1:]}, true
	case *parse.PipeNode:
		p, ok := c.pipe(n)
		return fastArg{kind: argPipe, val: p}, ok
	case *parse.IdentifierNode:
		if builtins[n.Ident] {
			return fastArg{}, false
		}
		return fastArg{kind: argFunc, fn: int32(c.fn(n.Ident))}, true
	}
	return fastArg{}, false
}

// bind returns the fast functions of p for a binding's function map, or
// nil if one of them has a signature the fast executor does not call.
func (p *fastProg) bind(funcs map[string]any) []fastFunc {
	out := make([]fastFunc, len(p.funcs))
	for i, name := range p.funcs {
		if out[i] = adaptFast(funcs[name]); out[i] == nil {
			return nil
		}
	}
	return out
}

// exec renders p into buf with funcs (from bind). On an error buf holds
// partial output, to be discarded.
func (p *fastProg) exec(buf *bytes.Buffer, funcs []fastFunc) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errFuncFailed
		}
	}()
	s := fastState{buf: buf, funcs: funcs, vars: make([]fastVar, 1, 16)}
	s.vars[0] = fastVar{name: "$"} // the data, nil, as Execute passes it
	_, err = s.walk(nil, p.root)
	return err
}

type fastVar struct {
	name string
	val  any
}

type fastState struct {
	buf   *bytes.Buffer
	funcs []fastFunc
	vars  []fastVar
	args  []any // a stack of evaluated arguments
	depth int   // of {{template}} calls
}

type ctl uint8

const (
	ctlNone ctl = iota
	ctlBreak
	ctlContinue
)

func (s *fastState) walk(dot any, nodes []fastNode) (ctl, error) {
	for i := range nodes {
		n := &nodes[i]
		switch n.op {
		case fText:
			s.buf.WriteString(n.text)
		case fAction:
			v, err := s.pipe(dot, n.pipe)
			if err != nil {
				return ctlNone, err
			}
			if len(n.pipe.decl) == 0 {
				if err := s.print(v); err != nil {
					return ctlNone, err
				}
			}
		case fIf, fWith:
			mark := len(s.vars)
			v, err := s.pipe(dot, n.pipe)
			if err != nil {
				return ctlNone, err
			}
			truth, ok := fastTruth(v)
			if !ok {
				return ctlNone, errBail
			}
			c := ctlNone
			switch {
			case truth && n.op == fWith:
				c, err = s.walk(v, n.br.list)
			case truth:
				c, err = s.walk(dot, n.br.list)
			case n.br.elseList != nil:
				c, err = s.walk(dot, n.br.elseList)
			}
			s.vars = s.vars[:mark]
			if err != nil || c != ctlNone {
				return c, err
			}
		case fRange:
			if c, err := s.walkRange(dot, n); err != nil || c != ctlNone {
				return c, err
			}
		case fTemplate:
			if err := s.walkTemplate(dot, n); err != nil {
				return ctlNone, err
			}
		case fBreak:
			return ctlBreak, nil
		case fContinue:
			return ctlContinue, nil
		}
	}
	return ctlNone, nil
}

// walkTemplate runs a {{template}} call: the called template sees the
// pipeline's value as dot and $, and no other variable.
func (s *fastState) walkTemplate(dot any, n *fastNode) error {
	if s.depth >= maxFastDepth {
		return errBail
	}
	var v any
	if n.pipe != nil {
		var err error
		if v, err = s.pipe(dot, n.pipe); err != nil {
			return err
		}
	}
	vars := s.vars
	s.vars = append(make([]fastVar, 0, 8), fastVar{name: "$", val: v})
	s.depth++
	_, err := s.walk(v, n.br.tmpl.nodes)
	s.depth--
	s.vars = vars
	return err
}

// walkRange runs a range. A {{break}} or {{continue}} of its body ends
// there; a {{continue}} of its else list is the enclosing range's (a
// {{break}} there ends this one, as text/template has it).
func (s *fastState) walkRange(dot any, n *fastNode) (ctl, error) {
	mark0 := len(s.vars)
	defer func() { s.vars = s.vars[:mark0] }()
	val, err := s.pipe(dot, n.pipe)
	if err != nil {
		return ctlNone, err
	}
	mark := len(s.vars)
	decl := len(n.pipe.decl)
	// one runs the body for an element; the pipeline pushed the declared
	// variables, the element's is on top, the index's under it.
	one := func(index, elem any) (stop bool, err error) {
		if decl > 0 {
			s.vars[mark-1].val = elem
		}
		if decl > 1 {
			s.vars[mark-2].val = index
		}
		c, err := s.walk(elem, n.br.list)
		s.vars = s.vars[:mark]
		return c == ctlBreak, err
	}
	ran := false
	switch v := val.(type) {
	case nil:
		// text/template ranges over a missing value as over an empty one.
	case []string:
		ran, err = each(v, one)
	case []KVPair:
		ran, err = each(v, one)
	case []any:
		ran, err = each(v, one)
	case int:
		if decl > 1 {
			return ctlNone, errBail
		}
		for i := range v {
			ran = true
			if stop, err := one(nil, i); stop || err != nil {
				return ctlNone, err
			}
		}
	case map[string]any:
		ran, err = eachEntry(v, one)
	case map[string]string:
		ran, err = eachEntry(v, one)
	default:
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
			return ctlNone, errBail
		}
		for i := range rv.Len() {
			ran = true
			if stop, err := one(i, rv.Index(i).Interface()); stop || err != nil {
				return ctlNone, err
			}
		}
	}
	if err != nil {
		return ctlNone, err
	}
	if !ran && n.br.elseList != nil {
		c, err := s.walk(dot, n.br.elseList)
		if c == ctlBreak {
			c = ctlNone
		}
		return c, err
	}
	return ctlNone, nil
}

// each runs one for l's elements, with their indexes, until one stops
// the range; ran says whether there was an element.
func each[E any](l []E, one func(index, elem any) (stop bool, err error)) (ran bool, err error) {
	for i, e := range l {
		if stop, err := one(i, e); stop || err != nil {
			return true, err
		}
	}
	return len(l) > 0, nil
}

// eachEntry is each over a map's entries in key order, with the keys as
// indexes. It walks the map as it was when the range began, as
// text/template does.
func eachEntry[V any](m map[string]V, one func(index, elem any) (stop bool, err error)) (ran bool, err error) {
	keys := slices.Sorted(maps.Keys(m))
	vals := make([]V, len(keys))
	for i, k := range keys {
		vals[i] = m[k]
	}
	for i, k := range keys {
		if stop, err := one(k, vals[i]); stop || err != nil {
			return true, err
		}
	}
	return len(keys) > 0, nil
}

func (s *fastState) pipe(dot any, p *fastPipe) (any, error) {
	var v any
	for i := range p.cmds {
		var err error
		if v, err = s.cmd(dot, &p.cmds[i], v, i > 0); err != nil {
			return nil, err
		}
	}
	for _, name := range p.decl {
		if !p.assign {
			s.vars = append(s.vars, fastVar{name: name, val: v})
			continue
		}
		i := s.lookup(name)
		if i < 0 {
			return nil, errBail
		}
		s.vars[i].val = v
	}
	return v, nil
}

// lookup returns the index of the innermost variable called name, or -1.
func (s *fastState) lookup(name string) int {
	for i := len(s.vars) - 1; i >= 0; i-- {
		if s.vars[i].name == name {
			return i
		}
	}
	return -1
}

func (s *fastState) cmd(dot any, c *fastCmd, final any, hasFinal bool) (any, error) {
	switch c.op {
	case cmdValue:
		return s.arg(dot, &c.args[0])
	case cmdAnd, cmdOr:
		// Arguments are evaluated until one decides; that one is the
		// value.
		if len(c.args) == 0 && !hasFinal || hasFinal && final == nil {
			return nil, errBail
		}
		var v any
		for i := range c.args {
			var err error
			if v, err = s.arg(dot, &c.args[i]); err != nil {
				return nil, err
			}
			if v == nil {
				return nil, errBail
			}
			if t, _ := fastTruth(v); t == (c.op == cmdOr) {
				return v, nil
			}
		}
		if hasFinal {
			v = final
		}
		return v, nil
	}
	base := len(s.args)
	defer func() { s.args = s.args[:base] }()
	for i := range c.args {
		v, err := s.arg(dot, &c.args[i])
		if err != nil {
			return nil, err
		}
		s.args = append(s.args, v)
	}
	if hasFinal {
		s.args = append(s.args, final)
	}
	args := s.args[base:]
	if slices.Contains(args, nil) {
		return nil, errBail
	}
	switch c.op {
	case cmdFunc:
		return s.funcs[c.fn](args)
	case cmdPrintf:
		if len(args) == 0 {
			return nil, errBail
		}
		format, ok := args[0].(string)
		if !ok {
			return nil, errBail
		}
		return fmt.Sprintf(format, args[1:]...), nil
	case cmdPrint:
		return fmt.Sprint(args...), nil
	case cmdNot:
		if len(args) != 1 {
			return nil, errBail
		}
		t, _ := fastTruth(args[0])
		return !t, nil
	case cmdEq, cmdNe:
		if len(args) < 2 || c.op == cmdNe && len(args) != 2 {
			return nil, errBail
		}
		eq, ok := fastEq(args[0], args[1:])
		if !ok {
			return nil, errBail
		}
		return eq == (c.op == cmdEq), nil
	case cmdLen:
		if len(args) != 1 {
			return nil, errBail
		}
		switch v := args[0].(type) {
		case string:
			return len(v), nil
		case []string:
			return len(v), nil
		case []KVPair:
			return len(v), nil
		}
		switch rv := reflect.ValueOf(args[0]); rv.Kind() {
		case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
			return rv.Len(), nil
		}
	case cmdIndex:
		if len(args) == 0 {
			return nil, errBail
		}
		return fastIndex(args[0], args[1:])
	}
	return nil, errBail
}

// fastIndex is index over the maps and lists of json, jsonArray, ls and
// their kind: a missing map key is the map's zero value (nil for any), an
// index out of range falls back (text/template's error).
func fastIndex(item any, indexes []any) (any, error) {
	for _, ix := range indexes {
		switch it := item.(type) {
		case map[string]any:
			k, ok := ix.(string)
			if !ok {
				return nil, errBail
			}
			item = it[k]
		case map[string]string:
			k, ok := ix.(string)
			if !ok {
				return nil, errBail
			}
			item = it[k]
		case []any:
			i, ok := ix.(int)
			if !ok || i < 0 || i >= len(it) {
				return nil, errBail
			}
			item = it[i]
		case []string:
			i, ok := ix.(int)
			if !ok || i < 0 || i >= len(it) {
				return nil, errBail
			}
			item = it[i]
		default:
			return nil, errBail
		}
	}
	return item, nil
}

// fastEq is eq for arguments of one type: string, int or bool.
func fastEq(a any, bs []any) (eq, ok bool) {
	for _, b := range bs {
		switch a := a.(type) {
		case string:
			b, ok := b.(string)
			if !ok {
				return false, false
			}
			eq = a == b
		case int:
			b, ok := b.(int)
			if !ok {
				return false, false
			}
			eq = a == b
		case bool:
			b, ok := b.(bool)
			if !ok {
				return false, false
			}
			eq = a == b
		default:
			return false, false
		}
		if eq {
			return true, true
		}
	}
	return false, true
}

func (s *fastState) arg(dot any, a *fastArg) (any, error) {
	switch a.kind {
	case argConst:
		return a.val, nil
	case argDot:
		return dot, nil
	case argField:
		return fastFields(dot, a.fields)
	case argVar:
		i := s.lookup(a.val.(string))
		if i < 0 {
			return nil, errBail
		}
		return fastFields(s.vars[i].val, a.fields)
	case argPipe:
		return s.pipe(dot, a.val.(*fastPipe))
	case argFunc:
		return s.funcs[a.fn](nil)
	}
	return nil, errBail
}

// fastFields follows a chain of field names from v: struct fields (not
// methods) and map keys that are present.
func fastFields(v any, fields []string) (any, error) {
	for _, name := range fields {
		var ok bool
		if v, ok = fastField(v, name); !ok {
			return nil, errBail
		}
	}
	return v, nil
}

func fastField(v any, name string) (any, bool) {
	switch v := v.(type) {
	case KVPair:
		switch name {
		case "Key":
			return v.Key, true
		case "Value":
			return v.Value, true
		}
		return nil, false
	case map[string]any:
		x, ok := v[name]
		return x, ok && x != nil
	case map[string]string:
		x, ok := v[name]
		return x, ok
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Struct {
		return nil, false
	}
	t := rv.Type()
	if _, ok := reflect.PointerTo(t).MethodByName(name); ok {
		return nil, false // a method (of T or *T): text/template calls it
	}
	f, ok := t.FieldByName(name)
	if !ok || !f.IsExported() || len(f.Index) != 1 {
		return nil, false
	}
	x := rv.Field(f.Index[0]).Interface()
	return x, x != nil
}

var (
	errorType    = reflect.TypeFor[error]()
	stringerType = reflect.TypeFor[fmt.Stringer]()
)

// print writes v as text/template's printValue does.
func (s *fastState) print(v any) error {
	switch v := v.(type) {
	case string:
		s.buf.WriteString(v)
		return nil
	case int:
		s.buf.Write(strconv.AppendInt(s.buf.AvailableBuffer(), int64(v), 10))
		return nil
	case bool, []string, KVPair, float64:
		fmt.Fprint(s.buf, v)
		return nil
	case nil:
		return errBail // text/template prints "<no value>"
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Chan, reflect.Func, reflect.UnsafePointer, reflect.Interface:
		return errBail
	}
	// A value whose pointer (not itself) is an error or a Stringer is
	// printed through the pointer when text/template can address it.
	t := rv.Type()
	if !t.Implements(errorType) && !t.Implements(stringerType) {
		if pt := reflect.PointerTo(t); pt.Implements(errorType) || pt.Implements(stringerType) {
			return errBail
		}
	}
	fmt.Fprint(s.buf, v)
	return nil
}

// fastTruth is text/template's truth of a value.
func fastTruth(v any) (truth, ok bool) {
	switch v := v.(type) {
	case nil:
		return false, true
	case string:
		return v != "", true
	case bool:
		return v, true
	case int:
		return v != 0, true
	case []string:
		return len(v) > 0, true
	case []KVPair:
		return len(v) > 0, true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return rv.Len() > 0, true
	case reflect.Bool:
		return rv.Bool(), true
	case reflect.Complex64, reflect.Complex128:
		return rv.Complex() != 0, true
	case reflect.Chan, reflect.Func, reflect.Pointer, reflect.UnsafePointer, reflect.Interface:
		return !rv.IsNil(), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int() != 0, true
	case reflect.Float32, reflect.Float64:
		return rv.Float() != 0, true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return rv.Uint() != 0, true
	case reflect.Struct:
		return true, true
	}
	return false, false
}

// adaptFast returns a fastFunc calling f, or nil if f's signature is not
// one it knows. The arguments must have the parameters' exact types, as
// text/template requires of them (it also dereferences a pointer or
// takes an address; those renders fall back to it). A variadic gets a
// slice of its own, never nil, as from reflect.Value.Call (variadic).
func adaptFast(f any) fastFunc {
	switch f := f.(type) {
	// One string: the store functions and most of confd's.
	case func(string) string:
		return str1Func(f)
	case func(string) bool:
		return str1Func(f)
	case func(string) []string:
		return str1Func(f)
	case func(string) (string, error):
		return str1FuncErr(f)
	case func(string) ([]string, error):
		return str1FuncErr(f)
	case func(string) ([]KVPair, error):
		return str1FuncErr(f)
	case func(string) (KVPair, error):
		return str1FuncErr(f)
	case func(string) (int, error):
		return str1FuncErr(f)
	case func(string) (bool, error):
		return str1FuncErr(f)
	case func(string) (map[string]any, error):
		return str1FuncErr(f)
	case func(string) ([]any, error):
		return str1FuncErr(f)
	// A string and more strings: getv, getenv, service.
	case func(string, ...string) (string, error):
		return func(a []any) (any, error) {
			if s, ok := str1(a); ok {
				return result(f(s, noStrings...)) // no slice to allocate
			}
			ss, ok := strs(a, 1, -1)
			if !ok {
				return nil, errBail
			}
			return result(f(ss[0], ss[1:]...))
		}
	case func(string, ...string) string:
		return strsFunc(1, -1, func(ss []string) (string, error) { return f(ss[0], ss[1:]...), nil })
	case func(string, ...string) ([]backends.ServiceInstance, error):
		return strsFunc(1, -1, func(ss []string) ([]backends.ServiceInstance, error) { return f(ss[0], ss[1:]...) })
	// Fixed strings.
	case func(string, string) string:
		return strsFunc(2, 2, func(ss []string) (string, error) { return f(ss[0], ss[1]), nil })
	case func(string, string) bool:
		return strsFunc(2, 2, func(ss []string) (bool, error) { return f(ss[0], ss[1]), nil })
	case func(string, string) []string:
		return strsFunc(2, 2, func(ss []string) ([]string, error) { return f(ss[0], ss[1]), nil })
	case func(string, string, string) string:
		return strsFunc(3, 3, func(ss []string) (string, error) { return f(ss[0], ss[1], ss[2]), nil })
	case func(string, string, string, int) string: // strings.Replace
		return func(a []any) (any, error) {
			if len(a) != 4 {
				return nil, errBail
			}
			ss, ok := strs(a[:3], 3, 3)
			n, ok2 := a[3].(int)
			if !ok || !ok2 {
				return nil, errBail
			}
			return f(ss[0], ss[1], ss[2], n), nil
		}
	case func() ([]Service, error):
		return noArgFuncErr(f)
	case func() (string, error): // hostname
		return noArgFuncErr(f)
	// Lists and numbers.
	case func([]string, string) string: // join
		return typed2Func(f)
	case func([]string) []string:
		return typed1Func(f)
	case func([]KVPair) []KVPair:
		return typed1Func(f)
	case func(int, int) int:
		return typed2Func(f)
	case func(int, int) []int:
		return typed2Func(f)
	case func(int, string) string: // sprig's trunc, indent
		return typed2Func(f)
	// Anything: text/template passes any non-nil value as it is.
	case func(any) any:
		return typed1Func(f)
	case func(any) string:
		return typed1Func(f)
	case func(any) bool:
		return typed1Func(f)
	case func(any) []string:
		return typed1Func(f)
	case func(...any) string:
		return func(a []any) (any, error) { return f(variadic(a)...), nil }
	case func(...any) any:
		return func(a []any) (any, error) { return f(variadic(a)...), nil }
	case func(...any) []any:
		return func(a []any) (any, error) { return f(variadic(a)...), nil }
	case func(...any) map[string]any:
		return func(a []any) (any, error) { return f(variadic(a)...), nil }
	case func(...any) (map[string]any, error):
		return func(a []any) (any, error) { return result(f(variadic(a)...)) }
	case func(any, ...any) any: // sprig's default
		return func(a []any) (any, error) {
			if len(a) < 1 {
				return nil, errBail
			}
			return f(a[0], variadic(a[1:])...), nil
		}
	case func(any, any, bool) any: // sprig's ternary
		return func(a []any) (any, error) {
			if len(a) != 3 {
				return nil, errBail
			}
			b, ok := a[2].(bool)
			if !ok {
				return nil, errBail
			}
			return f(a[0], a[1], b), nil
		}
	}
	return nil
}

// noArgFuncErr adapts a function without arguments that may fail.
func noArgFuncErr[R any](f func() (R, error)) fastFunc {
	return func(a []any) (any, error) {
		if len(a) != 0 {
			return nil, errBail
		}
		return result(f())
	}
}

// str1Func adapts a function of one string.
func str1Func[R any](f func(string) R) fastFunc {
	return func(a []any) (any, error) {
		s, ok := str1(a)
		if !ok {
			return nil, errBail
		}
		return f(s), nil
	}
}

// str1FuncErr adapts a function of one string that may fail.
func str1FuncErr[R any](f func(string) (R, error)) fastFunc {
	return func(a []any) (any, error) {
		s, ok := str1(a)
		if !ok {
			return nil, errBail
		}
		return result(f(s))
	}
}

// strsFunc adapts a function of min to max strings (max -1: no limit).
func strsFunc[R any](min, max int, f func([]string) (R, error)) fastFunc {
	return func(a []any) (any, error) {
		ss, ok := strs(a, min, max)
		if !ok {
			return nil, errBail
		}
		return result(f(ss))
	}
}

// typed1Func adapts a function of one argument of type T.
func typed1Func[T, R any](f func(T) R) fastFunc {
	return func(a []any) (any, error) {
		if len(a) != 1 {
			return nil, errBail
		}
		v, ok := a[0].(T)
		if !ok {
			return nil, errBail
		}
		return f(v), nil
	}
}

// typed2Func adapts a function of two arguments of types T1 and T2.
func typed2Func[T1, T2, R any](f func(T1, T2) R) fastFunc {
	return func(a []any) (any, error) {
		if len(a) != 2 {
			return nil, errBail
		}
		x, ok1 := a[0].(T1)
		y, ok2 := a[1].(T2)
		if !ok1 || !ok2 {
			return nil, errBail
		}
		return f(x, y), nil
	}
}

// noStrings is an empty variadic ...string: empty but not nil, as
// reflect.Value.Call passes it.
var noStrings = []string{}

// variadic returns a copy of a for a variadic ...any: a are the executor's
// argument stack, and sprig's list returns its argument. reflect.Value.Call
// passes an empty, not nil, slice for no arguments; so does variadic (a
// shared one: with no elements and no capacity it cannot be changed).
func variadic(a []any) []any {
	if len(a) == 0 {
		return noAnys
	}
	return slices.Clone(a)
}

var noAnys = []any{}

// result turns a function's (value, error) into the fast executor's.
func result[T any](v T, err error) (any, error) {
	if err != nil {
		return nil, errFuncFailed
	}
	return v, nil
}

func str1(a []any) (string, bool) {
	if len(a) != 1 {
		return "", false
	}
	s, ok := a[0].(string)
	return s, ok
}

// strs returns a as strings; there must be at least min and, unless max
// is -1, at most max.
func strs(a []any, min, max int) ([]string, bool) {
	if len(a) < min || max >= 0 && len(a) > max {
		return nil, false
	}
	out := make([]string, len(a))
	for i, v := range a {
		s, ok := v.(string)
		if !ok {
			return nil, false
		}
		out[i] = s
	}
	return out, true
}
