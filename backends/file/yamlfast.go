package file

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// fastYAML flattens data when it is written in the block subset of YAML
// that values files nearly always use, in one pass over the lines and
// without building a node tree: yaml.v3's scanner and parser cost ~40 ms
// for a 20,000-key file, this ~3 ms.
//
// The subset: one document; block mappings whose keys are plain words
// ([A-Za-z_][A-Za-z0-9_.-]*, not true/false/null); block sequences, with
// "- key: value" items; values that are plain scalars on one line, quoted
// scalars on one line without escapes, or nothing (null); comments; spaces
// for indentation. Anything else (flow collections, anchors, aliases, tags,
// block or multi-line scalars, "---", tabs, CR, duplicate keys, a key that
// is a number or contains "/", ...) reports ok == false and the caller
// parses data with yaml.v3 instead, which also reports every syntax error:
// fastYAML never fails, it only declines.
//
// When ok, kvs holds exactly what yaml.v3 and flattenYAML give (checked by
// FuzzFastYAML): plain scalars that the YAML 1.2 resolver could read as
// something other than a string go through that resolver. order lists the
// keys in document order.
func fastYAML(data []byte) (kvs map[string]string, order []string, ok bool) {
	if !yamlFastSafe(data) {
		return nil, nil, false
	}
	// Most scalars follow ": " or "- ": a close guess of the key count
	// (an exact size halves the map's memory against a line count).
	n := bytes.Count(data, []byte(": ")) + bytes.Count(data, []byte("- "))
	p := fastParser{src: string(data), kvs: make(map[string]string, n), order: make([]string, 0, n)}
	if !p.run() {
		return nil, nil, false
	}
	return p.kvs, p.order, true
}

// yamlFastSafe reports whether data has none of the bytes the fast path
// leaves to yaml.v3: tabs, CR, control characters, invalid UTF-8, a byte
// order mark, and the YAML 1.1 line breaks NEL, LS and PS.
func yamlFastSafe(data []byte) bool {
	for i := 0; i < len(data); {
		c := data[i]
		if c < utf8.RuneSelf {
			if (c < ' ' && c != '\n') || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError, r < 0xa0, r == 0x2028, r == 0x2029, r == 0xfeff,
			r >= 0xd800 && r <= 0xdfff, r == 0xfffe, r == 0xffff:
			return false
		}
		i += size
	}
	return true
}

// fastFrame is an open block collection: a mapping or a sequence whose
// entries start at column indent.
type fastFrame struct {
	indent int
	seq    bool
	plen   int // its path is fastParser.path[:plen] ("" for the root)
	next   int // a sequence's next index
	// A mapping's keys so far are fastParser.names[names:], or set once
	// there are many.
	names int
	set   map[string]struct{}
}

// fastParser holds the state of one fastYAML pass.
type fastParser struct {
	src   string
	kvs   map[string]string
	order []string // kvs's keys in document order
	stack []fastFrame
	path  []byte   // the path of the entry being read
	names []string // the keys of the open mappings, outermost first

	// pendingLen is the length of the path of an entry whose value is on
	// the following lines ("key:" or "-"), and pendingIndent the column of
	// that entry's collection; hasPending says whether there is one.
	pendingLen    int
	pendingIndent int
	pendingInMap  bool
	hasPending    bool
	// maxIndent is the deepest column the next line may start at without
	// continuing a scalar over several lines (which the subset excludes).
	maxIndent int
}

func (p *fastParser) run() bool {
	p.maxIndent = -1 // no line yet: any column starts the root
	src := p.src
	for len(src) > 0 {
		var line string
		if i := strings.IndexByte(src, '\n'); i >= 0 {
			line, src = src[:i], src[i+1:]
		} else {
			line, src = src, ""
		}
		indent := 0
		for indent < len(line) && line[indent] == ' ' {
			indent++
		}
		content := line[indent:]
		if content == "" || content[0] == '#' {
			continue
		}
		if indent == 0 && (strings.HasPrefix(content, "---") || strings.HasPrefix(content, "...")) {
			return false // document markers
		}
		if !p.line(indent, content) {
			return false
		}
	}
	if p.hasPending {
		p.set(string(p.path[:p.pendingLen]), "") // null
	}
	return true
}

// maxSimpleKey is how far from its start yaml.v3 looks for the ":" of a
// key on one line.
const maxSimpleKey = 1024

// maxFastDepth is the deepest nesting the fast path reads; deeper
// documents go to yaml.v3, which has a limit of its own.
const maxFastDepth = 1000

// push opens a collection at column indent whose path is path[:plen].
func (p *fastParser) push(indent int, seq bool, plen int) {
	p.stack = append(p.stack, fastFrame{indent: indent, seq: seq, plen: plen, names: len(p.names)})
}

// pop closes the innermost collection.
func (p *fastParser) pop() {
	p.names = p.names[:p.stack[len(p.stack)-1].names]
	p.stack = p.stack[:len(p.stack)-1]
}

