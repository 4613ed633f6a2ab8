package integration

// The README's ZooKeeper and Redis examples, run as written.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/confit-dev/confit/internal/testserver"
)

// readmeShellBlock returns the first sh block of the README section
// headed "## "+section.
func readmeShellBlock(t *testing.T, section string) string {
	t.Helper()
	root, err := testserver.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, text, ok := strings.Cut(string(b), "\n## "+section+"\n")
	if !ok {
		t.Fatalf("README.md has no section %q", section)
	}
	text, _, _ = strings.Cut(text, "\n## ")
	_, block, ok := strings.Cut(text, "\n```sh\n")
	if !ok {
		t.Fatalf("README.md section %q has no ```sh block", section)
	}
	block, _, ok = strings.Cut(block, "\n```\n")
	if !ok {
		t.Fatalf("README.md section %q: the ```sh block does not end", section)
	}
	return block + "\n"
}

// TestREADMEBackendExamples runs the sh block of the README's ZooKeeper
// and Redis sections in an empty directory, with the confit under test
// first on PATH, against a real server on a free port: the only edit is
// the default port replaced by the server's. The file it renders is the
// one the block's last comment shows.
func TestREADMEBackendExamples(t *testing.T) {
	tests := []struct {
		section string
		tool    string // the server's CLI the block runs
		start   func(t *testing.T) (addr string)
		replace []string // old, new pairs, new given the server's "127.0.0.1:PORT"
		want    string
	}{
		{
			section: "ZooKeeper",
			tool:    "/usr/share/zookeeper/bin/zkCli.sh",
			start: func(t *testing.T) string {
				return testserver.ZooKeeper(t, testserver.ZooKeeperOptions{}).Addr()
			},
			replace: []string{"127.0.0.1:2181", "ADDR"},
			want:    "url = db.example.com\n",
		},
		{
			section: "Redis",
			tool:    "redis-cli",
			start: func(t *testing.T) string {
				return testserver.Redis(t, testserver.RedisOptions{}).Addr()
			},
			replace: []string{"127.0.0.1:6379", "ADDR", "-p 6379", "-p PORT"},
			want:    "url = postgres://db:5432/app\nrps = 100\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.section, func(t *testing.T) {
			block := readmeShellBlock(t, tc.section)
			addr := tc.start(t)
			if _, err := exec.LookPath(tc.tool); err != nil {
				// The server came from elsewhere (CONFIT_ZOOKEEPER_JAR,
				// CONFIT_REDIS_BIN) without its CLI.
				testserver.Unavailable(t, fmt.Errorf("%w: %s: %v", testserver.ErrUnavailable, tc.section, err))
			}
			_, port, _ := strings.Cut(addr, ":")
			for i := 0; i < len(tc.replace); i += 2 {
				if !strings.Contains(block, tc.replace[i]) {
					t.Fatalf("the %s block does not use %q:\n%s", tc.section, tc.replace[i], block)
				}
				repl := strings.NewReplacer("ADDR", addr, "PORT", port).Replace(tc.replace[i+1])
				block = strings.ReplaceAll(block, tc.replace[i], repl)
			}
			dir := t.TempDir()
			cmd := exec.Command("sh", "-e", "-c", block)
			cmd.Dir = dir
			cmd.Env = append(environWithout("CONFIT_", "CONFD_", "PATH="),
				"PATH="+filepath.Dir(confitBinary(t))+string(os.PathListSeparator)+os.Getenv("PATH"),
				"CONFIT_CONFIG_FILE="+os.DevNull)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("the README's %s block: %v\n%s\n--- block ---\n%s", tc.section, err, out, block)
			}
			if got := readFile(t, filepath.Join(dir, "myapp.conf")); got != tc.want {
				t.Errorf("myapp.conf = %q, want %q\n%s", got, tc.want, out)
			}
			if !strings.HasSuffix(strings.TrimSpace(string(out)), strings.TrimSpace(tc.want)) {
				t.Errorf("the block's output does not end with the file (cat myapp.conf):\n%s", out)
			}
		})
	}
}
