package integration

// examples/haproxy-register for real: two HTTP backends, each announced by
// its own confit register process (one from a [register] table, one from
// flags), and a third confit -watch rendering haproxy.cfg from what they
// registered, under continuous load.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confit-dev/confit/internal/testserver"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// registeredBackend is an HTTP server answering its ID on / and 200 on
// /health while healthy.
type registeredBackend struct {
	id      string
	addr    string
	healthy atomic.Bool
	srv     *http.Server
}

func startRegisteredBackend(t *testing.T, id string) *registeredBackend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &registeredBackend{id: id, addr: l.Addr().String()}
	b.healthy.Store(true)
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			if !b.healthy.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		io.WriteString(w, id)
	})}
	go b.srv.Serve(l)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

// startConfitRegister starts confit with args in dir and returns a func
// that sends SIGTERM and waits for the exit (bounded), returning how long
// it took. The test's clean-up stops it too, by PID.
func startConfitRegister(t *testing.T, dir string, env []string, logPath string, args ...string) (term func() time.Duration) {
	t.Helper()
	stop := startConfitProc(t, dir, env, logPath, 30*time.Second, args...)
	term = func() time.Duration {
		took, ok := stop()
		if !ok {
			t.Errorf("confit register did not exit within 30 s of SIGTERM")
		}
		return took
	}
	t.Cleanup(func() { term() }) // before startConfitProc's, which shows the log
	return term
}

func TestHAProxyRegisterExample(t *testing.T) {
	haproxyBin, err := exec.LookPath("haproxy")
	if err != nil {
		if testserver.InCI() {
			t.Fatal("haproxy is not installed; make test installs it (scripts/test-deps.sh)")
		}
		t.Skip("haproxy is not installed (apt-get install haproxy; make test installs it)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	etcd := testserver.Etcd(t, testserver.EtcdOptions{})
	admin := etcdAdmin(t, etcd, "", "")

	web1, web2 := startRegisteredBackend(t, "web1"), startRegisteredBackend(t, "web2")
	ids := map[string]bool{"web1": true, "web2": true}
	work := t.TempDir()
	examples := copyExamples(t)
	dir := filepath.Join(examples, "haproxy-register")
	port, err := testserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	frontend := fmt.Sprintf("127.0.0.1:%d", port)
	env := exampleEnv(work, "WEB_BIND="+frontend, "HAPROXY_PIDFILE="+filepath.Join(work, "haproxy.pid"))
	store := []string{"-backend", "etcd", "-node", etcd.Endpoint(), "-log-level", "debug"}

	// web1 from the example's [register] table (its port filled in), web2
	// from flags; checks faster than the example's, for the test's sake.
	table := filepath.Join(dir, "backend", "conf.d", "web.toml")
	data, err := os.ReadFile(table)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "127.0.0.1:8081", web1.addr)
	text = strings.Replace(text, `interval = "1s"`, `interval = "200ms"`, 1)
	text = strings.Replace(text, `timeout  = "500ms"`, `timeout  = "200ms"`, 1)
	if err := os.WriteFile(table, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	startConfitRegister(t, dir, env, filepath.Join(work, "register-web1.log"),
		append([]string{"register", "-confdir", "backend"}, store...)...)
	term2 := startConfitRegister(t, dir, env, filepath.Join(work, "register-web2.log"),
		append([]string{"register", "-confdir", "none", "-key", "/services/web/web2", "-value", web2.addr,
			"-check-http", "http://" + web2.addr + "/health", "-check-interval", "200ms", "-check-timeout", "200ms",
			"-rise", "2", "-fall", "2", "-ttl", "10s", "-drain", "3s"}, store...)...)
	waitUntil(t, 30*time.Second, "both instances registered", func() bool {
		resp, err := admin.Get(ctx, "/services/web/", clientv3.WithPrefix())
		return err == nil && len(resp.Kvs) == 2
	})

	// The load balancer: the first file, HAProxy, then confit -watch.
	lbArgs := append([]string{"-confdir", "."}, store...)
	if out, code := runExample(t, dir, env, append([]string{"-onetime"}, lbArgs...)...); code != 0 {
		t.Fatalf("confit -onetime: exit %d\n%s", code, out)
	}
	dest := filepath.Join(dir, "out", "haproxy.cfg")
	hap := startHAProxy(t, haproxyBin, work, dest, frontend)
	startConfitWatch(t, dir, env, filepath.Join(work, "confit-lb.log"), append([]string{"-watch"}, lbArgs...)...)

	const clients = 4
	load := startLoad(ctx, "http://"+frontend+"/", ids, clients)
	defer load.stop()
	stats := &load.stats
	// converged: 20 fresh requests in a row (round robin over at most two
	// servers) reach only servers of want, and every one of them.
	converged := func(want []string) bool { return load.reaches(ctx, want, 20, false) }
	waitTraffic := func(what string, want ...string) time.Duration {
		t.Helper()
		start := time.Now()
		for !converged(want) {
			if time.Since(start) > 60*time.Second {
				t.Fatalf("%s: traffic did not reach exactly %v within 60 s (workers %v)", what, want, hap.workers())
			}
			time.Sleep(5 * time.Millisecond)
		}
		return time.Since(start)
	}
	waitTraffic("start", "web1", "web2")

	// web2's health check fails (the process still answers, as one that
	// is shutting down or overloaded): withdrawn, then back.
	web2.healthy.Store(false)
	down := waitTraffic("web2 unhealthy", "web1")
	web2.healthy.Store(true)
	up := waitTraffic("web2 healthy again", "web1", "web2")

	// A rolling restart of web2: SIGTERM to its confit deletes the key at
	// once and waits the drain (3 s) before it exits; HAProxy has dropped
	// web2 by then, so the server can stop without a failed request.
	var exited time.Duration
	termDone := make(chan struct{})
	go func() { exited = term2(); close(termDone) }()
	removed := waitTraffic("web2 drained", "web1")
	<-termDone
	web2.srv.Close()
	time.Sleep(time.Second) // load on web1 alone, web2 gone
	load.stop()
	if exited < 3*time.Second {
		t.Errorf("confit register exited %v after SIGTERM, before its 3 s drain", exited)
	}
	if f := stats.failed.Load(); f > 0 {
		t.Errorf("%d of %d requests failed; first: %q", f, stats.sent.Load(), stats.errs)
	}
	figures := fmt.Sprintf(`HAProxy register example (2 x confit register -> etcd -> confit -watch -> haproxy -W, %d keep-alive clients)
  requests sent / failed:              %d / %d
  check fails -> out of traffic:       %v (fall 2 x interval 200ms, then render + reload)
  check passes -> back in traffic:     %v (rise 2 x interval 200ms)
  SIGTERM -> out of traffic:           %v; confit exited after %v (drain 3s)
`, clients, stats.sent.Load(), stats.failed.Load(), down.Round(time.Millisecond), up.Round(time.Millisecond),
		removed.Round(time.Millisecond), exited.Round(time.Millisecond))
	t.Log("\n" + figures)
	fmt.Fprint(os.Stderr, figures)
}
