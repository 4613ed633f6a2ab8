package consul

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
)

// http.ReadResponse builds a header map with a canonical key for each of
// the ~10 header lines of an agent's answer (the X-Consul-* names are not
// in net/http's table, so each is a new string): a seventh of the daemon's
// samples per change after the api client was gone, and the most frequent
// allocation. hub.listDirect needs three headers and the body, so
// readAnswer reads just those, from the answers an agent sends (Go's
// net/http server: HTTP/1.1, a Content-Length or a chunked body), and
// gives up on anything else; FuzzReadAnswer holds it to http.ReadResponse.

// answer is what readAnswer reads of an HTTP response besides its body.
type answer struct {
	status   int
	index    uint64 // X-Consul-Index
	hasIndex bool
	close    bool // Connection: close
}

// errUnusual: the answer is not one readAnswer reads; the connection is in
// an unknown state and must be closed.
var errUnusual = errors.New("consul: an answer the direct reader does not read")

// maxAnswerLine bounds a status or header line (an agent's are short).
const maxAnswerLine = 8 << 10

// readAnswer reads one HTTP/1.1 response to a GET from br and appends its
// body to body[:0]. It returns errUnusual for an answer it does not read
// as net/http would: another protocol version, a status line or header it
// does not parse, a folded header, a repeated Content-Length,
// Transfer-Encoding, Connection or X-Consul-Index, a transfer coding other
// than chunked or with a Content-Length, an answer without either (its
// body would end at the connection's close), a 1xx status.
func readAnswer(br *bufio.Reader, body []byte) (answer, []byte, error) {
	var a answer
	line, err := readLine(br)
	if err != nil {
		return a, body, err
	}
	// "HTTP/1.1 200 OK"
	rest, ok := bytes.CutPrefix(line, []byte("HTTP/1.1 "))
	if !ok || len(rest) < 3 || (len(rest) > 3 && rest[3] != ' ') {
		return a, body, errUnusual
	}
	for _, c := range rest[:3] {
		if c < '0' || c > '9' {
			return a, body, errUnusual
		}
		a.status = a.status*10 + int(c-'0')
	}
	if a.status < 200 {
		return a, body, errUnusual
	}
	var (
		length  = int64(-1)
		chunked bool
		seen    [4]bool // content-length, transfer-encoding, connection, x-consul-index
	)
	for {
		line, err := readLine(br)
		if err != nil {
			return a, body, err
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !validFieldName(name) {
			return a, body, errUnusual
		}
		value = bytes.Trim(value, " \t")
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return a, body, errUnusual // net/http refuses it
			}
		}
		which := -1
		switch {
		case asciiFold(name, "content-length"):
			which = 0
			n, err := strconv.ParseUint(string(value), 10, 63)
			if err != nil {
				return a, body, errUnusual
			}
			length = int64(n)
		case asciiFold(name, "transfer-encoding"):
			which = 1
			if !asciiFold(value, "chunked") {
				return a, body, errUnusual
			}
			chunked = true
		case asciiFold(name, "connection"):
			which = 2
			a.close = hasCloseToken(value)
		case asciiFold(name, "x-consul-index"):
			which = 3
			n, err := strconv.ParseUint(string(value), 10, 64)
			a.index, a.hasIndex = n, err == nil
		}
		if which >= 0 {
			if seen[which] {
				return a, body, errUnusual
			}
			seen[which] = true
		}
	}
	body = body[:0]
	switch {
	case a.status == 204 || a.status == 304:
		if chunked || length > 0 {
			return a, body, errUnusual
		}
		return a, body, nil
	case chunked && length >= 0, !chunked && length < 0:
		return a, body, errUnusual
	case chunked:
		return a, body, readChunked(br, &body)
	default:
		body, err = readN(br, body, length)
		return a, body, err
	}
}

// readChunked appends a chunked body from br to *body, trailer included
// (read and dropped).
func readChunked(br *bufio.Reader, body *[]byte) error {
	for {
		line, err := readLine(br)
		if err != nil {
			return err
		}
		if len(line) == 0 || len(line) > 16 { // chunk extensions too: not an agent's
			return errUnusual
		}
		n, err := strconv.ParseUint(string(line), 16, 63)
		if err != nil {
			return errUnusual
		}
		if n == 0 {
			break
		}
		if *body, err = readN(br, *body, int64(n)); err != nil {
			return err
		}
		crlf, err := readLine(br)
		if err != nil {
			return err
		}
		if len(crlf) != 0 {
			return errUnusual
		}
	}
	// The trailer: an agent sends none, so the empty line that ends it.
	line, err := readLine(br)
	if err != nil {
		return err
	}
	if len(line) != 0 {
		return errUnusual
	}
	return nil
}

// readN appends n bytes from br to b.
func readN(br *bufio.Reader, b []byte, n int64) ([]byte, error) {
	if n > 1<<40 {
		return b, errUnusual
	}
	for n > 0 {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		room := min(int64(cap(b)-len(b)), n)
		m, err := io.ReadFull(br, b[len(b):len(b)+int(room)])
		b = b[:len(b)+m]
		n -= int64(m)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return b, err
		}
	}
	return b, nil
}

// readLine reads a line ending in "\r\n" and returns it without them.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, errUnusual
	}
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if len(line) > maxAnswerLine || len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, errUnusual
	}
	return line[:len(line)-2], nil
}

// validFieldName reports whether name is an HTTP token (RFC 9110).
func validFieldName(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0:
		default:
			return false
		}
	}
	return true
}

// hasCloseToken reports whether a Connection header's value holds the
// token "close" (any case) among its comma-separated tokens, as net/http
// reads it.
func hasCloseToken(v []byte) bool {
	for tok := range bytes.SplitSeq(v, []byte(",")) {
		if asciiFold(bytes.Trim(tok, " \t"), "close") {
			return true
		}
	}
	return false
}

// asciiFold reports whether b equals the lower-case ASCII s, ignoring case.
func asciiFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
