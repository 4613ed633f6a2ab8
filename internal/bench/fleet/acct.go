package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// acct is a small accounting TCP proxy in front of a Consul agent: it
// counts the HTTP requests the sidecars send (a Consul agent's own metrics
// are 10 s aggregates), and dials the agent from one of many loopback
// source addresses, as sidecars in pods with addresses of their own would:
// on one machine every sidecar is 127.0.0.1, and the agent's
// http_max_conns_per_client (200 per source address) would refuse a fleet.
type acct struct {
	ln       net.Listener
	upstream string
	requests atomic.Int64 // "GET /v1/" seen from the sidecars
	kv       atomic.Int64 // of which "GET /v1/kv/"
	accepted atomic.Int64
	next     atomic.Int64 // source address round robin

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// sources is how many loopback source addresses the proxy dials from.
const sources = 64

func startAcct(upstream string) (*acct, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("accounting proxy: %w", err)
	}
	a := &acct{ln: ln, upstream: upstream, conns: map[net.Conn]struct{}{}}
	go a.serve()
	return a, nil
}

func (a *acct) Addr() string { return a.ln.Addr().String() }

func (a *acct) Close() {
	a.ln.Close()
	a.mu.Lock()
	defer a.mu.Unlock()
	for c := range a.conns {
		c.Close()
	}
}

func (a *acct) track(c net.Conn, add bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if add {
		a.conns[c] = struct{}{}
	} else {
		delete(a.conns, c)
	}
}

func (a *acct) serve() {
	for {
		c, err := a.ln.Accept()
		if err != nil {
			return
		}
		a.accepted.Add(1)
		go a.pipe(c)
	}
}

func (a *acct) pipe(down net.Conn) {
	i := a.next.Add(1) % sources
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+i))}}
	up, err := d.Dial("tcp", a.upstream)
	if err != nil {
		down.Close()
		return
	}
	a.track(down, true)
	a.track(up, true)
	defer func() {
		a.track(down, false)
		a.track(up, false)
	}()
	done := make(chan struct{})
	go func() {
		io.Copy(down, up)
		down.Close()
		close(done)
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := down.Read(buf)
		if n > 0 {
			b := buf[:n]
			a.requests.Add(int64(bytes.Count(b, []byte("GET /v1/"))))
			a.kv.Add(int64(bytes.Count(b, []byte("GET /v1/kv/"))))
			if _, werr := up.Write(b); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	up.Close()
	<-done
}
