package testserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The install scripts default to the versions the Go side expects to find
// in .cache/servers; if they drifted apart, `make test-deps` would build
// one version and the tests another.
func TestScriptVersionsMatch(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for script, want := range map[string]string{
		"etcd.sh":   `version="${ETCD_VERSION:-` + EtcdVersion + `}"`,
		"consul.sh": `version="${CONSUL_VERSION:-` + ConsulVersion + `}"`,
	} {
		b, err := os.ReadFile(filepath.Join(root, "scripts", "servers", script))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("scripts/servers/%s does not default to the version testserver uses: want a line %s", script, want)
		}
	}
}
