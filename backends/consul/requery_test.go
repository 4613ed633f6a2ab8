package consul_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/backends/consul"
	"github.com/confit-dev/confit/internal/testserver"
)

// requestCounter dials real connections and counts the HTTP requests
// written on them whose request line starts with prefix.
type requestCounter struct {
	prefix []byte
	n      atomic.Int64
}

func (rc *requestCounter) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &requestConn{Conn: conn, rc: rc}, nil
}

type requestConn struct {
	net.Conn
	rc *requestCounter
}

func (c *requestConn) Write(p []byte) (int, error) {
	// net/http writes a request's header in one buffered write.
	if bytes.HasPrefix(p, c.rc.prefix) {
		c.rc.n.Add(1)
	}
	return c.Conn.Write(p)
}

func newPacedClient(t *testing.T, srv *testserver.ConsulServer, interval time.Duration, dial func(context.Context, string, string) (net.Conn, error)) *consul.Client {
	t.Helper()
	b, err := consul.New(t.Context(), backends.Config{Backend: "consul", Nodes: []string{srv.Addr()}},
		consul.Options{MinRequeryInterval: interval, DialContext: dial, EmptyGrace: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// TestRequeryLimitChurnOnly: the re-query limiter paces wake-ups that bring
// no change to any watched key (a sibling under the shared parent changing
// all the time), and never the answers that do (a watched key changing 50
// times a second is delivered change by change, not in bursts of 10 and
// then one per interval).
func TestRequeryLimitChurnOnly(t *testing.T) {
	srv := testserver.Consul(t, testserver.ConsulOptions{Dev: true})
	adm := admin(t, srv)

	t.Run("churn is limited", func(t *testing.T) {
		const interval = 100 * time.Millisecond
		// The blocking query lists the common parent "churn" of the two
		// watched prefixes; "churn/other" is under it but watched by none.
		rc := &requestCounter{prefix: []byte("GET /v1/kv/churn?")}
		b := newPacedClient(t, srv, interval, rc.Dial)
		put(t, adm, "/churn/a/k", "a")
		put(t, adm, "/churn/b/k", "b")
		ma, mb := watch(t, b, "/churn/a"), watch(t, b, "/churn/b")
		// Let the shared query settle on the parent.
		put(t, adm, "/churn/a/k", "a1")
		ma.until("a1", func(kvs map[string]string) bool { return kvs["/churn/a/k"] == "a1" })
		before := rc.n.Load()
		start := time.Now()
		puts := 0
		for time.Since(start) < 1500*time.Millisecond {
			put(t, adm, "/churn/other/k", fmt.Sprint(puts))
			puts++
		}
		elapsed := time.Since(start)
		queries := rc.n.Load() - before
		// A burst of 10, then one per interval; a few more for the
		// boundaries and the query in flight at the start.
		limit := int64(10 + elapsed/interval + 3)
		t.Logf("%d puts to an unwatched sibling in %v: %d blocking queries (limit %d)", puts, elapsed, queries, limit)
		if queries > limit {
			t.Errorf("blocking queries during churn = %d, want <= %d (10 + one per %v)", queries, limit, interval)
		}
		for _, m := range []*mirror{ma, mb} {
			select {
			case u := <-m.ch:
				t.Errorf("watch %s got %+v from changes outside it", m.prefix, u)
			default:
			}
		}
		// A real change after the churn is still delivered.
		put(t, adm, "/churn/b/k", "b1")
		mb.until("b1", func(kvs map[string]string) bool { return kvs["/churn/b/k"] == "b1" })
	})

	t.Run("real changes at 50/s are not queued", func(t *testing.T) {
		// With a limiter on every re-query, 50 changes 20 ms apart would
		// arrive as a burst of 10 and then one per second (coalesced).
		const interval, changes = time.Second, 50
		b := newPacedClient(t, srv, interval, nil)
		put(t, adm, "/fast/k", "init")
		m := watch(t, b, "/fast")
		seen := map[string]bool{}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for u := range m.ch {
				for _, c := range u.Changes {
					seen[c.Value] = true
				}
				if u.Err != nil || u.Reset {
					t.Errorf("unexpected update %+v", u)
				}
				if seen[fmt.Sprint(changes-1)] {
					return
				}
			}
		}()
		next := time.Now()
		for i := range changes {
			time.Sleep(time.Until(next))
			next = next.Add(20 * time.Millisecond)
			put(t, adm, "/fast/k", fmt.Sprint(i))
		}
		select {
		case <-done:
		case <-time.After(deadline):
			t.Fatalf("the last change was not delivered within %v; %d of %d seen", deadline, len(seen), changes)
		}
		t.Logf("%d of %d changes delivered one by one", len(seen), changes)
		if len(seen) < 25 {
			t.Errorf("changes delivered = %d of %d, want >= 25 (a real change must not wait for the limiter)", len(seen), changes)
		}
	})
}