// line handles one content line that starts at column indent.
func (p *fastParser) line(indent int, content string) bool {
	if p.maxIndent >= 0 && indent > p.maxIndent {
		return false // continuation of a multi-line scalar
	}
	item := isSeqItem(content)
	if p.hasPending {
		p.hasPending = false
		switch {
		case indent > p.pendingIndent:
			p.push(indent, item, p.pendingLen)
		case indent == p.pendingIndent && item && p.pendingInMap:
			// A sequence may sit at its mapping key's own column.
			p.push(indent, true, p.pendingLen)
		default:
			p.set(string(p.path[:p.pendingLen]), "") // null
		}
	}
	if len(p.stack) == 0 {
		p.push(indent, item, 0)
	}
	for len(p.stack) > 0 {
		top := &p.stack[len(p.stack)-1]
		if top.indent > indent || (top.indent == indent && top.seq && !item && len(p.stack) > 1 && p.stack[len(p.stack)-2].indent == indent) {
			p.pop()
			continue
		}
		break
	}
	if len(p.stack) == 0 || len(p.stack) > maxFastDepth || p.stack[len(p.stack)-1].indent != indent {
		return false
	}
	return p.entry(indent, content)
}

// entry handles the entry at column indent of the innermost collection.
func (p *fastParser) entry(indent int, content string) bool {
	top := &p.stack[len(p.stack)-1]
	if !top.seq {
		return p.mappingEntry(indent, content)
	}
	if !isSeqItem(content) {
		return false
	}
	p.path = append(p.path[:top.plen], '/')
	p.path = strconv.AppendInt(p.path, int64(top.next), 10)
	top.next++
	rest := content[1:]
	n := 0
	for n < len(rest) && rest[n] == ' ' {
		n++
	}
	rest = rest[n:]
	if rest == "" || rest[0] == '#' {
		if rest != "" && n == 0 {
			return false
		}
		p.await(indent, false)
		return true
	}
	if _, _, isKey := splitKey(rest); isKey {
		// "- key: value": a mapping whose entries start where key does.
		col := indent + 1 + n
		p.push(col, false, len(p.path))
		return p.mappingEntry(col, rest)
	}
	if isSeqItem(rest) {
		return false // "- - x"
	}
	return p.value(indent, rest)
}

// mappingEntry handles "key: value" or "key:" at column indent of the
// innermost collection, a mapping.
func (p *fastParser) mappingEntry(indent int, content string) bool {
	key, rest, ok := splitKey(content)
	if !ok || !plainKey(key) || !p.addName(key) {
		return false
	}
	top := &p.stack[len(p.stack)-1]
	p.path = append(p.path[:top.plen], '/')
	p.path = append(p.path, key...)
	if rest == "" || rest[0] == '#' {
		p.await(indent, true)
		return true
	}
	return p.value(indent, rest)
}

// value records rest, the one-line scalar after "key: " or "- ", as the
// value of the current path, an entry of the collection at column indent.
func (p *fastParser) value(indent int, rest string) bool {
	v, ok := scalarText(rest)
	if !ok {
		return false
	}
	p.set(string(p.path), v)
	p.maxIndent = indent
	return true
}

// await notes that the value of the current path, an entry of the
// collection at column indent (a mapping when inMap), is on the following
// lines, or is null.
func (p *fastParser) await(indent int, inMap bool) {
	p.pendingLen, p.pendingIndent, p.pendingInMap, p.hasPending = len(p.path), indent, inMap, true
	p.maxIndent = -1
}

// set records a scalar at a path not seen before.
func (p *fastParser) set(path, v string) {
	p.kvs[path] = v
	p.order = append(p.order, path)
}

// addName records key in the innermost mapping and reports whether it is
// new there: a duplicate key is an error yaml.v3 reports. Small mappings
// are searched; a large one gets a set.
func (p *fastParser) addName(key string) bool {
	top := &p.stack[len(p.stack)-1]
	if top.set != nil {
		if _, dup := top.set[key]; dup {
			return false
		}
		top.set[key] = struct{}{}
		return true
	}
	mine := p.names[top.names:]
	if slices.Contains(mine, key) {
		return false
	}
	if len(mine) < 16 {
		p.names = append(p.names, key)
		return true
	}
	top.set = make(map[string]struct{}, 64)
	for _, k := range mine {
		top.set[k] = struct{}{}
	}
	top.set[key] = struct{}{}
	return true
}

// isSeqItem reports whether content is a block sequence entry: "-" alone
// or followed by a space.
func isSeqItem(content string) bool {
	return content[0] == '-' && (len(content) == 1 || content[1] == ' ')
}

// splitKey splits "key: rest" or "key:" into the key and what follows the
// colon and its spaces. The key ends at the first ": " or at a final ":",
// which yaml.v3 wants within 1024 characters of the key's start.
func splitKey(content string) (key, rest string, ok bool) {
	for i := 0; i < len(content); i++ {
		if i > maxSimpleKey {
			return "", "", false
		}
		if content[i] != ':' {
			continue
		}
		if i+1 == len(content) {
			return strings.TrimRight(content[:i], " "), "", true
		}
		if content[i+1] == ' ' {
			return strings.TrimRight(content[:i], " "), strings.TrimLeft(content[i+1:], " "), true
		}
	}
	return "", "", false
}

