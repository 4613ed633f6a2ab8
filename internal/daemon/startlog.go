package daemon

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/confit-dev/confit/resource"
)

// logStart logs, once when a run starts, one line saying what it serves:
// the backend, its nodes (files for the file backend; userinfo in a URL is
// redacted) and how many resources were loaded.
func logStart(cfg Config, mode string, res []*resource.Resource, broken int) {
	b := cfg.Backend
	nodes := b.Settings["node"]
	if b.Backend == "file" {
		nodes = b.Settings["file"]
	}
	shown := make([]string, len(nodes))
	for i, n := range nodes {
		shown[i] = redactNode(n)
	}
	attrs := []any{"backend", b.Backend}
	if len(shown) > 0 {
		attrs = append(attrs, "nodes", strings.Join(shown, ","))
	}
	attrs = append(attrs, "resources", len(res))
	own := 0
	for _, r := range res {
		if r.Backend != nil {
			own++
		}
	}
	if own > 0 {
		attrs = append(attrs, "own_backend", own)
	}
	if broken > 0 {
		attrs = append(attrs, "broken", broken)
	}
	attrs = append(attrs, "confdir", cfg.Resource.ConfDir, "mode", mode)
	cfg.Logger.Info("Starting confit", attrs...)
}

// redactNode drops a password from a node written as a URL.
func redactNode(n string) string {
	if !strings.Contains(n, "@") {
		return n
	}
	if u, err := url.Parse(n); err == nil && u.User != nil {
		return u.Redacted()
	}
	return n
}

// warnNoResources logs a warning when a load of conf.d found no resource
// file at all, saying what conf.d holds instead: a run that renders
// nothing would otherwise succeed without a word.
func warnNoResources(cfg Config) {
	dir := filepath.Join(cfg.Resource.ConfDir, "conf.d")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // reported by the load
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		if e.IsDir() {
			name += "/"
		}
		names = append(names, name)
	}
	found := "it holds no files"
	if len(names) > 0 {
		const show = 5
		list := strings.Join(names[:min(show, len(names))], ", ")
		if len(names) > show {
			list += fmt.Sprintf(" and %d more", len(names)-show)
		}
		found = "found only " + list
	}
	cfg.Logger.Warn("no template resources in "+dir+": resources are *.toml files; "+found, "confdir", cfg.Resource.ConfDir)
}
