package integration

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/confit-dev/confit/internal/testserver"
)

// TestLiteBuild builds confit without the etcd, Consul, ZooKeeper and Redis backends (the
// build tags README.md documents): it renders from the file backend, says
// which backends it has, and refuses the ones it lacks as a usage error.
func TestLiteBuild(t *testing.T) {
	root, err := testserver.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "confit-lite")
	build := exec.Command("go", "build", "-tags", "confit_no_etcd,confit_no_consul,confit_no_zookeeper,confit_no_redis", "-o", bin, "./cmd/confit")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "-version").Output()
	if err != nil || !strings.Contains(string(out), "backends: env, file)") {
		t.Errorf("-version = %q, %v; want the backends env and file", out, err)
	}
	quickstart := filepath.Join(root, "examples", "quickstart")
	dir := t.TempDir()
	run := exec.Command(bin, "-onetime", "-noop", "-backend", "file", "-file", filepath.Join(quickstart, "values.yaml"),
		"-confdir", quickstart, "-config-file", "/dev/null")
	run.Dir = dir
	if out, err := run.CombinedOutput(); err != nil {
		t.Errorf("one-shot from the file backend: %v\n%s", err, out)
	}
	for _, backend := range []string{"etcd", "consul", "zookeeper", "redis"} {
		out, err := exec.Command(bin, "-onetime", "-backend", backend, "-confdir", quickstart, "-config-file", "/dev/null").CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "not in this build of confit") {
			t.Errorf("-backend %s: %v\n%s\nwant exit 2 saying it is not in this build", backend, err, out)
		}
	}
}
