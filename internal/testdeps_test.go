package internal_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// testDeps runs a bash snippet with scripts/test-deps.sh's functions loaded
// (sourcing it runs nothing) and returns its combined output.
func testDeps(t *testing.T, snippet string, env ...string) (string, error) {
	t.Helper()
	script, err := filepath.Abs("../scripts/test-deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-c", "set -euo pipefail; source "+script+"\n"+snippet)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// fakeApt writes an apt-get stand-in that fails as apt does while another
// apt/dpkg holds the lock, for its first busy runs, then succeeds. A fake:
// the test cannot make the machine's real apt hold its lock.
func fakeApt(t *testing.T, busy int) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "apt-get")
	script := `#!/bin/sh
n=$(cat "$0.count" 2>/dev/null || echo 0)
echo $((n + 1)) > "$0.count"
if [ "$n" -lt ` + strconv.Itoa(busy) + ` ]; then
	echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1234 (unattended-upgr)" >&2
	exit 100
fi
echo installed
`
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// make test waits for another apt's lock (bounded, with a message) instead
// of failing at once.
func TestTestDepsWaitsForAptLock(t *testing.T) {
	apt := fakeApt(t, 2)
	out, err := testDeps(t, "apt_wait "+apt+" install x", "APT_LOCK_POLL=0.05", "APT_LOCK_WAIT=30")
	if err != nil {
		t.Fatalf("apt_wait: %v\n%s", err, out)
	}
	if strings.Count(out, "waiting up to 30s") != 1 {
		t.Errorf("output %q: want one message saying it waits", out)
	}

	// Bounded: a lock held for longer gives up and says why.
	apt = fakeApt(t, 9)
	out, err = testDeps(t, "apt_wait "+apt+" install x", "APT_LOCK_POLL=0.05", "APT_LOCK_WAIT=0")
	if err == nil || !strings.Contains(out, "still holds its lock after 0s") {
		t.Errorf("apt_wait with the lock held: err %v, output %q; want a failure saying the lock is held", err, out)
	}

	// Any other failure stops at once.
	out, err = testDeps(t, "apt_wait sh -c 'echo E: Unable to locate package nope >&2; exit 100'", "APT_LOCK_POLL=5")
	if err == nil || !strings.Contains(out, "Unable to locate package") {
		t.Errorf("apt_wait of a failing install: err %v, output %q", err, out)
	}
}

// Packages are installed with a policy-rc.d that denies service starts,
// which is removed afterwards; one already in place is left alone.
func TestTestDepsInstallsWithoutStartingServices(t *testing.T) {
	policy := filepath.Join(t.TempDir(), "policy-rc.d")
	check := `test -x "$POLICY_RC_D" && "$POLICY_RC_D" nginx start; echo "policy says $?"`
	out, err := testDeps(t, "without_services sh -c '"+check+"'", "POLICY_RC_D="+policy)
	if err != nil {
		t.Fatalf("without_services: %v\n%s", err, out)
	}
	if !strings.Contains(out, "policy says 101") {
		t.Errorf("during the install: %q, want the policy to deny starts (101)", out)
	}
	if _, err := os.Stat(policy); !os.IsNotExist(err) {
		t.Errorf("policy-rc.d left behind after the install (stat: %v)", err)
	}

	if err := os.WriteFile(policy, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := testDeps(t, "without_services true", "POLICY_RC_D="+policy); err != nil {
		t.Fatalf("without_services: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(policy); err != nil || string(b) != "#!/bin/sh\nexit 0\n" {
		t.Errorf("an existing policy-rc.d was changed: %q, %v", b, err)
	}
}
