package integration

// Every folder of examples/ runs its one-shot path here, with the file
// backend and its values.yaml, as its README says, so that the examples
// never rot (CoreDNS does the same with test/readme_test.go). check_cmd runs
// for real when its program is installed.

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/confit-dev/confit/internal/testserver"
)

// copyExamples copies the repository's examples/ folder (without the out/
// folders that runs leave behind) into a fresh temporary directory and
// returns the copy. Examples refer to each other by relative paths
// (haproxy-consul uses ../haproxy/reload.sh), so the whole tree is copied.
func copyExamples(t *testing.T) string {
	t.Helper()
	root, err := testserver.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(root, "examples")
	dst := filepath.Join(t.TempDir(), "examples")
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() && d.Name() == "out" {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatalf("copy examples: %v", err)
	}
	return dst
}

// exampleEnv is the environment of a confit run in an example: no CONFIT_*
// or CONFD_* from the caller, no /etc/confd/confd.toml, and pid files that
// do not exist, so that no reload_cmd ever signals a server of this machine.
func exampleEnv(dir string, extra ...string) []string {
	env := environWithout("CONFIT_", "CONFD_", "CONSUL_", "ETCDCTL_", "HAPROXY_", "NGINX_")
	none := filepath.Join(dir, "not-running.pid")
	env = append(env, "CONFIT_CONFIG_FILE="+os.DevNull,
		"HAPROXY_PIDFILE="+none, "NGINX_PID="+none, "APP_PIDFILE="+none)
	return append(env, extra...)
}

// runExample runs confit with args in dir and returns its combined output
// and exit code (-1 when it could not run or was killed at the 2-minute
// bound).
func runExample(t *testing.T, dir string, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(confitBinary(t), args...)
	cmd.Dir, cmd.Env = dir, env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start confit: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		t.Fatalf("confit %s: still running after 2 minutes\n%s", strings.Join(args, " "), out.String())
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &exit):
		return out.String(), exit.ExitCode()
	}
	t.Fatalf("confit %s: %v", strings.Join(args, " "), err)
	return "", -1
}

// checkTool reports whether the program a check_cmd runs is installed. A
// missing program makes the example run with -sync-only (check_cmd and
// reload_cmd skipped); a missing required one also fails the test in CI,
// where make test installs it.
func checkTool(t *testing.T, name string, required bool) bool {
	t.Helper()
	if _, err := exec.LookPath(name); err == nil {
		return true
	}
	if required && testserver.InCI() {
		t.Errorf("%s is not installed; make test installs it (scripts/test-deps.sh)", name)
	} else {
		t.Logf("%s is not installed: running with -sync-only (no check_cmd, no reload_cmd)", name)
	}
	return false
}

// exampleCases says, per example folder, what its one-shot path must
// produce. TestExamples fails for a folder of examples/ missing here, so a
// new example cannot go untested.
var exampleCases = map[string]struct {
	tool     string // the program check_cmd runs ("" for none)
	required bool   // tool is installed by make test
	dest     string // the rendered file, relative to the example folder
	want     []string
}{
	"quickstart": {
		dest: "out/myapp.conf",
		want: []string{"database = postgres://db.internal:5432/app", "upstream web2 10.0.0.12:8080", "features = billing,search"},
	},
	"haproxy": {
		tool: "haproxy", required: true, dest: "out/haproxy.cfg",
		want: []string{
			"server web1 127.0.0.1:8081 check inter 2s weight 100\n",
			"server web2 127.0.0.1:8082 check inter 2s weight 50\n",
			"server web3 127.0.0.1:8083 check inter 2s weight 0\n",
			"bind 127.0.0.1:8080\n",
		},
	},
	"haproxy-consul": {
		tool: "haproxy", required: true, dest: "out/haproxy.cfg",
		want: []string{
			"maxconn 1000\n",
			"server web-1 127.0.0.1:8081 check inter 2s weight 100\n",
			"server web-2 127.0.0.1:8082 check inter 2s weight 50\n",
		},
	},
	"haproxy-register": {
		tool: "haproxy", required: true, dest: "out/haproxy.cfg",
		want: []string{"server web1 127.0.0.1:8081 check inter 2s\n", "server web2 127.0.0.1:8082 check inter 2s\n"},
	},
	"nginx": {
		tool: "nginx", required: true, dest: "out/nginx.conf",
		want: []string{"upstream web {\n        server 127.0.0.1:8081;\n        server 127.0.0.1:8082;\n    }", "location /api/ {", "listen 127.0.0.1:8080;"},
	},
	"entrypoint": {
		dest: "out/app.conf",
		want: []string{`database_url      = "postgres://db.internal:5432/app"`, `log_level         = "debug"`},
	},
}

