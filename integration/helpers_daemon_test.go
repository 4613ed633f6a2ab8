package integration

// Helpers for the end-to-end daemon tests: the real confit binary, built
// once per test binary, run against real servers and observed from outside
// (its files, its /metrics and /health, its process).

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/confit-dev/confit/internal/testserver"
)

// waitTimeout bounds every wait for the daemon to do something. It is
// generous: the tests assert what happens, never how fast.
const waitTimeout = 20 * time.Second

// confitBinary builds cmd/confit once per test process into a fixed path
// (one per work tree) under the temporary directory (rebuilt every run, so it is never stale,
// and not left behind once per run).
func confitBinary(t *testing.T) string {
	t.Helper()
	return built(t, confitBuild)
}

var confitBuild = sync.OnceValues(func() (string, error) {
	root, err := testserver.RepoRoot()
	if err != nil {
		return "", err
	}
	// One directory per work tree: test runs of two trees on one
	// machine would otherwise run each other's binary.
	sum := sha256.Sum256([]byte(root))
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("confit-integration-%x", sum[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Build to a private name, then rename: concurrent test processes
	// never run a half-written binary.
	tmp := filepath.Join(dir, fmt.Sprintf("confit.%d", os.Getpid()))
	if err := goBuild("./cmd/confit", tmp); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "confit")
	return bin, os.Rename(tmp, bin)
})

// goBuild builds pkg, a path relative to the repository's root, to out.
func goBuild(pkg, out string) error {
	root, err := testserver.RepoRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// built returns the path build made (once per test process), failing t
// if it failed.
func built(t *testing.T, build func() (string, error)) string {
	t.Helper()
	bin, err := build()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// confitCmd returns a command running confit with args, isolated from the
// caller's environment and any /etc/confd/confd.toml.
func confitCmd(t *testing.T, args ...string) *exec.Cmd {
	cmd := exec.Command(confitBinary(t), args...)
	cmd.Env = append(environWithout("CONFIT_", "CONFD_", "CONSUL_", "ETCDCTL_"), "CONFIT_CONFIG_FILE="+os.DevNull)
	return cmd
}

// environWithout returns the process's environment without the variables
// whose names start with any of prefixes.
func environWithout(prefixes ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(kv, p) }) {
			env = append(env, kv)
		}
	}
	return env
}

// runConfitOnce runs a one-shot confit and fails t unless it exits 0.
func runConfitOnce(t *testing.T, args ...string) {
	t.Helper()
	cmd := confitCmd(t, append([]string{"-onetime"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("confit %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// lockedBuffer collects the daemon's log.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// confitDaemon is a confit -watch process.
type confitDaemon struct {
	cmd     *exec.Cmd
	metrics string // http://127.0.0.1:PORT
	log     *lockedBuffer
	done    chan struct{}
}

// startConfitDaemon starts confit -watch with args and -metrics-addr, waits
// until /metrics answers, and stops it (SIGTERM, then SIGKILL) when t ends;
// its log is shown if t failed.
func startConfitDaemon(t *testing.T, args ...string) *confitDaemon {
	t.Helper()
	return startConfitDaemonEnv(t, nil, args...)
}

// startConfitDaemonEnv is startConfitDaemon with extra environment
// variables (KEY=value) for the daemon.
func startConfitDaemonEnv(t *testing.T, env []string, args ...string) *confitDaemon {
	t.Helper()
	return startConfitProcess(t, "confit", env, []string{"-watch"}, args)
}

// startConfitProcess starts the binary with lead (the mode: -watch, or the
// register command and its -confdir), -metrics-addr on a free port,
// -log-level debug, then args, and extra environment; it waits until
// /metrics answers, and stops the process by its PID when t ends; the log,
// under name, is shown if t failed.
func startConfitProcess(t *testing.T, name string, env, lead, args []string) *confitDaemon {
	t.Helper()
	port, err := testserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	d := &confitDaemon{
		metrics: fmt.Sprintf("http://127.0.0.1:%d", port),
		log:     &lockedBuffer{},
		done:    make(chan struct{}),
	}
	all := append(append(lead, "-metrics-addr", fmt.Sprintf("127.0.0.1:%d", port), "-log-level", "debug"), args...)
	d.cmd = confitCmd(t, all...)
	d.cmd.Env = append(d.cmd.Env, env...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		d.stop(t)
		if t.Failed() {
			t.Logf("--- %s log ---\n%s", name, d.log.String())
		}
	})
	waitFor(t, name+" /metrics", func() (bool, string) {
		if !d.alive() {
			return false, "confit exited: " + d.log.String()
		}
		_, err := d.scrape()
		return err == nil, fmt.Sprint(err)
	})
	return d
}

// stop ends the daemon by its PID: SIGTERM, then SIGKILL after 10 s.
func (d *confitDaemon) stop(t *testing.T) {
	if !d.alive() {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return
	case <-time.After(10 * time.Second):
	}
	t.Errorf("confit pid %d ignored SIGTERM for 10s; killing it", d.cmd.Process.Pid)
	_ = d.cmd.Process.Kill()
	<-d.done
}

// alive reports whether the process is still running.
func (d *confitDaemon) alive() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

func (d *confitDaemon) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

var metricsClient = &http.Client{Timeout: 2 * time.Second}

func (d *confitDaemon) scrape() (map[string]float64, error) {
	resp, err := metricsClient.Get(d.metrics + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

// counter returns one of confit's counters.
func (d *confitDaemon) counter(t *testing.T, name string) float64 {
	t.Helper()
	m, err := d.scrape()
	if err != nil {
		t.Fatalf("scrape /metrics: %v", err)
	}
	v, ok := m[name]
	if !ok {
		t.Fatalf("/metrics has no %s", name)
	}
	return v
}

// health returns /health's status code and body.
func (d *confitDaemon) health() (int, string, error) {
	resp, err := metricsClient.Get(d.metrics + "/health")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(body)), nil
}

// waitFor polls cond until it reports true, failing t after waitTimeout
// with the last detail cond gave.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v: %s", what, waitTimeout, detail)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// waitFile waits until path holds exactly want.
func waitFile(t *testing.T, path, want string) {
	t.Helper()
	waitFor(t, filepath.Base(path)+" content", func() (bool, string) {
		got, err := os.ReadFile(path)
		if err != nil {
			return false, err.Error()
		}
		return string(got) == want, fmt.Sprintf("got %q, want %q", got, want)
	})
}

// readFile returns path's content, failing t if it cannot be read.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeFiles writes name -> content under dir, creating directories.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// resourceTOML is a conf.d resource rendering src to dest.
func resourceTOML(src, dest, prefix string, keys ...string) string {
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = strconv.Quote(k)
	}
	return fmt.Sprintf("[template]\nsrc = %q\ndest = %q\nprefix = %q\nkeys = [%s]\nmode = \"0644\"\n",
		src, dest, prefix, strings.Join(q, ", "))
}

// stayUnchanged checks for d that the files keep their content and the
// daemon keeps running.
func stayUnchanged(t *testing.T, d *confitDaemon, files map[string]string, d2 time.Duration) {
	t.Helper()
	end := time.Now().Add(d2)
	for time.Now().Before(end) {
		for p, want := range files {
			if got := readFile(t, p); got != want {
				t.Fatalf("%s changed during the outage: %q, want %q", filepath.Base(p), got, want)
			}
		}
		if !d.alive() {
			t.Fatalf("confit exited during the outage")
		}
		time.Sleep(250 * time.Millisecond)
	}
}