// plainKey reports whether key is a word the fast path takes as a mapping
// key: it is a string to the YAML resolver and a single path element.
func plainKey(key string) bool {
	if _, special := wordValue(key); key == "" || special {
		return false
	}
	c := key[0]
	if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_') {
		return false
	}
	for i := 1; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// wordValue renders a plain scalar starting with a letter that the
// resolver reads as a boolean or null, as scalar renders those; special
// is false for every other word, which stays a string.
func wordValue(s string) (v string, special bool) {
	switch s {
	case "true", "True", "TRUE":
		return "true", true
	case "false", "False", "FALSE":
		return "false", true
	case "null", "Null", "NULL":
		return "", true
	}
	return s, false
}

// scalarText returns the flattened value of a one-line scalar (the text
// after "key: " or "- "), or ok == false when the fast path leaves it to
// yaml.v3.
func scalarText(s string) (string, bool) {
	switch s[0] {
	case '\'':
		return singleQuoted(s)
	case '"':
		end := strings.IndexByte(s[1:], '"')
		if end < 0 || strings.IndexByte(s[1:end+1], '\\') >= 0 || !trailerOK(s[end+2:]) {
			return "", false
		}
		return s[1 : end+1], true
	case '-', '?', ':':
		if len(s) == 1 || s[1] == ' ' {
			return "", false
		}
	case ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '%', '@', '`':
		return "", false
	}
	// A plain scalar ends at a comment; ": " inside or a final ":" would
	// start a nested mapping, which yaml.v3 rejects.
	if i := strings.Index(s, " #"); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimRight(s, " ")
	if strings.Contains(s, ": ") || s[len(s)-1] == ':' {
		return "", false
	}
	return resolvePlain(s)
}

// singleQuoted decodes a one-line single-quoted scalar (” is a quote).
func singleQuoted(s string) (string, bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '\'' {
			continue
		}
		if i+1 < len(s) && s[i+1] == '\'' {
			b.WriteString(s[1:i])
			b.WriteByte('\'')
			rest, ok := singleQuoted("'" + s[i+2:])
			if !ok {
				return "", false
			}
			b.WriteString(rest)
			return b.String(), true
		}
		if !trailerOK(s[i+1:]) {
			return "", false
		}
		return s[1:i], true
	}
	return "", false // not closed on this line
}

// trailerOK reports whether what follows a closing quote is only spaces
// and perhaps a comment.
func trailerOK(s string) bool {
	t := strings.TrimLeft(s, " ")
	return t == "" || (t[0] == '#' && len(t) < len(s))
}

// resolvePlain renders a plain scalar as the YAML 1.2 resolver and scalar
// would: words and other text that cannot be a number, boolean, null or
// timestamp directly, anything else through yaml.v3's resolver.
func resolvePlain(s string) (string, bool) {
	c := s[0]
	switch {
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		v, _ := wordValue(s)
		return v, true
	case c == '~' && len(s) == 1, c == '<', c == '.':
		return resolveSlow(s)
	case (c == '-' || c == '+') && len(s) > 1 && s[1] == '.':
		return resolveSlow(s) // -.inf, +.5
	case c >= '0' && c <= '9', c == '-', c == '+':
		if isDecimal(s) {
			return s, true
		}
		if !maybeNumber(s) {
			return s, true
		}
		return resolveSlow(s)
	}
	return s, true
}

// isDecimal reports whether s is an integer that the resolver reads as
// itself: no sign but "-", no leading zero, at most 18 digits.
func isDecimal(s string) bool {
	d := strings.TrimPrefix(s, "-")
	if d == "" || len(d) > 18 || (d[0] == '0' && (len(d) > 1 || len(s) > 1)) {
		return false
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return false
		}
	}
	return true
}

// maybeNumber reports whether s, which starts with a digit or a sign,
// could be anything but a string to the resolver: a timestamp (four digits
// and "-") or a number in any of its notations (digits, signs, "_", ".",
// exponents, 0x/0o/0b prefixes and hex digits).
func maybeNumber(s string) bool {
	if len(s) > 4 && s[4] == '-' && isDigits(s[:4]) {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' ||
			c == 'x' || c == 'X' || c == 'o' || c == 'O' || c == '_' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// resolveSlow renders a plain scalar through yaml.v3's resolver, exactly
// as flattenYAML renders a scalar node.
func resolveSlow(s string) (string, bool) {
	n := &yaml.Node{Kind: yaml.ScalarNode, Value: s}
	if n.ShortTag() == "!!merge" {
		return "", false
	}
	keepText(n)
	v, err := scalarValue(n)
	if err != nil {
		return "", false
	}
	return scalar(v), true
}
