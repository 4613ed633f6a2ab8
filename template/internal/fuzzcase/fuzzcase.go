// Package fuzzcase holds what the fuzz targets of template and of its
// executor (template/internal/exec) share, for their tests only: the
// functions they stub out, the store they render against, and the guard
// against inputs that could run unbounded. The executor's tests cannot
// import template (template imports the executor), so both import this.
package fuzzcase

import "regexp"

// Stubbed are the functions fuzzed templates must not call for real: they
// reach outside the process (DNS, environment, files, clock) or can be
// made to take unbounded time or memory from a short input (huge ranges
// and repeats, key generation, password hashing).
var Stubbed = []string{
	"lookupIP", "lookupIPV4", "lookupIPV6", "lookupSRV", "getHostByName", "hostname",
	"getenv", "env", "expandenv", "fileExists", "datetime", "now",
	"seq", "until", "untilStep", "repeat",
	"bcrypt", "htpasswd", "derivePassword", "genPrivateKey", "genCA", "genCAWithKey",
	"genSelfSignedCert", "genSelfSignedCertWithKey", "genSignedCert", "genSignedCertWithKey",
	"buildCustomCert",
}

// Stubs returns a function map with a stub for each of Stubbed: it accepts
// any arguments and returns "".
func Stubs() map[string]any {
	stub := func(...any) string { return "" }
	m := make(map[string]any, len(Stubbed))
	for _, n := range Stubbed {
		m[n] = stub
	}
	return m
}

// Store is the small store fuzzed templates render against.
var Store = map[string]string{
	"/app/name": "web", "/app/db": "primary", "/app/db/host": "db1", "/app/db/port": "5432",
	"/upstreams/a/addr": "10.0.0.1", "/upstreams/b/addr": "10.0.0.2", "/json": `{"a":[1,2]}`,
	"/list": `["x","y"]`, "/weird/st*r/[k]": "v", "/": "root",
}

// BigNumber finds numeric literals that could drive a long loop or a big
// allocation ({{range 1000000000}}).
var BigNumber = regexp.MustCompile(`[0-9]{3,}|0[xXbBoO]|[0-9][eEpP_]|'`)
