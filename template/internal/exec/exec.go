package exec

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/template/parse"
)

// ErrBail abandons a render for something the executor does not handle:
// the caller runs the template in text/template instead, and may as well
// do so for every later render.
var ErrBail = errors.New("template: outside the fast executor")

// ErrFuncFailed abandons a render on a function's error or panic: the
// caller runs the render again in text/template, which reports it in its
// own words. Later renders may use the executor again.
var ErrFuncFailed = errors.New("template: a function failed")

// Func calls a template function with evaluated arguments. It returns
// ErrBail when the arguments are not what the function takes, and
// ErrFuncFailed when the function fails. Adapters make one from a
// function value.
type Func func(args []any) (any, error)

type opcode uint8

const (
	fText opcode = iota
	fAction
	fIf
	fWith
	fRange
	fBreak
	fContinue
	fTemplate
)

// node is one node of a compiled template. It is kept small: a
// long-running daemon keeps every template compiled.
type node struct {
	op   opcode
	text string      // a substring of the template's text, or a copy
	pipe *pipeline   // nil for a {{template}} without one
	br   *branchBody // if, with, range and template
}

// branchBody holds what an if, with or range runs, or what a {{template}}
// calls.
type branchBody struct {
	list, elseList []node
	tmpl           *progTree
}

// progTree is a compiled template tree ({{define}}).
type progTree struct {
	nodes []node
}

// maxDepth bounds nested {{template}} calls; deeper renders go to
// text/template (whose own limit is 100,000).
const maxDepth = 1000

