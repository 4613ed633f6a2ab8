package template

import (
	"slices"
	"strconv"
	"strings"
)

// parseFast compiles text for the fast executor straight from the text,
// without text/template/parse, whose parse was most of a one-shot run of
// many small templates (~100 µs and 1,100 allocations for 50 lines). It
// reads a subset of the template language: the default delimiters, text,
// comments and trim markers, if/else/else if/with/else with/range/end,
// break and continue, pipelines with declarations, and operands that are
// strings, raw strings, decimal integers, booleans, dot, fields, variables
// and parenthesized pipelines. Anything else, and anything it finds wrong,
// makes it decline (nil): Parse then parses with text/template and compiles
// that tree, which also reports the errors.
//
// It follows text/template's lexer and parser (Go 1.26, lex.go and
// parse.go) rule for rule where it accepts: what it returns is exactly
// what compileFast makes of text/template's tree of the same text, which
// TestParseFastMatches and FuzzParseFast check. It declines calls of
// service and services (their prefixes come from the tree walk) and of
// names known returns false for.
func parseFast(text string, known func(string) bool) *fastProg {
	// At most a text and an action node per action, and one more text.
	actions := strings.Count(text, "{{")
	p := &fastParser{src: text, known: known, vars: []string{"$"}, nodeStack: make([]fastNode, 0, 2*actions+1)}
	nodes, end := p.list()
	if p.fail || end != endEOF {
		return nil
	}
	return &fastProg{root: nodes, funcs: p.c.names}
}

// maxFastNesting bounds the parentheses and control structures parseFast
// reads nested: deeper texts go to text/template, which has limits of
// its own (and parseFast must not run out of stack first).
const maxFastNesting = 100

// The kinds of action that end a list.
const (
	endEOF = iota
	endEnd
	endElse
	endElseIf
	endElseWith
)

type tokKind uint8

const (
	tokEOF tokKind = iota
	tokSpace
	tokRightDelim
	tokIdent // a function name or a keyword
	tokField
	tokDot
	tokVar
	tokString // val is the unquoted value
	tokNumber
	tokBool
	tokLeftParen
	tokRightParen
	tokPipe
	tokDeclare
	tokAssign
	tokComma
)

type token struct {
	kind tokKind
	val  string
	n    int // tokNumber
}

// keywords are the words text/template's lexer does not make
// identifiers (true and false aside).
var keywords = map[string]bool{
	"if": true, "else": true, "end": true, "range": true, "with": true, "break": true, "continue": true,
	"define": true, "block": true, "template": true, "nil": true,
}

// fastParser reads text for parseFast. fail is set at the first thing it
// declines; the parse then unwinds.
type fastParser struct {
	src        string
	pos        int
	c          fastCompiler
	known      func(string) bool
	vars       []string // the variables in scope, as text/template's parser keeps them
	rangeDepth int
	parenDepth int
	depth      int     // of control structures
	peeked     []token // tokens read ahead, next first
	fail       bool
	// Stacks the lists, commands and arguments being read are built on,
	// each copied out at its exact size when done.
	nodeStack []fastNode
	cmdStack  []fastCmd
	argStack  []fastArg
}