func TestExamples(t *testing.T) {
	examples := copyExamples(t)
	entries, err := os.ReadDir(examples)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		t.Run(e.Name(), func(t *testing.T) {
			tc, ok := exampleCases[e.Name()]
			if !ok {
				t.Fatalf("examples/%s has no entry in exampleCases: say what its one-shot path renders", e.Name())
			}
			dir := filepath.Join(examples, e.Name())
			args := []string{"-onetime", "-backend", "file", "-file", "values.yaml", "-confdir", ".", "-log-level", "debug"}
			if tc.tool != "" && !checkTool(t, tc.tool, tc.required) {
				args = append(args, "-sync-only")
			}
			out, code := runExample(t, dir, exampleEnv(dir), args...)
			if code != 0 {
				t.Fatalf("confit %s: exit %d\n%s", strings.Join(args, " "), code, out)
			}
			data, err := os.ReadFile(filepath.Join(dir, tc.dest))
			if err != nil {
				t.Fatalf("%v\nconfit's log:\n%s", err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(data), w) {
					t.Errorf("%s lacks %q; got:\n%s", tc.dest, w, data)
				}
			}
			// A second run finds the file up to date: no write, no reload.
			if out, code := runExample(t, dir, exampleEnv(dir), args...); code != 0 || strings.Contains(out, "updated") {
				t.Errorf("second run: exit %d, want 0 and no update:\n%s", code, out)
			}
		})
	}
}

// TestExamplesRejectBadValues checks that the templates refuse values that
// would change the structure of the rendered file (a smuggled newline is a
// new directive: lua-load in HAProxy is code execution) and that values
// HAProxy itself refuses fail check_cmd; either way one-shot runs exit 1 and
// the destination is never written.
func TestExamplesRejectBadValues(t *testing.T) {
	examples := copyExamples(t)
	haproxyOK := checkTool(t, "haproxy", true)
	for _, tc := range []struct {
		name, example, values, want string
		needsCheck                  bool // the error comes from check_cmd
	}{
		{name: "haproxy newline in addr", example: "haproxy",
			values: "services:\n  web:\n    w1:\n      addr: \"127.0.0.1:80\\n    lua-load /tmp/x.lua\"\n",
			want:   `is not host:port`},
		{name: "haproxy directive in weight", example: "haproxy",
			values: "services:\n  web:\n    w1:\n      addr: 127.0.0.1:80\n      weight: \"1 backup\"\n",
			want:   `is not a number from 0 to 256`},
		{name: "haproxy unknown state", example: "haproxy",
			values: "services:\n  web:\n    w1:\n      addr: 127.0.0.1:80\n      state: \"up\"\n",
			want:   `want ready, drain or maint`},
		{name: "haproxy bad server id", example: "haproxy",
			values: "services:\n  web:\n    \"w1 127.0.0.1:1\":\n      addr: 127.0.0.1:80\n",
			want:   `server id`},
		{name: "haproxy missing addr", example: "haproxy",
			values: "services:\n  web:\n    w1:\n      weight: \"10\"\n",
			want:   `key does not exist`},
		{name: "haproxy port out of range", example: "haproxy", needsCheck: true,
			values: "services:\n  web:\n    w1:\n      addr: 999.1.1.1:99999\n",
			want:   `check_cmd`},
		{name: "haproxy weight out of range", example: "haproxy", needsCheck: true,
			values: "services:\n  web:\n    w1:\n      addr: 127.0.0.1:80\n      weight: \"300\"\n",
			want:   `check_cmd`},
		{name: "haproxy-consul newline in meta", example: "haproxy-consul",
			values: "\"@service\":\n  web:\n    w1: '{\"ID\":\"w1\",\"Address\":\"127.0.0.1\",\"Port\":80,\"Meta\":{\"weight\":\"1\\nlua-load /tmp/x.lua\"}}'\n",
			want:   `Meta weight`},
		{name: "haproxy-consul address", example: "haproxy-consul",
			values: "\"@service\":\n  web:\n    w1: '{\"ID\":\"w1\",\"Address\":\"127.0.0.1:80 backup\",\"Port\":80}'\n",
			want:   `is not a host name or an IP address`},
		{name: "nginx semicolon in listen", example: "nginx",
			values: "nginx:\n  listen: \"127.0.0.1:80; include /etc/passwd\"\n",
			want:   `is not host:port`},
		{name: "nginx newline in server", example: "nginx",
			values: "nginx:\n  upstreams:\n    web:\n      a: \"127.0.0.1:80;\\n}\\nserver {\"\n",
			want:   `is not host:port`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needsCheck && !haproxyOK {
				t.Skip("haproxy is not installed")
			}
			dir := filepath.Join(examples, tc.example)
			values := filepath.Join(t.TempDir(), "bad.yaml")
			if err := os.WriteFile(values, []byte(tc.values), 0o644); err != nil {
				t.Fatal(err)
			}
			_ = os.RemoveAll(filepath.Join(dir, "out"))
			args := []string{"-onetime", "-backend", "file", "-file", values, "-confdir", "."}
			if !tc.needsCheck {
				args = append(args, "-sync-only") // the render alone must refuse
			}
			out, code := runExample(t, dir, exampleEnv(dir), args...)
			if code != 1 {
				t.Errorf("exit %d, want 1\n%s", code, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("log lacks %q:\n%s", tc.want, out)
			}
			if files, _ := os.ReadDir(filepath.Join(dir, "out")); len(files) != 0 {
				t.Errorf("out/ holds %d files after a refused render, want none (not even a stage file)", len(files))
			}
		})
	}
}

