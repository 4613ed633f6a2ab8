package consul

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A KV hub's blocking query is the request of every change. Through
// net/http's Transport each answer crosses three goroutines (the caller, the
// connection's write loop and its read loop) and as many thread wake-ups;
// with 200 watched prefixes the two loops were a sixth of the daemon's CPU
// per change. A direct is one kept-alive HTTP/1.1 connection on which the
// hub writes its request and reads the answer itself, without net/http's
// goroutines. The api client builds the request (token, datacenter,
// headers) and net/http parses its answer (http.ReadResponse: chunked
// bodies, Connection: close); once the api client has built the hub's
// query, hub.listDirect writes that request's bytes again with a new index
// and wait and reads the answer with readAnswer (answer.go), going back to
// the api client for any answer but a list. It serves plain-HTTP requests
// to a loopback agent (the local agent a daemon normally talks to, asked
// for uncompressed answers anyway); anything else goes through the
// Transport.

// direct is a KV hub's connection: each KV hub has its own (so every
// group's query is served this way), one of the Client's blocking
// connections. Its methods are safe for concurrent use; a request arriving
// while another runs goes through the Transport.
type direct struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	mu   sync.Mutex // held for a whole request
	conn net.Conn   // nil: dial on the next request
	addr string     // what conn was dialled to
	br   *bufio.Reader
	bw   *bufio.Writer

	answers atomic.Int64  // answers read, for tests
	total   *atomic.Int64 // also counts them, when set (the Client's, for tests)
}

// errDirectBusy: the direct connection is in use; use the Transport.
var errDirectBusy = errors.New("consul: direct connection busy")

// usable reports whether req can go over the direct connection.
func (d *direct) usable(req *http.Request) bool {
	return d != nil && req.URL.Scheme == "http" && req.Method == http.MethodGet && req.Body == nil
}

// aLongTimeAgo is a deadline in the past: it ends a read or write at once.
var aLongTimeAgo = time.Unix(1, 0)

// roundTrip sends req and reads the answer; a 200 answer's body goes into
// tp (as tapTransport does), any other's into the response. A connection
// that was kept from an earlier request and fails before the first byte of
// the answer (the agent closed it meanwhile) is replaced once: the request
// is a GET. With raw set, raw is written instead of req.Write's bytes
// (hub.listDirect's copy of them) and the answer is read by readAnswer:
// its status, X-Consul-Index and body go into tp, and the response is nil.
// It returns errDirectBusy when another request holds the connection.
func (d *direct) roundTrip(req *http.Request, raw []byte, tp *tap) (*http.Response, error) {
	if !d.mu.TryLock() {
		return nil, errDirectBusy
	}
	defer d.mu.Unlock()
	ctx := req.Context()
	addr := req.URL.Host
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), "80")
	}
	if d.conn != nil && d.addr != addr {
		d.closeLocked()
	}
	for {
		reused := d.conn != nil
		if !reused {
			conn, err := d.dial(ctx, "tcp", addr)
			if err != nil {
				return nil, fmt.Errorf("dial %s: %w", addr, err)
			}
			d.conn, d.addr = conn, addr
			// 64 KiB: a list of a few hundred keys arrives in one read.
			d.br, d.bw = bufio.NewReaderSize(conn, 64<<10), bufio.NewWriter(conn)
		}
		resp, started, err := d.exchange(ctx, req, raw, tp)
		if err == nil {
			d.answers.Add(1)
			if d.total != nil {
				d.total.Add(1)
			}
			return resp, nil
		}
		d.closeLocked()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("GET %s: %w", req.URL.Path, ctx.Err())
		}
		if !reused || started {
			return nil, fmt.Errorf("GET %s: %w", req.URL.Path, err)
		}
	}
}

// exchange writes req and reads its answer on d.conn; started reports
// whether any of the answer had arrived when err happened. On error the
// caller closes the connection.
func (d *direct) exchange(ctx context.Context, req *http.Request, raw []byte, tp *tap) (resp *http.Response, started bool, err error) {
	conn := d.conn
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(aLongTimeAgo) })
	defer func() {
		if !stop() && err == nil {
			// ctx ended as the answer came in: the deadline may be set.
			err = ctx.Err()
		}
	}()
	if raw != nil {
		_, err = d.bw.Write(raw)
	} else {
		err = req.Write(d.bw)
	}
	if err != nil {
		return nil, false, err
	}
	if err := d.bw.Flush(); err != nil {
		return nil, false, err
	}
	if _, err := d.br.Peek(1); err != nil {
		return nil, false, err
	}
	if raw != nil {
		var a answer
		a, tp.body, err = readAnswer(d.br, tp.body)
		if err != nil {
			return nil, true, err
		}
		tp.ok, tp.status, tp.index, tp.hasIndex = a.status == http.StatusOK, a.status, a.index, a.hasIndex
		if a.close {
			d.closeLocked()
		}
		return nil, true, nil
	}
	resp, err = http.ReadResponse(d.br, req)
	if err != nil {
		return nil, true, err
	}
	if resp.StatusCode == http.StatusOK && tp != nil {
		buf := bytes.NewBuffer(tp.body[:0])
		_, err = buf.ReadFrom(resp.Body)
		tp.body, tp.ok = buf.Bytes(), err == nil
		resp.Body = io.NopCloser(strings.NewReader("[]"))
		resp.ContentLength = 2
		resp.Header.Del("Content-Length")
	} else {
		var b []byte
		b, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body = io.NopCloser(bytes.NewReader(b))
	}
	if err != nil {
		return nil, true, err
	}
	if resp.Close {
		d.closeLocked()
	}
	return resp, true, nil
}

func (d *direct) closeLocked() {
	if d.conn != nil {
		d.conn.Close()
	}
	d.conn, d.br, d.bw = nil, nil, nil
}

// close closes the connection (Client.Close).
func (d *direct) close() {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closeLocked()
}
