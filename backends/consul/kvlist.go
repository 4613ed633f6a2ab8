package consul

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"
)

// A KV hub's blocking query answers with every key under its parent, values
// included, however few changed. Decoding that whole answer on every change
// (encoding/json into []*api.KVPair, base64 included) was a third of the
// daemon's CPU with 200 watched prefixes. The hub instead takes the answer's
// body undecoded (tapTransport), walks it with scanKVList and decodes only the
// values of keys whose ModifyIndex differs from the previous answer.

// tapKey is the context key of a *tap.
type tapKey struct{}

// tap receives the body of a 200 answer to a request whose context carries
// it (see tapTransport).
type tap struct {
	body []byte // reused from one answer to the next
	ok   bool   // body holds the answer
	// req is the last request the api client built with this tap, for
	// hub.listDirect to repeat.
	req *http.Request
	// direct is the hub's own connection (direct.go), nil when it has
	// none: tapTransport sends the request over it when it can.
	direct *direct
	// Set by an answer that readAnswer read (hub.listDirect): its status
	// and X-Consul-Index.
	status   int
	index    uint64
	hasIndex bool
}

// tapTransport wraps the transport of the api client. For a request whose
// context carries a *tap it moves a 200 answer's body into the tap and hands
// the api client "[]" to decode instead. The api client has no call that
// returns a raw body while keeping its request building (token, datacenter,
// namespace), its error handling and its response metadata (X-Consul-Index);
// this keeps all of those. Other requests pass through untouched.
// When the tap has a direct connection, such a request goes over it when
// it can (see direct.go).
type tapTransport struct {
	base http.RoundTripper
}

func (t tapTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tp, _ := req.Context().Value(tapKey{}).(*tap)
	if tp != nil {
		tp.req = req
	}
	if tp != nil && tp.direct.usable(req) {
		resp, err := tp.direct.roundTrip(req, nil, tp)
		if err != errDirectBusy {
			return resp, err
		}
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil || tp == nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	buf := bytes.NewBuffer(tp.body[:0])
	_, err = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	tp.body, tp.ok = buf.Bytes(), true
	resp.Body = io.NopCloser(strings.NewReader("[]"))
	resp.ContentLength = 2
	resp.Header.Del("Content-Length")
	return resp, nil
}

// rawPair is one entry of a KV list answer as it appears in the JSON.
type rawPair struct {
	key    []byte // between the quotes; JSON escapes still in when keyEsc
	keyEsc bool
	mod    uint64 // ModifyIndex
	val    []byte // base64 between the quotes (nil for null); escapes in when valEsc
	valEsc bool
	plain  bool // val is the value itself (decoded by the api client)
}

// keyString returns the Consul key.
func (p *rawPair) keyString() (string, error) {
	if !p.keyEsc {
		return string(p.key), nil
	}
	return unquote(p.key)
}

// value decodes the base64 value.
func (p *rawPair) value() (string, error) {
	if p.val == nil || p.plain {
		return string(p.val), nil
	}
	src := p.val
	if p.valEsc {
		s, err := unquote(src)
		if err != nil {
			return "", err
		}
		src = []byte(s)
	}
	dst := make([]byte, base64.StdEncoding.DecodedLen(len(src)))
	n, err := base64.StdEncoding.Decode(dst, src)
	if err != nil {
		return "", fmt.Errorf("value: %w", err)
	}
	return string(dst[:n]), nil
}

// unquote decodes the inside of a JSON string that holds escapes.
func unquote(inner []byte) (string, error) {
	q := make([]byte, 0, len(inner)+2)
	q = append(append(append(q, '"'), inner...), '"')
	var s string
	err := json.Unmarshal(q, &s)
	return s, err
}

var errKVSyntax = errors.New("unexpected JSON in a KV list answer")

// scanKVList walks the JSON array of a /v1/kv/<prefix>?recurse answer and
// calls fn for each object with its Key, ModifyIndex and Value, without
// decoding them. Other fields are skipped whatever their type. It returns an
// error wrapping errKVSyntax for anything that is not such an array; the
// spans handed to fn alias b and are valid only during the call.
func scanKVList(b []byte, fn func(p *rawPair) error) error {
	s := jscan{b: b}
	if !s.eat('[') {
		return s.fail("'['")
	}
	if s.eat(']') {
		return s.end()
	}
	var p rawPair // one for every object: no allocation per key
	for {
		p = rawPair{}
		if err := s.object(&p); err != nil {
			return err
		}
		if err := fn(&p); err != nil {
			return err
		}
		if s.eat(',') {
			continue
		}
		if s.eat(']') {
			return s.end()
		}
		return s.fail("',' or ']'")
	}
}

// jscan is a minimal JSON scanner over one buffer.
type jscan struct {
	b []byte
	i int
}

func (s *jscan) fail(want string) error {
	return fmt.Errorf("%w: want %s at offset %d", errKVSyntax, want, s.i)
}

func (s *jscan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// eat consumes c after optional white space.
func (s *jscan) eat(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *jscan) end() error {
	s.ws()
	if s.i != len(s.b) {
		return s.fail("end of answer")
	}
	return nil
}

// str consumes a string and returns what is between its quotes. esc
// reports that it needs decoding: escapes, or bytes that are not UTF-8
// (which encoding/json turns into U+FFFD; Consul never sends them).
func (s *jscan) str() (inner []byte, esc bool, ok bool) {
	if !s.eat('"') {
		return nil, false, false
	}
	start := s.i
	// Fast path: up to the next quote, no escape, printable ASCII only
	// (base64 values and most keys), found with IndexByte.
	if n := bytes.IndexByte(s.b[start:], '"'); n >= 0 && plainASCII(s.b[start:start+n]) {
		s.i = start + n + 1
		return s.b[start : start+n], false, true
	}
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			inner = s.b[start : s.i-1]
			return inner, esc || !utf8.Valid(inner), true
		case c == '\\':
			esc = true
			s.i += 2
		case c < 0x20:
			return nil, false, false
		default:
			s.i++
		}
	}
	return nil, false, false
}