// TestExampleEntrypoint runs entrypoint.sh as a container would: confit
// renders, then the script execs the application, here cat of the file. With
// data that does not render, the application never starts.
func TestExampleEntrypoint(t *testing.T) {
	dir := filepath.Join(copyExamples(t), "entrypoint")
	path := "PATH=" + filepath.Dir(confitBinary(t)) + string(os.PathListSeparator) + os.Getenv("PATH")
	env := exampleEnv(dir, path, "CONFIT_BACKEND=file", "CONFIT_FILE=values.yaml", "CONFIT_CONFDIR=.")

	cmd := exec.Command("./entrypoint.sh", "cat", "out/app.conf")
	cmd.Dir, cmd.Env = dir, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("entrypoint.sh: %v\n%s", err, stderr.String())
	}
	if want := `database_password = "s3cret"`; !strings.Contains(stdout.String(), want) {
		t.Errorf("the application saw:\n%s\nwant a line %q", stdout.String(), want)
	}
	fi, err := os.Stat(filepath.Join(dir, "out/app.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o640 {
		t.Errorf("app.conf mode = %04o, want 0640", got)
	}

	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("myapp:\n  log_level: info\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "app-started")
	cmd = exec.Command("./entrypoint.sh", "touch", marker)
	cmd.Dir = dir
	cmd.Env = append(env[:len(env):len(env)], "CONFIT_FILE=bad.yaml")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("entrypoint.sh with a missing key: %v, want exit status 1\n%s", err, out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the application started although the render failed")
	}
}

// TestExampleSidecar runs sidecar.sh (confit -watch) on the file backend:
// it renders at start, follows an edit of the values file, and exits 0 on
// SIGTERM.
func TestExampleSidecar(t *testing.T) {
	dir := filepath.Join(copyExamples(t), "entrypoint")
	path := "PATH=" + filepath.Dir(confitBinary(t)) + string(os.PathListSeparator) + os.Getenv("PATH")
	cmd := exec.Command("./sidecar.sh")
	cmd.Dir = dir
	cmd.Env = exampleEnv(dir, path, "CONFIT_BACKEND=file", "CONFIT_FILE=values.yaml", "CONFIT_CONFDIR=.")
	var log lockedBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("--- sidecar log ---\n%s", log.String())
		}
	})
	dest := filepath.Join(dir, "out/app.conf")
	waitUntil(t, 30*time.Second, "first render", func() bool {
		data, _ := os.ReadFile(dest)
		return strings.Contains(string(data), `log_level         = "debug"`)
	})
	values := filepath.Join(dir, "values.yaml")
	data, err := os.ReadFile(values)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(values, bytes.Replace(data, []byte("log_level: debug"), []byte("log_level: warn"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "render after the edit", func() bool {
		data, _ := os.ReadFile(dest)
		return strings.Contains(string(data), `log_level         = "warn"`)
	})
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Errorf("sidecar after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("sidecar still running 30 s after SIGTERM")
	}
}

// waitUntil polls cond every 20 ms until it holds, failing t after limit.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