func isSpaceByte(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// list reads nodes up to the end of the text or an action that ends a
// list ({{end}}, {{else}}...), and says which.
func (p *fastParser) list() (nodes []fastNode, end int) {
	base := len(p.nodeStack)
	defer func() {
		nodes = append(make([]fastNode, 0, len(p.nodeStack)-base), p.nodeStack[base:]...)
		p.nodeStack = p.nodeStack[:base]
	}()
	for !p.fail {
		i := strings.Index(p.src[p.pos:], "{{")
		if i < 0 {
			if p.pos < len(p.src) {
				p.nodeStack = append(p.nodeStack, fastNode{op: fText, text: p.src[p.pos:]})
			}
			p.pos = len(p.src)
			return nil, endEOF
		}
		start := p.pos + i + 2
		trimLeft := len(p.src) >= start+2 && p.src[start] == '-' && isSpaceByte(p.src[start+1])
		text := p.src[p.pos : p.pos+i]
		if trimLeft {
			text = strings.TrimRight(text, " \t\r\n")
			start += 2
		}
		if text != "" {
			p.nodeStack = append(p.nodeStack, fastNode{op: fText, text: text})
		}
		p.pos = start
		if strings.HasPrefix(p.src[p.pos:], "/*") {
			p.comment()
			continue
		}
		n, end, ok := p.action()
		if end != -1 {
			return nil, end
		}
		if ok {
			p.nodeStack = append(p.nodeStack, n)
		}
	}
	return nil, endEOF
}

// comment skips a comment, which must end right at the closing delimiter.
func (p *fastParser) comment() {
	j := strings.Index(p.src[p.pos+2:], "*/")
	if j < 0 {
		p.fail = true
		return
	}
	p.pos += 2 + j + 2
	if !p.rightDelim() {
		p.fail = true
	}
}

// rightDelim consumes "}}" or " -}}" (and the space after it) at pos.
func (p *fastParser) rightDelim() bool {
	switch {
	case !p.atRightDelim(p.pos):
		return false
	case p.src[p.pos] == '}':
		p.pos += 2
	default:
		p.pos += 4
		for p.pos < len(p.src) && isSpaceByte(p.src[p.pos]) {
			p.pos++
		}
	}
	return true
}

// atRightDelim reports whether "}}" or " -}}" starts at i.
func (p *fastParser) atRightDelim(i int) bool {
	s := p.src[i:]
	return strings.HasPrefix(s, "}}") || len(s) >= 4 && isSpaceByte(s[0]) && s[1] == '-' && s[2] == '}' && s[3] == '}'
}

// atTerminator is text/template's lexer's: what may follow a word.
func (p *fastParser) atTerminator(i int) bool {
	if i >= len(p.src) {
		return true
	}
	switch c := p.src[i]; {
	case isSpaceByte(c), c == '.', c == ',', c == '|', c == ':', c == ')', c == '(':
		return true
	}
	return strings.HasPrefix(p.src[i:], "}}")
}

// lex reads the next token of an action.
func (p *fastParser) lex() token {
	if p.atRightDelim(p.pos) {
		if p.parenDepth > 0 {
			p.fail = true
			return token{}
		}
		p.rightDelim()
		return token{kind: tokRightDelim}
	}
	if p.pos >= len(p.src) {
		p.fail = true
		return token{}
	}
	c := p.src[p.pos]
	switch {
	case isSpaceByte(c):
		for p.pos < len(p.src) && isSpaceByte(p.src[p.pos]) && !p.atRightDelim(p.pos) {
			p.pos++
		}
		return token{kind: tokSpace}
	case c == '=':
		p.pos++
		return token{kind: tokAssign}
	case c == ':':
		if strings.HasPrefix(p.src[p.pos:], ":=") {
			p.pos += 2
			return token{kind: tokDeclare}
		}
	case c == '|':
		p.pos++
		return token{kind: tokPipe}
	case c == ',':
		p.pos++
		return token{kind: tokComma}
	case c == '(':
		if p.parenDepth >= maxFastNesting {
			break // text/template stops at 10,000 (1,000 on wasm)
		}
		p.pos++
		p.parenDepth++
		return token{kind: tokLeftParen}
	case c == ')':
		p.pos++
		if p.parenDepth--; p.parenDepth < 0 {
			break
		}
		return token{kind: tokRightParen}
	case c == '"':
		return p.lexQuote()
	case c == '`':
		j := strings.IndexByte(p.src[p.pos+1:], '`')
		if j < 0 {
			break
		}
		raw := p.src[p.pos+1 : p.pos+1+j]
		if strings.IndexByte(raw, '\r') >= 0 {
			break // strconv.Unquote drops carriage returns
		}
		p.pos += j + 2
		return token{kind: tokString, val: raw}
	case c == '$':
		return p.lexWord(tokVar, p.pos+1)
	case c == '.':
		if p.pos+1 < len(p.src) && p.src[p.pos+1] >= '0' && p.src[p.pos+1] <= '9' {
			break // a number
		}
		if p.atTerminator(p.pos + 1) {
			p.pos++
			return token{kind: tokDot}
		}
		return p.lexWord(tokField, p.pos+1)
	case c >= '0' && c <= '9':
		j := p.pos
		for j < len(p.src) && p.src[j] >= '0' && p.src[j] <= '9' {
			j++
		}
		digits := p.src[p.pos:j]
		if len(digits) > 18 || len(digits) > 1 && digits[0] == '0' ||
			j < len(p.src) && (isWordByte(p.src[j]) || p.src[j] == '.' || p.src[j] >= 0x80) {
			break // octal, float, hex, overflow...: text/template's
		}
		n, err := strconv.Atoi(digits)
		if err != nil {
			break
		}
		p.pos = j
		return token{kind: tokNumber, n: n}
	case isWordByte(c):
		t := p.lexWord(tokIdent, p.pos)
		if t.kind == tokIdent && (t.val == "true" || t.val == "false") {
			t.kind = tokBool
		}
		return t
	}
	p.fail = true
	return token{}
}

// lexWord reads a name starting at from: an identifier (from == pos), or
// the name of a field or variable after its '.' or '$'. The name must end
// at a terminator; a variable may be "$" alone.
func (p *fastParser) lexWord(kind tokKind, from int) token {
	j := from
	for j < len(p.src) && isWordByte(p.src[j]) {
		j++
	}
	if j == from && kind != tokVar || !p.atTerminator(j) {
		p.fail = true // includes any non-ASCII letter
		return token{}
	}
	t := token{kind: kind, val: p.src[p.pos:j]}
	p.pos = j
	return t
}

func (p *fastParser) lexQuote() token {
	j := p.pos + 1
	for {
		if j >= len(p.src) || p.src[j] == '\n' {
			p.fail = true
			return token{}
		}
		switch p.src[j] {
		case '\\':
			if j+1 >= len(p.src) || p.src[j+1] == '\n' {
				p.fail = true
				return token{}
			}
			j += 2
			continue
		case '"':
			s, err := strconv.Unquote(p.src[p.pos : j+1])
			if err != nil {
				p.fail = true
				return token{}
			}
			p.pos = j + 1
			return token{kind: tokString, val: s}
		}
		j++
	}
}

func (p *fastParser) next() token {
	if n := len(p.peeked); n > 0 {
		t := p.peeked[n-1]
		p.peeked = p.peeked[:n-1]
		return t
	}
	return p.lex()
}

func (p *fastParser) backup(t token) { p.peeked = append(p.peeked, t) }

func (p *fastParser) peek() token {
	t := p.next()
	p.backup(t)
	return t
}

func (p *fastParser) nextNonSpace() token {
	for {
		t := p.next()
		if t.kind != tokSpace || p.fail {
			return t
		}
	}
}

func (p *fastParser) peekNonSpace() token {
	t := p.nextNonSpace()
	p.backup(t)
	return t
}

// expectEnd consumes the closing delimiter of a keyword action.
func (p *fastParser) expectEnd() {
	if p.nextNonSpace().kind != tokRightDelim {
		p.fail = true
	}
}

// action reads an action after its "{{": a node (ok), or the kind of
// list end it is (end != -1).
func (p *fastParser) action() (n fastNode, end int, ok bool) {
	t := p.nextNonSpace()
	if p.fail {
		return fastNode{}, endEOF, false
	}
	if t.kind == tokIdent {
		switch t.val {
		case "if":
			return p.control(fIf), -1, !p.fail
		case "with":
			return p.control(fWith), -1, !p.fail
		case "range":
			return p.control(fRange), -1, !p.fail
		case "end":
			p.expectEnd()
			return fastNode{}, endEnd, false
		case "else":
			switch nt := p.peekNonSpace(); {
			case nt.kind == tokIdent && nt.val == "if":
				p.nextNonSpace()
				return fastNode{}, endElseIf, false
			case nt.kind == tokIdent && nt.val == "with":
				p.nextNonSpace()
				return fastNode{}, endElseWith, false
			}
			p.expectEnd()
			return fastNode{}, endElse, false
		case "break", "continue":
			p.expectEnd()
			if p.rangeDepth == 0 {
				p.fail = true
			}
			if t.val == "break" {
				return fastNode{op: fBreak}, -1, true
			}
			return fastNode{op: fContinue}, -1, true
		case "define", "block", "template", "nil":
			p.fail = true
			return fastNode{}, endEOF, false
		}
	}
	p.backup(t)
	pipe := p.pipeline(false, tokRightDelim)
	return fastNode{op: fAction, pipe: pipe}, -1, !p.fail
}

// control reads an if, with or range after its keyword, to its {{end}}.
func (p *fastParser) control(op fastOp) fastNode {
	mark := len(p.vars)
	p.depth++
	defer func() { p.vars = p.vars[:mark]; p.depth-- }()
	n := fastNode{op: op, br: &fastBranch{}}
	if p.depth > maxFastNesting {
		p.fail = true
		return n
	}
	n.pipe = p.pipeline(op == fRange, tokRightDelim)
	if p.fail {
		return n
	}
	if op == fRange {
		if n.pipe.assign {
			p.fail = true // compileFast leaves a range assignment to text/template
			return n
		}
		p.rangeDepth++
	}
	var end int
	n.br.list, end = p.list()
	if op == fRange {
		p.rangeDepth--
	}
	switch {
	case p.fail:
	case end == endEnd:
	case end == endElseIf && op == fIf:
		n.br.elseList = []fastNode{p.control(fIf)}
	case end == endElseWith && op == fWith:
		n.br.elseList = []fastNode{p.control(fWith)}
	case end == endElse:
		n.br.elseList, end = p.list()
		if end != endEnd {
			p.fail = true
		}
	default:
		p.fail = true
	}
	return n
}

// pipeline reads a pipeline up to the token end (consumed); a range's
// may declare two variables.
func (p *fastParser) pipeline(isRange bool, end tokKind) *fastPipe {
	fp := p.c.newPipe()
decls:
	if v := p.peekNonSpace(); v.kind == tokVar {
		p.nextNonSpace()
		after := p.peek()
		nt := p.peekNonSpace()
		switch {
		case nt.kind == tokAssign || nt.kind == tokDeclare:
			fp.assign = nt.kind == tokAssign
			p.nextNonSpace()
			fp.decl = append(fp.decl, v.val)
			p.vars = append(p.vars, v.val)
		case nt.kind == tokComma:
			p.nextNonSpace()
			fp.decl = append(fp.decl, v.val)
			p.vars = append(p.vars, v.val)
			if isRange && len(fp.decl) < 2 && p.peekNonSpace().kind == tokVar {
				goto decls
			}
			p.fail = true
			return fp
		default:
			// An operand: put the variable (and any space) back.
			p.peeked = p.peeked[:0]
			if after.kind == tokSpace {
				p.backup(nt)
				p.backup(after)
			} else {
				p.backup(nt)
			}
			p.backup(v)
		}
	}
	base := len(p.cmdStack)
	defer func() { p.cmdStack = p.cmdStack[:base] }()
	for !p.fail {
		t := p.nextNonSpace()
		switch t.kind {
		case end:
			if len(p.cmdStack) == base {
				p.fail = true
			}
			fp.cmds = p.c.keepCmds(p.cmdStack[base:])
			return fp
		case tokBool, tokDot, tokField, tokIdent, tokNumber, tokString, tokVar, tokLeftParen:
			p.backup(t)
			cmd, ok := p.command(len(p.cmdStack) > base)
			if !ok {
				p.fail = true
			}
			p.cmdStack = append(p.cmdStack, cmd)
		default:
			p.fail = true
		}
	}
	return fp
}

// command reads one command of a pipeline and compiles it as
// compileFast's cmd does; final says it is not the pipeline's first.
func (p *fastParser) command(final bool) (fastCmd, bool) {
	base := len(p.argStack)
	defer func() { p.argStack = p.argStack[:base] }()
	var fc fastCmd
	first := true
	for !p.fail {
		if t := p.peekNonSpace(); t.kind == tokIdent && first {
			// The command's function.
			p.nextNonSpace()
			if !p.function(t.val, &fc) {
				return fc, false
			}
		} else if a, ok := p.operand(); ok {
			if first {
				// An operand: nothing may follow it, nor come from a pipe.
				fc.op = cmdValue
				if final {
					p.fail = true
				}
			}
			p.argStack = append(p.argStack, a)
		}
		first = false
		if p.fail {
			return fc, false
		}
		switch t := p.next(); t.kind {
		case tokSpace:
			continue
		case tokRightDelim, tokRightParen:
			p.backup(t)
		case tokPipe:
		default:
			p.fail = true
		}
		break
	}
	args := p.argStack[base:]
	if p.fail || first || fc.op == cmdValue && len(args) != 1 {
		return fc, false
	}
	fc.args = p.c.keepArgs(args)
	return fc, true
}

// function sets fc to call name: a fast builtin or a known function.
func (p *fastParser) function(name string, fc *fastCmd) bool {
	if keywords[name] {
		p.fail = true
		return false
	}
	if builtins[name] {
		op, ok := fastBuiltins[name]
		fc.op = op
		return ok && p.noChain()
	}
	if !p.userFunc(name) {
		return false
	}
	fc.op = cmdFunc
	fc.fn = p.c.fn(name)
	return p.noChain()
}

// noChain reports that no field follows a term (a chain, left to
// text/template).
func (p *fastParser) noChain() bool {
	if p.peek().kind == tokField {
		p.fail = true
		return false
	}
	return !p.fail
}

// operand reads one operand; ok is false when the next token is not one
// (nothing is consumed then) or on failure.
func (p *fastParser) operand() (fastArg, bool) {
	t := p.nextNonSpace()
	var a fastArg
	switch t.kind {
	case tokString:
		a = fastArg{kind: argConst, val: t.val}
	case tokBool:
		a = fastArg{kind: argConst, val: t.val == "true"}
	case tokNumber:
		a = fastArg{kind: argConst, val: t.n}
	case tokDot:
		a = fastArg{kind: argDot}
	case tokField:
		ident := []string{t.val[1:]}
		for p.peek().kind == tokField {
			ident = append(ident, p.next().val[1:])
		}
		return fastArg{kind: argField, fields: ident}, !p.fail
	case tokVar:
		if !slices.Contains(p.vars, t.val) {
			p.fail = true
			return a, false
		}
		ident := []string{t.val}
		for p.peek().kind == tokField {
			ident = append(ident, p.next().val[1:])
		}
		return fastArg{kind: argVar, val: t.val, fields: ident[1:]}, !p.fail
	case tokLeftParen:
		pipe := p.pipeline(false, tokRightParen)
		a = fastArg{kind: argPipe, val: pipe}
	case tokIdent:
		if keywords[t.val] || builtins[t.val] || !p.userFunc(t.val) {
			p.fail = true
			return a, false
		}
		a = fastArg{kind: argFunc, fn: int32(p.c.fn(t.val))}
	default:
		p.backup(t)
		return a, false
	}
	return a, p.noChain()
}

// userFunc reports whether name is a function parseFast compiles calls
// of: one known, but not service or services, whose prefixes come from
// text/template's tree.
func (p *fastParser) userFunc(name string) bool {
	return name != "service" && name != "services" && p.known(name)
}
