package integration

// End-to-end: the confit binary against a real ZooKeeper server.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confit-dev/confit/internal/testserver"
	"github.com/go-zookeeper/zk"
)

// zkAdmin connects a session of the test's own to addr, for writing
// behind confit's back. Its 10 s session (the server's default maximum)
// outlives the pauses below.
func zkAdmin(t *testing.T, addr string) *zk.Conn {
	t.Helper()
	conn, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return conn
}

// zkRetry runs op until it succeeds (the admin session reconnects after a
// pause), failing t after waitTimeout.
func zkRetry(t *testing.T, what string, op func() error) {
	t.Helper()
	var err error
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		if err = op(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("zookeeper %s: %v", what, err)
}

// zkPut sets key to value, creating it and its parents as needed.
func zkPut(t *testing.T, c *zk.Conn, key, value string) {
	t.Helper()
	zkRetry(t, "put "+key, func() error { return testserver.ZooKeeperPut(c, key, value) })
}

// zkDelete deletes the znode key (which must have no children).
func zkDelete(t *testing.T, c *zk.Conn, key string) {
	t.Helper()
	zkRetry(t, "delete "+key, func() error {
		if err := c.Delete(key, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return err
		}
		return nil
	})
}

// cuttable forwards loopback TCP connections to a server. While cut, it
// closes every new connection at once, as a network that refuses: a
// client kept off the server while the server expires its session (a
// SIGSTOPped server does not decide which of its resumed threads runs
// first, the session expirer or the reconnection, so without the cut the
// session may or may not survive). It is a cut network, not a fake
// server: what answers is the real ZooKeeper.
type cuttable struct {
	ln  net.Listener
	to  string
	cut atomic.Bool
	wg  sync.WaitGroup
}

// newCuttable listens on a free loopback port, forwarding to addr, until
// t ends.
func newCuttable(t *testing.T, addr string) *cuttable {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cuttable{ln: ln, to: addr}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

// Addr is the address to give the client instead of the server's.
func (p *cuttable) Addr() string { return p.ln.Addr().String() }

func (p *cuttable) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.cut.Load() {
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.to, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		// Either side ending ends both; the copies end with them, or
		// when the listener closes and the test's servers stop.
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

// TestDaemonZooKeeper: confit against a real ZooKeeper renders one-shot
// (leaf znodes only, as confd: the parents a writer creates are no
// values); with -watch a put, a nested put and a delete each reach the
// files; with the server paused (SIGSTOP) past the session timeout and
// confit kept off the network until the server has expired its session,
// the files stay as they were, and once confit reconnects the new session
// re-lists the prefix: a delete and a put made while it was away are
// rendered, and the watches work again.
func TestDaemonZooKeeper(t *testing.T) {
	s := testserver.ZooKeeper(t, testserver.ZooKeeperOptions{}) // 500 ms ticks: sessions of 1 to 10 s
	adm := zkAdmin(t, s.Addr())
	out, confdir := t.TempDir(), t.TempDir()
	kvDest, nameDest := filepath.Join(out, "kv.conf"), filepath.Join(out, "name.conf")
	writeFiles(t, confdir, map[string]string{
		"conf.d/kv.toml":      resourceTOML("kv.tmpl", kvDest, "/zk", "/"),
		"conf.d/name.toml":    resourceTOML("name.tmpl", nameDest, "/zk", "/name"),
		"templates/kv.tmpl":   "{{range gets \"/*\"}}{{base .Key}}={{.Value}}\n{{end}}{{range gets \"/*/*\"}}{{.Key}}={{.Value}}\n{{end}}",
		"templates/name.tmpl": "name={{getv \"/name\"}}\n",
	})
	zkPut(t, adm, "/zk/keep", "k")
	zkPut(t, adm, "/zk/name", "shop")
	zkPut(t, adm, "/zk/db/url", "u") // /zk/db is interior: not a value

	t.Run("one-shot", func(t *testing.T) {
		runConfitOnce(t, "-backend", "zookeeper", "-node", s.Addr(), "-confdir", confdir)
		if got, want := readFile(t, kvDest), "keep=k\nname=shop\n/db/url=u\n"; got != want {
			t.Errorf("kv.conf = %q, want %q", got, want)
		}
		if got, want := readFile(t, nameDest), "name=shop\n"; got != want {
			t.Errorf("name.conf = %q, want %q", got, want)
		}
	})

	link := newCuttable(t, s.Addr())
	d := startConfitDaemon(t, "-backend", "zookeeper", "-node", link.Addr(), "-confdir", confdir,
		"-wait", "50ms:1s", "-zk-session-timeout", "2s")
	waitFile(t, kvDest, "keep=k\nname=shop\n/db/url=u\n")

	t.Run("put and delete", func(t *testing.T) {
		zkPut(t, adm, "/zk/a", "1")
		waitFile(t, kvDest, "a=1\nkeep=k\nname=shop\n/db/url=u\n")
		zkPut(t, adm, "/zk/db/port", "5432")
		waitFile(t, kvDest, "a=1\nkeep=k\nname=shop\n/db/port=5432\n/db/url=u\n")
		zkPut(t, adm, "/zk/name", "shop2")
		waitFile(t, nameDest, "name=shop2\n")
		zkDelete(t, adm, "/zk/a")
		zkDelete(t, adm, "/zk/db/port")
		waitFile(t, kvDest, "keep=k\nname=shop2\n/db/url=u\n")
	})

	t.Run("paused past the session timeout", func(t *testing.T) {
		files := map[string]string{kvDest: readFile(t, kvDest), nameDest: readFile(t, nameDest)}
		relists0 := d.counter(t, `confit_backend_relists_total{backend="zookeeper"}`)
		link.cut.Store(true) // the connection up now goes on; new ones are refused
		if err := s.Pause(); err != nil {
			t.Fatal(err)
		}
		resumed := false
		defer func() {
			if !resumed {
				_ = s.Resume()
			}
		}()
		stayUnchanged(t, d, files, 5*time.Second) // past the 2 s session: confit disconnects
		if err := s.Resume(); err != nil {
			t.Fatal(err)
		}
		resumed = true
		zkDelete(t, adm, "/zk/keep")
		zkPut(t, adm, "/zk/during", "outage")
		stayUnchanged(t, d, files, 4*time.Second) // the server expires confit's session meanwhile
		link.cut.Store(false)

		waitFile(t, kvDest, "during=outage\nname=shop2\n/db/url=u\n")
		if got := readFile(t, nameDest); got != "name=shop2\n" {
			t.Errorf("name.conf = %q, want it unchanged", got)
		}
		relists := d.counter(t, `confit_backend_relists_total{backend="zookeeper"}`) - relists0
		if relists < 1 {
			t.Errorf("relists during the outage: %v, want at least 1 (the session expired)", relists)
		}
		if !strings.Contains(d.log.String(), "session expired") {
			t.Errorf("the log does not say the session expired")
		}
		waitFor(t, "/health ok after the new session", func() (bool, string) {
			code, body, err := d.health()
			return err == nil && code == 200, fmt.Sprintf("%d %q %v", code, body, err)
		})
		// The new session's watches see changes again.
		zkPut(t, adm, "/zk/after", "1")
		waitFile(t, kvDest, "after=1\nduring=outage\nname=shop2\n/db/url=u\n")
		zkPut(t, adm, "/zk/name", "shop3")
		waitFile(t, nameDest, "name=shop3\n")
	})
}

// TestOnetimeZooKeeperDigestAuth: a znode with a digest-only ACL renders
// with -username/-password; without them, or with a wrong password, the
// one-shot exits 1 naming the node and the znode and leaves the file as
// it was. The password is in none of the output (debug logs included).
func TestOnetimeZooKeeperDigestAuth(t *testing.T) {
	const user, password = "reader", "pw-Zk9-not-in-output"
	s := testserver.ZooKeeper(t, testserver.ZooKeeperOptions{})
	adm := zkAdmin(t, s.Addr())
	zkPut(t, adm, "/app/open", "o")
	if _, err := adm.Create("/app/secret", []byte("s"), 0, zk.DigestACL(zk.PermAll, user, password)); err != nil {
		t.Fatalf("create /app/secret with a digest ACL: %v", err)
	}
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
	}{
		{"credentials", []string{"-username", user, "-password", password}, 0},
		{"none", nil, 1},
		{"wrong password", []string{"-username", user, "-password", "wrong-" + password}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			confdir, dest := oneResource(t)
			if err := os.WriteFile(dest, []byte("old\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"-backend", "zookeeper", "-node", s.Addr(), "-confdir", confdir, "-log-level", "debug"}, tc.args...)
			code, out, _ := runOneShot(t, args...)
			if code != tc.wantCode {
				t.Fatalf("exit code = %d, want %d\n%s", code, tc.wantCode, out)
			}
			want := "open=o\nsecret=s\n"
			if code != 0 {
				want = "old\n"
				for _, w := range []string{s.Addr(), "/app/secret", "not authenticated"} {
					if !strings.Contains(out, w) {
						t.Errorf("output does not name %s:\n%s", w, out)
					}
				}
			}
			if got := readFile(t, dest); got != want {
				t.Errorf("%s = %q, want %q", filepath.Base(dest), got, want)
			}
			if strings.Contains(out, password) {
				t.Errorf("the output holds the password:\n%s", out)
			}
		})
	}
}