// pipeline is a pipeline: commands, and the variables it declares (or,
// with assign, sets).
type pipeline struct {
	decl   []string
	assign bool
	cmds   []command
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

// runs are the text/template builtins the fast executor runs.
var runs = map[string]uint8{
	"printf": cmdPrintf, "print": cmdPrint, "not": cmdNot, "and": cmdAnd, "or": cmdOr,
	"eq": cmdEq, "ne": cmdNe, "len": cmdLen, "index": cmdIndex,
}

type command struct {
	op   uint8
	fn   int
	args []operand
}

const (
	argConst uint8 = iota
	argDot
	argField // fields of dot
	argVar   // a variable, then fields
	argPipe
	argFunc // a function called without arguments
)

// operand is an operand. val is the constant (argConst), the variable's
// name (argVar) or the *pipeline (argPipe).
type operand struct {
	kind   uint8
	fn     int32 // argFunc
	val    any
	fields []string // argField, argVar
}

// Prog is a compiled template. It is read-only once compiled, so one Prog
// serves any number of concurrent Exec calls, each with its own Funcs.
type Prog struct {
	root  []node
	funcs []string // the functions it calls; command.fn and operand.fn index it
	all   bool     // every tree it was compiled from is compiled (AllTrees)
}

// builtins are text/template's own functions.
var builtins = map[string]bool{
	"and": true, "call": true, "html": true, "index": true, "slice": true, "js": true, "len": true,
	"not": true, "or": true, "print": true, "printf": true, "println": true, "urlquery": true,
	"eq": true, "ge": true, "gt": true, "le": true, "lt": true, "ne": true,
}

// IsBuiltin reports whether name is one of text/template's own functions
// (and, call, eq, index, len, printf, ...), which a template calls
// without a function map.
func IsBuiltin(name string) bool { return builtins[name] }

// Compile compiles the template called name of trees (the trees of one
// text/template parse: the template and its {{define}}s) and the ones it
// calls, or returns nil if they use anything the executor does not run.
// The trees may have been parsed with parse.SkipFuncCheck; the program
// does not keep them. text is the text they were parsed from: the
// program's text is cut from it rather than copied.
func Compile(text string, trees map[string]*parse.Tree, name string) *Prog {
	c := &compiler{text: text, trees: trees}
	root, ok := c.tree(name)
	if !ok {
		return nil
	}
	return &Prog{root: root.nodes, funcs: c.names, all: len(c.compiled) == len(trees)}
}

// compiler compiles trees. A template is compiled at every parse and
// in one-shot mode rendered once, so the compiler allocates its pipes,
// commands and arguments in blocks rather than one by one.
type compiler struct {
	text     string   // the text the trees were parsed from
	names    []string // the functions called, in order of first call
	trees    map[string]*parse.Tree
	compiled map[string]*progTree
	pipes    []pipeline // a block of pipes to hand out
	cmds     []command  // a block that every pipe's commands are cut from
	args     []operand  // a block that every command's arguments are cut from
}

// newPipe returns a pipe from the current block.
func (c *compiler) newPipe() *pipeline {
	if len(c.pipes) == cap(c.pipes) {
		c.pipes = make([]pipeline, 0, 16)
	}
	c.pipes = c.pipes[:len(c.pipes)+1]
	return &c.pipes[len(c.pipes)-1]
}

// keepCmds and keepArgs copy a finished list into the shared block and
// return the copy. A block that grows leaves the lists cut from it
// earlier where they are.
func (c *compiler) keepCmds(l []command) []command {
	if cap(c.cmds)-len(c.cmds) < len(l) {
		c.cmds = make([]command, 0, max(32, len(l)))
	}
	n := len(c.cmds)
	c.cmds = append(c.cmds, l...)
	return c.cmds[n:len(c.cmds):len(c.cmds)]
}

func (c *compiler) keepArgs(l []operand) []operand {
	if len(l) == 0 {
		return nil
	}
	if cap(c.args)-len(c.args) < len(l) {
		c.args = make([]operand, 0, max(32, len(l)))
	}
	n := len(c.args)
	c.args = append(c.args, l...)
	return c.args[n:len(c.args):len(c.args)]
}

// tree compiles the tree called name once; a recursive call finds it in
// compiled before its body is done.
func (c *compiler) tree(name string) (*progTree, bool) {
	if t, ok := c.compiled[name]; ok {
		return t, true
	}
	if c.compiled == nil {
		c.compiled = map[string]*progTree{}
	}
	tr := c.trees[name]
	if tr == nil || tr.Root == nil {
		return nil, false
	}
	t := &progTree{}
	c.compiled[name] = t
	nodes, ok := c.list(tr.Root)
	t.nodes = nodes
	return t, ok
}

// cut returns the text of n: a substring of c.text where n's text is
// there (at n.Pos, the lexer's offset), or else a copy.
func (c *compiler) cut(n *parse.TextNode) string {
	if p := int(n.Pos); p >= 0 && p+len(n.Text) <= len(c.text) && c.text[p:p+len(n.Text)] == string(n.Text) {
		return c.text[p : p+len(n.Text)]
	}
	return string(n.Text)
}

func (c *compiler) fn(name string) int {
	if i := slices.Index(c.names, name); i >= 0 {
		return i // a template calls a handful of functions
	}
	c.names = append(c.names, name)
	return len(c.names) - 1
}

func (c *compiler) list(l *parse.ListNode) ([]node, bool) {
	if l == nil {
		return nil, true
	}
	out := make([]node, 0, len(l.Nodes))
	for _, n := range l.Nodes {
		var fn node
		var ok bool
		switch n := n.(type) {
		case *parse.TextNode:
			fn, ok = node{op: fText, text: c.cut(n)}, true
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
			fn, ok = node{op: fBreak}, true
		case *parse.ContinueNode:
			fn, ok = node{op: fContinue}, true
		case *parse.TemplateNode:
			fn.op = fTemplate
			fn.br = &branchBody{}
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

func (c *compiler) branch(op opcode, b *parse.BranchNode) (node, bool) {
	n := node{op: op}
	var ok1, ok2, ok3 bool
	n.pipe, ok1 = c.pipe(b.Pipe)
	n.br = &branchBody{}
	n.br.list, ok2 = c.list(b.List)
	n.br.elseList, ok3 = c.list(b.ElseList)
	return n, ok1 && ok2 && ok3
}

func (c *compiler) pipe(p *parse.PipeNode) (*pipeline, bool) {
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
	var buf [2]command
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

func (c *compiler) cmd(cmd *parse.CommandNode, final bool) (command, bool) {
	id, ok := cmd.Args[0].(*parse.IdentifierNode)
	if !ok {
		// An operand: nothing may follow it, nor come from a pipe.
		if final || len(cmd.Args) != 1 {
			return command{}, false
		}
		a, ok := c.arg(cmd.Args[0])
		return command{op: cmdValue, args: c.keepArgs([]operand{a})}, ok
	}
	fc := command{op: cmdFunc}
	if builtins[id.Ident] {
		if fc.op, ok = runs[id.Ident]; !ok {
			return command{}, false
		}
	} else {
		fc.fn = c.fn(id.Ident)
	}
	var buf [4]operand
	args := buf[:0]
	for _, n := range cmd.Args[1:] {
		a, ok := c.arg(n)
		if !ok {
			return command{}, false
		}
		args = append(args, a)
	}
	fc.args = c.keepArgs(args)
	return fc, true
}

func (c *compiler) arg(n parse.Node) (operand, bool) {
	switch n := n.(type) {
	case *parse.StringNode:
		return operand{kind: argConst, val: n.Text}, true
	case *parse.BoolNode:
		return operand{kind: argConst, val: n.True}, true
	case *parse.NumberNode:
		// Plain decimal integers only: they are an int both where
		// text/template knows the parameter's type (int) and where it
		// does not (any). Other forms run in text/template.
		t := strings.TrimLeft(n.Text, "+-")
		if !n.IsInt || t == "" || strings.Trim(t, "0123456789") != "" || int64(int(n.Int64)) != n.Int64 {
			return operand{}, false
		}
		return operand{kind: argConst, val: int(n.Int64)}, true
	case *parse.DotNode:
		return operand{kind: argDot}, true
	case *parse.FieldNode:
		return operand{kind: argField, fields: n.Ident}, true
	case *parse.VariableNode:
		return operand{kind: argVar, val: n.Ident[0], fields: n.Ident[1:]}, true
	case *parse.PipeNode:
		p, ok := c.pipe(n)
		return operand{kind: argPipe, val: p}, ok
	case *parse.IdentifierNode:
		if builtins[n.Ident] {
			return operand{}, false
		}
		return operand{kind: argFunc, fn: int32(c.fn(n.Ident))}, true
	}
	return operand{}, false
}

// AllTrees reports whether p was compiled from every tree it was given
// (a {{define}} that no {{template}} reached is not compiled). Then Funcs
// holds every function the trees call: the compiler visits every node of
// what it compiles and gives up on a node it does not know.
func (p *Prog) AllTrees() bool { return p.all }

// Funcs returns the names of the functions p calls (builtins aside), in
// the order Bind binds them. The caller must not change it.
func (p *Prog) Funcs() []string { return p.funcs }

// Bind returns the Funcs that Exec calls for the function map funcs
// (which holds every name of p.Funcs), made by a, or nil if one of them
// has a signature a does not know.
func (p *Prog) Bind(funcs map[string]any, a *Adapters) []Func {
	out := make([]Func, len(p.funcs))
	for i, name := range p.funcs {
		if out[i] = a.Adapt(funcs[name]); out[i] == nil {
			return nil
		}
	}
	return out
}

// Exec renders p into buf with funcs (from Bind), with nil as the data
// (dot and $), as confit's templates are executed. It returns nil when it
// rendered what text/template renders, ErrBail or ErrFuncFailed when the
// caller must render with text/template instead. On an error buf holds
// partial output, to be discarded.
func (p *Prog) Exec(buf *bytes.Buffer, funcs []Func) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = ErrFuncFailed
		}
	}()
	s := state{buf: buf, funcs: funcs, vars: make([]variable, 1, 16)}
	s.vars[0] = variable{name: "$"} // the data, nil, as Execute passes it
	if _, err = s.walk(nil, p.root); err == nil {
		renders.Add(1)
	}
	return err
}

// renders counts the Exec calls that rendered, for the differential
// tests (which render through the template package) to tell a render of
// the executor from one that fell back.
var renders atomic.Int64

type variable struct {
	name string
	val  any
}

type state struct {
	buf   *bytes.Buffer
	funcs []Func
	vars  []variable
	args  []any // a stack of evaluated arguments
	depth int   // of {{template}} calls
}

type ctl uint8

const (
	ctlNone ctl = iota
	ctlBreak
	ctlContinue
)

func (s *state) walk(dot any, nodes []node) (ctl, error) {
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
			truth, ok := truthOf(v)
			if !ok {
				return ctlNone, ErrBail
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
func (s *state) walkTemplate(dot any, n *node) error {
	if s.depth >= maxDepth {
		return ErrBail
	}
	var v any
	if n.pipe != nil {
		var err error
		if v, err = s.pipe(dot, n.pipe); err != nil {
			return err
		}
	}
	vars := s.vars
	s.vars = append(make([]variable, 0, 8), variable{name: "$", val: v})
	s.depth++
	_, err := s.walk(v, n.br.tmpl.nodes)
	s.depth--
	s.vars = vars
	return err
}

// walkRange runs a range. A {{break}} or {{continue}} of its body ends
// there; a {{continue}} of its else list is the enclosing range's (a
// {{break}} there ends this one, as text/template has it).
func (s *state) walkRange(dot any, n *node) (ctl, error) {
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
	case []any:
		ran, err = each(v, one)
	case int:
		if decl > 1 {
			return ctlNone, ErrBail
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
			return ctlNone, ErrBail
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

func (s *state) pipe(dot any, p *pipeline) (any, error) {
	var v any
	for i := range p.cmds {
		var err error
		if v, err = s.cmd(dot, &p.cmds[i], v, i > 0); err != nil {
			return nil, err
		}
	}
	for _, name := range p.decl {
		if !p.assign {
			s.vars = append(s.vars, variable{name: name, val: v})
			continue
		}
		i := s.lookup(name)
		if i < 0 {
			return nil, ErrBail
		}
		s.vars[i].val = v
	}
	return v, nil
}

// lookup returns the index of the innermost variable called name, or -1.
func (s *state) lookup(name string) int {
	for i := len(s.vars) - 1; i >= 0; i-- {
		if s.vars[i].name == name {
			return i
		}
	}
	return -1
}

func (s *state) cmd(dot any, c *command, final any, hasFinal bool) (any, error) {
	switch c.op {
	case cmdValue:
		return s.arg(dot, &c.args[0])
	case cmdAnd, cmdOr:
		// Arguments are evaluated until one decides; that one is the
		// value.
		if len(c.args) == 0 && !hasFinal || hasFinal && final == nil {
			return nil, ErrBail
		}
		var v any
		for i := range c.args {
			var err error
			if v, err = s.arg(dot, &c.args[i]); err != nil {
				return nil, err
			}
			if v == nil {
				return nil, ErrBail
			}
			if t, _ := truthOf(v); t == (c.op == cmdOr) {
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
		return nil, ErrBail
	}
	switch c.op {
	case cmdFunc:
		return s.funcs[c.fn](args)
	case cmdPrintf:
		if len(args) == 0 {
			return nil, ErrBail
		}
		format, ok := args[0].(string)
		if !ok {
			return nil, ErrBail
		}
		return fmt.Sprintf(format, args[1:]...), nil
	case cmdPrint:
		return fmt.Sprint(args...), nil
	case cmdNot:
		if len(args) != 1 {
			return nil, ErrBail
		}
		t, _ := truthOf(args[0])
		return !t, nil
	case cmdEq, cmdNe:
		if len(args) < 2 || c.op == cmdNe && len(args) != 2 {
			return nil, ErrBail
		}
		eq, ok := equal(args[0], args[1:])
		if !ok {
			return nil, ErrBail
		}
		return eq == (c.op == cmdEq), nil
	case cmdLen:
		if len(args) != 1 {
			return nil, ErrBail
		}
		switch v := args[0].(type) {
		case string:
			return len(v), nil
		case []string:
			return len(v), nil
		}
		switch rv := reflect.ValueOf(args[0]); rv.Kind() {
		case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
			return rv.Len(), nil
		}
	case cmdIndex:
		if len(args) == 0 {
			return nil, ErrBail
		}
		return indexOf(args[0], args[1:])
	}
	return nil, ErrBail
}

// indexOf is index over the maps and lists of json, jsonArray, ls and
// their kind: a missing map key is the map's zero value (nil for any), an
// index out of range falls back (text/template's error).
func indexOf(item any, indexes []any) (any, error) {
	for _, ix := range indexes {
		switch it := item.(type) {
		case map[string]any:
			k, ok := ix.(string)
			if !ok {
				return nil, ErrBail
			}
			item = it[k]
		case map[string]string:
			k, ok := ix.(string)
			if !ok {
				return nil, ErrBail
			}
			item = it[k]
		case []any:
			i, ok := ix.(int)
			if !ok || i < 0 || i >= len(it) {
				return nil, ErrBail
			}
			item = it[i]
		case []string:
			i, ok := ix.(int)
			if !ok || i < 0 || i >= len(it) {
				return nil, ErrBail
			}
			item = it[i]
		default:
			return nil, ErrBail
		}
	}
	return item, nil
}

// equal is eq for arguments of one type: string, int or bool.
func equal(a any, bs []any) (eq, ok bool) {
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

func (s *state) arg(dot any, a *operand) (any, error) {
	switch a.kind {
	case argConst:
		return a.val, nil
	case argDot:
		return dot, nil
	case argField:
		return fieldsOf(dot, a.fields)
	case argVar:
		i := s.lookup(a.val.(string))
		if i < 0 {
			return nil, ErrBail
		}
		return fieldsOf(s.vars[i].val, a.fields)
	case argPipe:
		return s.pipe(dot, a.val.(*pipeline))
	case argFunc:
		return s.funcs[a.fn](nil)
	}
	return nil, ErrBail
}

// fieldsOf follows a chain of field names from v: struct fields (not
// methods) and map keys that are present.
func fieldsOf(v any, fields []string) (any, error) {
	for _, name := range fields {
		var ok bool
		if v, ok = fieldOf(v, name); !ok {
			return nil, ErrBail
		}
	}
	return v, nil
}

func fieldOf(v any, name string) (any, bool) {
	switch v := v.(type) {
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
	i := structField(rv.Type(), name)
	if i < 0 {
		return nil, false
	}
	x := rv.Field(i).Interface()
	return x, x != nil
}

// fieldKey names a field of a struct type.
type fieldKey struct {
	t    reflect.Type
	name string
}

// fieldIndexes caches structField's answers: a template reads the same
// few fields (.Key, .Value, .Address) of every element of a list.
var fieldIndexes sync.Map // fieldKey -> int

// structField returns the index of t's exported field called name, or -1
// if there is none, it is promoted from an embedded struct, or a method
// (of t or *t) has the name: text/template calls the method.
func structField(t reflect.Type, name string) int {
	k := fieldKey{t, name}
	if i, ok := fieldIndexes.Load(k); ok {
		return i.(int)
	}
	i := -1
	if _, ok := reflect.PointerTo(t).MethodByName(name); !ok {
		if f, ok := t.FieldByName(name); ok && f.IsExported() && len(f.Index) == 1 {
			i = f.Index[0]
		}
	}
	fieldIndexes.Store(k, i)
	return i
}

var (
	errorType    = reflect.TypeFor[error]()
	stringerType = reflect.TypeFor[fmt.Stringer]()
)

// print writes v as text/template's printValue does.
func (s *state) print(v any) error {
	switch v := v.(type) {
	case string:
		s.buf.WriteString(v)
		return nil
	case int:
		s.buf.Write(strconv.AppendInt(s.buf.AvailableBuffer(), int64(v), 10))
		return nil
	case bool, []string, float64:
		fmt.Fprint(s.buf, v)
		return nil
	case nil:
		return ErrBail // text/template prints "<no value>"
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Chan, reflect.Func, reflect.UnsafePointer, reflect.Interface:
		return ErrBail
	}
	// A value whose pointer (not itself) is an error or a Stringer is
	// printed through the pointer when text/template can address it.
	t := rv.Type()
	if !t.Implements(errorType) && !t.Implements(stringerType) {
		if pt := reflect.PointerTo(t); pt.Implements(errorType) || pt.Implements(stringerType) {
			return ErrBail
		}
	}
	fmt.Fprint(s.buf, v)
	return nil
}

// truthOf is text/template's truth of a value.
func truthOf(v any) (truth, ok bool) {
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