// numByte reports whether c may be part of a JSON number.
func numByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

// plainASCII reports whether b holds only printable ASCII other than '\\':
// the inside of a JSON string that needs no decoding.
func plainASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= 0x80 || c == '\\' {
			return false
		}
	}
	return true
}

// uint consumes a non-negative integer.
func (s *jscan) uint() (uint64, bool) {
	s.ws()
	start := s.i
	var n uint64
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		d := uint64(s.b[s.i] - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
		s.i++
	}
	return n, s.i > start
}

// literal consumes word (null, true, false).
func (s *jscan) literal(word string) bool {
	s.ws()
	if !bytes.HasPrefix(s.b[s.i:], []byte(word)) {
		return false
	}
	s.i += len(word)
	return true
}

// skip consumes any value.
func (s *jscan) skip(depth int) bool {
	s.ws()
	if s.i >= len(s.b) || depth > 64 {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, _, ok := s.str()
		return ok
	case c == 'n':
		return s.literal("null")
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == '-' || (c >= '0' && c <= '9'):
		start := s.i
		for s.i < len(s.b) && numByte(s.b[s.i]) {
			s.i++
		}
		return s.i > start
	case c == '[' || c == '{':
		closing := byte(']')
		if c == '{' {
			closing = '}'
		}
		s.i++
		if s.eat(closing) {
			return true
		}
		for {
			if c == '{' {
				if _, _, ok := s.str(); !ok || !s.eat(':') {
					return false
				}
			}
			if !s.skip(depth + 1) {
				return false
			}
			if s.eat(',') {
				continue
			}
			return s.eat(closing)
		}
	}
	return false
}

// object consumes one KV pair object into p.
func (s *jscan) object(p *rawPair) error {
	if !s.eat('{') {
		return s.fail("'{'")
	}
	if s.eat('}') {
		return s.fail("a Key")
	}
	haveKey := false
	for {
		name, esc, ok := s.str()
		if !ok || !s.eat(':') {
			return s.fail("a field name")
		}
		field, err := fieldName(name, esc)
		if err != nil {
			return s.fail("a field name")
		}
		switch field {
		case "Key":
			if p.key, p.keyEsc, ok = s.str(); !ok {
				return s.fail("a string Key")
			}
			haveKey = true
		case "ModifyIndex":
			if p.mod, ok = s.uint(); !ok {
				return s.fail("an integer ModifyIndex")
			}
		case "Value":
			if s.literal("null") {
				p.val, p.valEsc = nil, false
			} else if p.val, p.valEsc, ok = s.str(); !ok {
				return s.fail("a string Value")
			} else if p.val == nil {
				p.val = []byte{} // "" is an empty value, not null
			}
		default:
			if !s.skip(0) {
				return s.fail("a value")
			}
		}
		if s.eat(',') {
			continue
		}
		if s.eat('}') {
			break
		}
		return s.fail("',' or '}'")
	}
	if !haveKey {
		return s.fail("a Key")
	}
	return nil
}

// fieldName returns which of Key, ModifyIndex and Value the field name in
// the JSON is, matched like encoding/json does (escapes decoded, case
// folded); any other name comes back as "" (Consul's other fields, Flags,
// CreateIndex, LockIndex, Session, are skipped without an allocation).
func fieldName(name []byte, esc bool) (string, error) {
	if esc {
		n, err := unquote(name)
		if err != nil {
			return "", err
		}
		name = []byte(n)
	}
	switch string(name) { // Consul's spelling: no case folding needed
	case "Key":
		return "Key", nil
	case "ModifyIndex":
		return "ModifyIndex", nil
	case "Value":
		return "Value", nil
	case "LockIndex", "Flags", "CreateIndex", "Session":
		return "", nil
	}
	for _, f := range kvFields {
		if bytes.EqualFold(name, []byte(f)) {
			return f, nil
		}
	}
	return "", nil
}

// kvFields are the fields of a KV list answer the scanner reads.
var kvFields = [...]string{"Key", "ModifyIndex", "Value"}
