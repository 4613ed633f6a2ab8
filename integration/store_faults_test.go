package integration

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/confit-dev/confit/internal/testserver"
)

// Store-side faults of issue 20 (items 5 and 7), through the confit binary.

// oneShotBound is how long a one-shot with -timeout 3s may take against a
// hung store before the test calls it hung: generous for a loaded machine.
const oneShotBound = 20 * time.Second

// runOneShot runs confit -onetime with args and returns its exit code,
// its combined output and how long it ran; it kills confit after 2 min.
func runOneShot(t *testing.T, args ...string) (int, string, time.Duration) {
	t.Helper()
	cmd := confitCmd(t, append([]string{"-onetime"}, args...)...)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	elapsed := time.Since(start)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), elapsed
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), elapsed
	}
	t.Fatalf("confit: %v", err)
	return 0, "", 0
}

// oneResource writes a confdir with one resource reading keys under /app
// and returns it with the destination's path.
func oneResource(t *testing.T) (confdir, dest string) {
	t.Helper()
	confdir, dest = t.TempDir(), filepath.Join(t.TempDir(), "app.conf")
	writeFiles(t, confdir, map[string]string{
		"conf.d/app.toml":    resourceTOML("app.tmpl", dest, "/app", "/"),
		"templates/app.tmpl": "{{range gets \"/*\"}}{{base .Key}}={{.Value}}\n{{end}}",
	})
	return confdir, dest
}

// TestOnetimeHungConsul is issue 20 item 5: a Consul agent that accepts
// connections but never answers (SIGSTOP) made -onetime wait forever (still
// running after 90 s). With -timeout it exits 1 within the bound, naming the
// backend, the agent and what timed out, and writes nothing.
func TestOnetimeHungConsul(t *testing.T) {
	s := testserver.Consul(t, testserver.ConsulOptions{Dev: true})
	consulPut(t, consulAdmin(t, s), "/app/k", "v")
	confdir, dest := oneResource(t)
	pid := s.Process().PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })

	code, out, took := runOneShot(t, "-backend", "consul", "-node", s.Addr(), "-confdir", confdir, "-timeout", "3s")
	t.Logf("one-shot against a frozen agent: exit %d after %v", code, took.Round(time.Millisecond))
	if code != 1 {
		t.Errorf("exit code = %d, want 1\n%s", code, out)
	}
	if took > oneShotBound {
		t.Errorf("one-shot took %v, want at most %v", took, oneShotBound)
	}
	for _, want := range []string{"consul", s.Addr(), "timed out", "/app", "-timeout"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not name %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("destination written by a failed one-shot (stat: %v)", err)
	}
}

// TestOnetimeEtcdNoServer is issue 20 item 5's second half: the etcd
// backend with no server said only "context deadline exceeded"; the error
// names the node and the dial error.
func TestOnetimeEtcdNoServer(t *testing.T) {
	port, err := testserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	node := "127.0.0.1:" + strconv.Itoa(port)
	confdir, dest := oneResource(t)
	code, out, took := runOneShot(t, "-node", node, "-confdir", confdir)
	t.Logf("one-shot without etcd: exit %d after %v", code, took.Round(time.Millisecond))
	if code != 1 {
		t.Errorf("exit code = %d, want 1\n%s", code, out)
	}
	for _, want := range []string{"etcd", node, "connection refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not name %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("destination written by a failed one-shot (stat: %v)", err)
	}
}
