// Package tomlline finds where a key stands in a TOML file, for the line
// numbers of the errors about conf.d files (resource's templates and
// register's [register] tables).
package tomlline

import (
	"regexp"
	"strings"
	"sync"
)

// tableHeaderRE matches a TOML table header line, "[a.b]" or "[[a.b]]".
// It serves only errors, so it is compiled on first use.
var tableHeaderRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^\s*\[\[?\s*([^\]]*?)\s*\]\]?`)
})

// KeyLine finds the line (from 1) of a dotted key in data: the line of its
// table header for a table, else the first line assigning its last
// component (or a dotted key starting with it) inside its table. It
// returns 0 when it cannot tell; the line is a help for the reader, not
// something to rely on.
func KeyLine(data []byte, key string) int {
	parts := strings.Split(key, ".")
	last := parts[len(parts)-1]
	table := strings.Join(parts[:len(parts)-1], ".")
	assign := regexp.MustCompile(`^\s*["']?` + regexp.QuoteMeta(last) + `["']?\s*[=.]`)
	current := ""
	for i, line := range strings.Split(string(data), "\n") {
		if m := tableHeaderRE().FindStringSubmatch(line); m != nil {
			current = m[1]
			if current == key {
				return i + 1
			}
			continue
		}
		if current == table && assign.MatchString(line) {
			return i + 1
		}
	}
	return 0
}
