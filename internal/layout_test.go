package internal_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportDirection guards the package layout (docs/ARCHITECTURE.md):
// imports point down only. A backend knows nothing of templates or
// resources; a template knows nothing of stores; resource knows nothing of
// the daemon.
func TestImportDirection(t *testing.T) {
	const mod = "github.com/confit-dev/confit/"
	forbidden := map[string][]string{
		"backends":        {"template", "resource", "internal/daemon", "cmd/"},
		"backends/file":   {"template", "resource", "internal/daemon", "backends/etcd", "backends/consul"},
		"backends/env":    {"template", "resource", "internal/daemon"},
		"backends/etcd":   {"template", "resource", "internal/daemon", "backends/consul"},
		"backends/consul": {"template", "resource", "internal/daemon", "backends/etcd"},
		"backends/memory": {"template", "resource", "internal/daemon"},
		"template":        {"backends/", "resource", "internal/daemon", "secret"},
		// The fast executor sees text/template's trees, nothing of confit.
		"template/internal/exec": {"template", "backends", "resource", "internal/", "cmd/"},
		"resource":               {"internal/daemon", "backends/etcd", "backends/consul", "backends/file", "backends/env", "secret"},
		"internal/daemon":        {"cmd/", "secret", "register"},
		// exec mode's child and the reaper know nothing of resources.
		"internal/reap":      {"resource", "internal/daemon", "backends", "template", "cmd/"},
		"internal/supervise": {"resource", "internal/daemon", "backends", "template", "cmd/"},
		// Decryption knows nothing of confit; only cmd/confit wires it in.
		"secret": {"template", "resource", "internal/", "backends", "cmd/"},
		// Register mode: the stores' clients, nothing of rendering.
		"register": {"template", "resource", "internal/daemon", "cmd/"},
	}
	for pkg, bad := range forbidden {
		out, err := exec.Command("go", "list", "-deps", mod+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			rel, ok := strings.CutPrefix(dep, mod)
			if !ok || rel == pkg {
				continue
			}
			for _, b := range bad {
				if strings.HasPrefix(rel, b) {
					t.Errorf("%s imports %s: imports must point down (see docs/ARCHITECTURE.md)", pkg, rel)
				}
			}
		}
	}
}
