package consul

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"testing"
)

// agentAnswers are answers as a Consul agent sends them, and a few it does
// not.
var agentAnswers = []string{
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nVary: Accept-Encoding\r\nX-Consul-Default-Acl-Policy: allow\r\nX-Consul-Effective-Consistency: leader\r\nX-Consul-Index: 42\r\nX-Consul-Knownleader: true\r\nX-Consul-Lastcontact: 0\r\nX-Consul-Query-Backend: blocking-query\r\nDate: Wed, 02 Dec 2026 13:00:00 GMT\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"19\r\n[{\"Key\":\"a\",\"ModifyIndex\"\r\n5\r\n:42}]\r\n0\r\n\r\n",
	"HTTP/1.1 404 Not Found\r\nX-Consul-Index: 7\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nx-consul-index: 8\r\nContent-Length: 2\r\nConnection: keep-alive, Close\r\n\r\n[]",
	"HTTP/1.1 403 Forbidden\r\nContent-Length: 17\r\n\r\nPermission denied",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]HTTP/1.1 200 OK\r\n", // the next answer's start stays unread
	"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n[]",
	"HTTP/1.1 200 OK\r\n\r\n[]", // to the close
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\n[]\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\n Folded: x\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\n[]\r\n0\r\nTrailer: v\r\n\r\n",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
}

// TestReadAnswer: an agent's answers are read as net/http reads them; the
// others are refused.
func TestReadAnswer(t *testing.T) {
	for i, want := range []struct {
		status int
		index  uint64
		close  bool
		body   string
		err    error
	}{
		{200, 42, false, `[{"Key":"a","ModifyIndex":42}]`, nil},
		{404, 7, false, "", nil},
		{200, 8, true, "[]", nil},
		{403, 0, false, "Permission denied", nil},
		{200, 0, false, "[]", nil},
		{err: errUnusual}, {err: errUnusual}, {err: errUnusual}, {err: errUnusual}, {err: errUnusual}, {err: errUnusual},
	} {
		a, body, err := readAnswer(bufio.NewReader(bytes.NewReader([]byte(agentAnswers[i]))), nil)
		if err != want.err || (err == nil && (a.status != want.status || a.index != want.index || a.close != want.close || string(body) != want.body)) {
			t.Errorf("answer %d: %+v %q %v, want %+v", i, a, body, err, want)
		}
	}
}

// FuzzReadAnswer: whatever bytes readAnswer reads, http.ReadResponse reads
// the same way: status, X-Consul-Index, Connection: close, body, and where
// the next answer starts.
func FuzzReadAnswer(f *testing.F) {
	for _, a := range agentAnswers {
		f.Add([]byte(a))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(b), 64)
		a, body, err := readAnswer(br, nil)
		if err != nil {
			return
		}
		rest, _ := io.ReadAll(br)
		gr := bufio.NewReaderSize(bytes.NewReader(b), 64)
		resp, err := http.ReadResponse(gr, &http.Request{Method: http.MethodGet})
		if err != nil {
			t.Fatalf("readAnswer read %+v %q, http.ReadResponse failed: %v\n%q", a, body, err, b)
		}
		gbody, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("readAnswer read %+v %q, http.ReadResponse's body failed: %v\n%q", a, body, err, b)
		}
		grest, _ := io.ReadAll(gr)
		idx, ierr := strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64)
		if resp.StatusCode != a.status || (ierr == nil) != a.hasIndex || (a.hasIndex && idx != a.index) || resp.Close != a.close ||
			!bytes.Equal(gbody, body) || !bytes.Equal(grest, rest) {
			t.Fatalf("readAnswer: %+v body %q rest %q\nhttp.ReadResponse: %d %q close %v body %q rest %q\nanswer %q",
				a, body, rest, resp.StatusCode, resp.Header.Get("X-Consul-Index"), resp.Close, gbody, grest, b)
		}
	})
}
