package integration

// The HAProxy example, for real: etcd, a master-worker HAProxy, three HTTP
// backends and confit -watch running examples/haproxy, under continuous
// load while the registry changes 50 times.

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/confit-dev/confit/internal/testserver"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// haproxyChanges is how many registry changes the scenario applies.
const haproxyChanges = 50

// haproxyServer is one server of the model of /services/web.
type haproxyServer struct {
	present bool
	addr    string
	weight  int
	state   string // ready, drain, maint
}

// haproxyModel is what the test put in etcd; active() is where traffic
// must go.
type haproxyModel map[string]*haproxyServer

func (m haproxyModel) active() []string {
	var ids []string
	for id, s := range m {
		if s.present && s.state == "ready" {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// haproxyProc is a master-worker HAProxy started by the test. Its workers
// share the master's process group, which the clean-up kills.
type haproxyProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// workers returns the master's children (its workers), sorted.
func (h *haproxyProc) workers() []int {
	pid := h.cmd.Process.Pid
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		out, _ := exec.Command("pgrep", "-P", strconv.Itoa(pid)).Output()
		data = out
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	slices.Sort(pids)
	return pids
}

// startHAProxy starts haproxy -W -db with cfg and stops it (master, then
// its whole process group) when t ends.
func startHAProxy(t *testing.T, bin, dir, cfg, frontend string) *haproxyProc {
	t.Helper()
	h := &haproxyProc{done: make(chan struct{}), log: filepath.Join(dir, "haproxy.log")}
	logf, err := os.Create(h.log)
	if err != nil {
		t.Fatal(err)
	}
	h.cmd = exec.Command(bin, "-W", "-db", "-f", cfg, "-p", filepath.Join(dir, "haproxy.pid"),
		"-S", filepath.Join(dir, "master.sock"))
	h.cmd.Stdout, h.cmd.Stderr = logf, logf
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := h.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start haproxy: %v", err)
	}
	go func() {
		_ = h.cmd.Wait()
		logf.Close()
		close(h.done)
	}()
	t.Cleanup(func() {
		pid := h.cmd.Process.Pid
		_ = syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
		}
		// Workers that outlived their master, or a master that hung.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-h.done
		if t.Failed() {
			data, _ := os.ReadFile(h.log)
			t.Logf("--- haproxy log ---\n%s", tailLines(string(data), 60))
		}
	})
	waitUntil(t, 30*time.Second, "haproxy frontend", func() bool {
		c, err := net.DialTimeout("tcp", frontend, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return h
}

// startConfitWatch starts confit with args in dir, its log in logPath, and
// stops it by PID (SIGTERM, then SIGKILL of its process group) when t ends.
func startConfitWatch(t *testing.T, dir string, env []string, logPath string, args ...string) {
	t.Helper()
	startConfitProc(t, dir, env, logPath, 15*time.Second, args...)
}

// startConfitProc starts confit with args in dir, its output in logPath,
// in a process group of its own. stop sends SIGTERM and waits up to grace
// for the exit, then kills the process group with SIGKILL; it returns how
// long the process took to exit and whether it exited within grace. The
// clean-up of t stops it too, and shows the end of the log if t failed.
func startConfitProc(t *testing.T, dir string, env []string, logPath string, grace time.Duration, args ...string) (stop func() (took time.Duration, ok bool)) {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(confitBinary(t), args...)
	cmd.Dir, cmd.Env = dir, env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start confit: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	stop = func() (time.Duration, bool) {
		start := time.Now()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
			return time.Since(start), true
		case <-time.After(grace):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			return time.Since(start), false
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("--- %s ---\n%s", filepath.Base(logPath), tailLines(string(data), 80))
		}
	})
	return stop
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// loadStats counts the load generator's requests.
type loadStats struct {
	sent, failed atomic.Int64
	mu           sync.Mutex
	errs         []string // the first few failures
}

func (s *loadStats) fail(msg string) {
	s.failed.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) < 10 {
		s.errs = append(s.errs, msg)
	}
}

// haproxyLoad is keep-alive clients hitting a frontend until stop, and a
// sampler that opens a new connection per request, so it always reaches
// the newest worker; the sampler's requests count as load too.
type haproxyLoad struct {
	stats   loadStats
	url     string
	ids     map[string]bool
	sampler *http.Client
	stop    func() // ends the clients and waits for them; later calls do nothing more
}

// startLoad starts clients keep-alive clients GETting url (each answer
// must be one of ids) until ctx ends or stop is called.
func startLoad(ctx context.Context, url string, ids map[string]bool, clients int) *haproxyLoad {
	l := &haproxyLoad{url: url, ids: ids,
		sampler: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer c.CloseIdleConnections()
			for loadCtx.Err() == nil {
				l.stats.sent.Add(1)
				if _, err := fetch(loadCtx, c, url, ids); err != nil && loadCtx.Err() == nil {
					l.stats.fail(err.Error())
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	l.stop = func() { stopLoad(); wg.Wait() }
	return l
}

// reaches sends up to n fresh requests and reports whether they reached
// only servers of want, and every one of them; with early it returns as
// soon as every one was reached, else it sends all n.
func (l *haproxyLoad) reaches(ctx context.Context, want []string, n int, early bool) bool {
	seen := map[string]bool{}
	for range n {
		l.stats.sent.Add(1)
		id, err := fetch(ctx, l.sampler, l.url, l.ids)
		if err != nil {
			l.stats.fail("sampler: " + err.Error())
			return false
		}
		if !slices.Contains(want, id) {
			return false
		}
		seen[id] = true
		if early && len(seen) == len(want) {
			return true
		}
	}
	return len(seen) == len(want)
}

// fetch GETs url and returns the backend ID that answered.
func fetch(ctx context.Context, c *http.Client, url string, ids map[string]bool) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK || !ids[string(body)] {
		return "", fmt.Errorf("%s: %q", resp.Status, body)
	}
	return string(body), nil
}

func TestHAProxyExample(t *testing.T) {
	haproxyBin, err := exec.LookPath("haproxy")
	if err != nil {
		if testserver.InCI() {
			t.Fatal("haproxy is not installed; make test installs it (scripts/test-deps.sh)")
		}
		t.Skip("haproxy is not installed (apt-get install haproxy; make test installs it)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()

	etcd := testserver.Etcd(t, testserver.EtcdOptions{})
	admin := etcdAdmin(t, etcd, "", "")

	// Three backends; each answers with its own ID.
	ids := map[string]bool{}
	model := haproxyModel{}
	for _, id := range []string{"web1", "web2", "web3"} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, id)
		})}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
		ids[id] = true
		model[id] = &haproxyServer{addr: l.Addr().String(), weight: 100, state: "ready"}
	}

	work := t.TempDir()
	dir := filepath.Join(copyExamples(t), "haproxy")
	port, err := testserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	frontend := fmt.Sprintf("127.0.0.1:%d", port)
	env := exampleEnv(work, "WEB_BIND="+frontend, "HAPROXY_PIDFILE="+filepath.Join(work, "haproxy.pid"))
	etcdArgs := []string{"-backend", "etcd", "-node", etcd.Endpoint(), "-confdir", ".", "-log-level", "debug"}
	dest := filepath.Join(dir, "out", "haproxy.cfg")

	// apply writes one change of the model to etcd, in one transaction.
	apply := func(id string) {
		t.Helper()
		s := model[id]
		key := "/services/web/" + id + "/"
		var ops []clientv3.Op
		if s.present {
			ops = append(ops, clientv3.OpPut(key+"addr", s.addr), clientv3.OpPut(key+"weight", strconv.Itoa(s.weight)),
				clientv3.OpPut(key+"state", s.state))
		} else {
			ops = append(ops, clientv3.OpDelete(key, clientv3.WithPrefix()))
		}
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		if _, err := admin.Txn(cctx).Then(ops...).Commit(); err != nil {
			t.Fatalf("etcd txn for %s: %v", id, err)
		}
	}
	model["web1"].present, model["web2"].present = true, true
	apply("web1")
	apply("web2")

	// The first configuration, rendered before HAProxy runs (reload.sh:
	// no pid file, nothing to reload), as in the README.
	if out, code := runExample(t, dir, env, append([]string{"-onetime"}, etcdArgs...)...); code != 0 {
		t.Fatalf("confit -onetime: exit %d\n%s", code, out)
	}
	hap := startHAProxy(t, haproxyBin, work, dest, frontend)
	confitLog := filepath.Join(work, "confit.log")
	startConfitWatch(t, dir, env, confitLog, append([]string{"-watch"}, etcdArgs...)...)

	// The load: keep-alive clients hitting the frontend until the end.
	const clients = 4
	load := startLoad(ctx, "http://"+frontend+"/", ids, clients)
	defer load.stop()
	stats := &load.stats
	// converged reports whether one round of fresh requests reaches exactly
	// the active servers (all of them, and no other).
	converged := func(want []string) bool { return load.reaches(ctx, want, 300, true) }
	// waitTraffic waits for a worker other than those in old (none when old
	// is nil) and then for traffic to reach exactly model.active().
	waitTraffic := func(what string, old []int) {
		t.Helper()
		want := model.active()
		deadline := time.Now().Add(60 * time.Second)
		for {
			fresh := old == nil
			for _, w := range hap.workers() {
				fresh = fresh || !slices.Contains(old, w)
			}
			if fresh && converged(want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: traffic did not reach exactly %v within 60 s (workers %v, before %v)", what, want, hap.workers(), old)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitTraffic("start", nil)

	// The changes: add, remove, re-weight, drain, maintenance and back, at
	// random (fixed seed) but never leaving no server active, and each
	// changing the rendered file.
	rng := rand.New(rand.NewPCG(6, 50))
	order := []string{"web1", "web2", "web3"}
	var latencies []time.Duration
	counts := map[string]int{}
	change := func(i int) {
		t.Helper()
		for {
			id := order[rng.IntN(len(order))]
			s := model[id]
			before := *s
			var op string
			switch {
			case !s.present:
				op, s.present, s.state, s.weight = "add", true, "ready", 10*(1+rng.IntN(10))
			default:
				switch rng.IntN(4) {
				case 0:
					op, s.present = "remove", false
				case 1:
					if s.state != "ready" {
						continue
					}
					w := 10 * (1 + rng.IntN(10))
					if w == s.weight {
						continue
					}
					op, s.weight = "reweight", w
				case 2:
					if s.state == "ready" {
						op, s.state = "drain", "drain"
					} else {
						op, s.state = "undrain", "ready"
					}
				case 3:
					if s.state == "maint" {
						continue
					}
					op, s.state = "maint", "maint"
				}
			}
			if len(model.active()) == 0 {
				*s = before
				continue
			}
			old := hap.workers()
			start := time.Now()
			apply(id)
			waitTraffic(fmt.Sprintf("change %d (%s %s)", i, op, id), old)
			latencies = append(latencies, time.Since(start))
			counts[op]++
			return
		}
	}
	for i := range haproxyChanges / 2 {
		change(i + 1)
	}

	// A value HAProxy refuses: check_cmd fails, the running configuration
	// stays, the failure is logged, and a one-shot run exits non-zero.
	good, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	victim := model.active()[0]
	logCount := func(substr string) int {
		data, _ := os.ReadFile(confitLog)
		return strings.Count(string(data), substr)
	}
	for _, bad := range []struct{ value, logged string }{
		{"999.1.1.1:99999", "check_cmd"},
		{model[victim].addr + "\n    lua-load /tmp/evil.lua", "is not host:port"},
	} {
		n := logCount(bad.logged)
		workers := hap.workers()
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := admin.Put(cctx, "/services/web/"+victim+"/addr", bad.value)
		ccancel()
		if err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 60*time.Second, fmt.Sprintf("confit logs the refused value %q", bad.value), func() bool {
			return logCount(bad.logged) > n
		})
		if now, _ := os.ReadFile(dest); string(now) != string(good) {
			t.Errorf("%q: haproxy.cfg changed:\n%s", bad.value, now)
		}
		for _, w := range hap.workers() {
			// Old workers may exit meanwhile; a new one means a reload.
			if !slices.Contains(workers, w) {
				t.Errorf("%q: new worker %d (before: %v): HAProxy was reloaded", bad.value, w, workers)
			}
		}
		if !converged(model.active()) {
			t.Errorf("%q: traffic no longer reaches exactly %v", bad.value, model.active())
		}
		// The one-shot run renders into another copy of the example, with
		// no HAProxy to reload.
		oneDir := filepath.Join(copyExamples(t), "haproxy")
		out, code := runExample(t, oneDir, exampleEnv(oneDir, "WEB_BIND="+frontend),
			append([]string{"-onetime"}, etcdArgs...)...)
		if code == 0 {
			t.Errorf("%q: confit -onetime exit 0, want non-zero\n%s", bad.value, out)
		} else if !strings.Contains(out, bad.logged) {
			t.Errorf("%q: confit -onetime log lacks %q:\n%s", bad.value, bad.logged, out)
		}
	}
	apply(victim) // the good value again; the file already holds it
	waitTraffic("restored", nil)

	for i := haproxyChanges / 2; i < haproxyChanges; i++ {
		change(i + 1)
	}
	load.stop()

	if f := stats.failed.Load(); f > 0 {
		t.Errorf("%d of %d requests failed; first: %q", f, stats.sent.Load(), stats.errs)
	}
	slices.Sort(latencies)
	refused := "running config kept, logged, -onetime exit 1"
	if t.Failed() {
		refused = "see the test's errors"
	}
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))]
	}
	figures := fmt.Sprintf(`HAProxy example (etcd -> confit -watch -> haproxy -W, %d keep-alive clients + fresh-connection sampler)
  changes applied:                 %d (%s)
  requests sent:                   %d
  requests failed:                 %d
  change-to-traffic latency p50:   %v
  change-to-traffic latency p99:   %v
  change-to-traffic latency max:   %v
  refused changes (check_cmd, newline in a value): %s
`, clients, len(latencies), fmtCounts(counts), stats.sent.Load(), stats.failed.Load(),
		pct(0.50).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), pct(1).Round(time.Millisecond), refused)
	t.Log("\n" + figures)
	fmt.Fprint(os.Stderr, figures)
	if root, err := testserver.RepoRoot(); err == nil {
		p := filepath.Join(root, ".cache", "haproxy-figures.txt")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
			_ = os.WriteFile(p, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"+figures), 0o644)
		}
	}
}

func fmtCounts(m map[string]int) string {
	var parts []string
	for _, op := range []string{"add", "remove", "reweight", "drain", "undrain", "maint"} {
		if m[op] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", op, m[op]))
		}
	}
	return strings.Join(parts, ", ")
}
