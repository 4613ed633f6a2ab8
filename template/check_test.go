package template

import (
	"errors"
	"strings"
	"testing"

	"github.com/confit-dev/confit/template/internal/exec"
)

// noDecrypter is a Decrypter that opens nothing.
type noDecrypter struct{}

func (noDecrypter) Decrypt(string) (string, string, error) {
	return "", "", errors.New("no key")
}

// compiledFuncsCases are templates for which Parse cannot take the
// compiled program's word for its functions, and one for which it can.
var compiledFuncsCases = []struct {
	name, text string
	opts       Options
	shortcut   bool   // compiledFuncs vouches for the functions
	err        string // Parse's error, "" for none
}{
	{name: "plain", text: "a={{getv \"/a\" | toUpper}}\n{{range gets \"/x/*\"}}{{base .Key}}{{end}}", shortcut: true},
	{name: "unknown function", text: "one\n{{nope \"/a\"}}", err: "template: t:2: function \"nope\" not defined"},
	{name: "unknown function in a define no one calls", text: "{{getv \"/a\"}}\n{{define \"x\"}}\n{{nope}}{{end}}",
		err: "template: t:3: function \"nope\" not defined"},
	{name: "a define that is called", text: "{{define \"x\"}}{{getv \"/a\"}}{{end}}{{template \"x\"}}", shortcut: true},
	{name: "service reads a prefix", text: "{{range service \"web\"}}{{.Address}}{{end}}"},
	{name: "service name not literal", text: "{{service (getv \"/s\")}}",
		err: "the service name must be a quoted string"},
	{name: "decrypting without a key", text: "\n{{cgetv \"/a\"}}", err: "template: t:2: cgetv decrypts values"},
	{name: "decrypting with a key", text: "{{cgetv \"/a\"}}", opts: Options{Decrypter: noDecrypter{}}, shortcut: true},
	{name: "executor gives up (chain)", text: "{{(getv \"/a\").X}}"},
}

// TestCompiledFuncs: Parse takes the function names from the compiled
// program only where the walk over the trees would find nothing more;
// otherwise it walks, with the walk's errors.
func TestCompiledFuncs(t *testing.T) {
	for _, tc := range compiledFuncsCases {
		t.Run(tc.name, func(t *testing.T) {
			trees, err := parseText("t", tc.text, "", "")
			if err != nil {
				t.Fatal(err)
			}
			_, ok := compiledFuncs(exec.Compile(tc.text, trees, "t"), tc.opts)
			if ok != tc.shortcut {
				t.Errorf("compiledFuncs ok = %v, want %v", ok, tc.shortcut)
			}
			_, err = Parse("t", tc.text, tc.opts)
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("Parse: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("Parse error %v, want one with %q", err, tc.err)
			}
		})
	}
}
