package template

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// checkParseFast requires that parseFast, where it accepts text, returns
// what compileFast makes of text/template's parse of it, and that
// text/template accepts it. It reports whether parseFast accepted.
func checkParseFast(t testing.TB, text string, opts Options) bool {
	t.Helper()
	got := parseFast(text, func(fn string) bool { return knownFunc(fn, opts) })
	if got == nil {
		return false
	}
	trees, _, _, err := parseTrees("test.tmpl", text, opts)
	if err != nil {
		t.Fatalf("parseFast accepted %q, text/template: %v", text, err)
	}
	want := compileFast(trees, "test.tmpl")
	if want == nil {
		t.Fatalf("parseFast accepted %q, compileFast of text/template's tree declined", text)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\nparseFast:   %s\ncompileFast: %s", text, dumpProg(got), dumpProg(want))
	}
	return true
}

// dumpProg prints a program for a failure message.
func dumpProg(p *fastProg) string {
	var s string
	var pipe func(*fastPipe) string
	pipe = func(fp *fastPipe) string {
		if fp == nil {
			return "<nil>"
		}
		out := fmt.Sprintf("{decl %q assign %v", fp.decl, fp.assign)
		for _, c := range fp.cmds {
			out += fmt.Sprintf(" [op %d fn %d", c.op, c.fn)
			for _, a := range c.args {
				if pp, ok := a.val.(*fastPipe); ok {
					out += fmt.Sprintf(" (kind %d %s)", a.kind, pipe(pp))
				} else {
					out += fmt.Sprintf(" (kind %d fn %d val %#v fields %#v)", a.kind, a.fn, a.val, a.fields)
				}
			}
			out += "]"
		}
		return out + "}"
	}
	var nodes func([]fastNode, string)
	nodes = func(ns []fastNode, indent string) {
		for _, n := range ns {
			s += fmt.Sprintf("%sop %d %q %s\n", indent, n.op, n.text, pipe(n.pipe))
			if n.br != nil {
				nodes(n.br.list, indent+"  ")
				s += fmt.Sprintf("%selse (nil: %v)\n", indent, n.br.elseList == nil)
				nodes(n.br.elseList, indent+"  ")
			}
		}
	}
	nodes(p.root, "")
	return s + fmt.Sprintf("funcs %q", p.funcs)
}

// TestParseFastMatches runs checkParseFast over the golden templates, the
// fast executor's cases and edge cases of the lexer and parser.
func TestParseFastMatches(t *testing.T) {
	var texts []string
	for _, s := range goldenSeeds(t) {
		texts = append(texts, s)
	}
	texts = append(texts, fastExecutorTexts...)
	texts = append(texts,
		"", "plain", "a{{/* c */}}b", "a {{- /* c */ -}} b", "{{/* c */ -}}\n x", "{{- 1}}", "{{1 -}}  \n",
		`{{"a"}}`, "{{`raw\nstring`}}", `{{"a\"b\\"}}`, `{{getv "/a" | toUpper}}`, `{{getv "/a" |}}`,
		`{{$x := 1}}{{$x}}{{$x = 2}}{{$x}}`, `{{$y = 1}}`, `{{$}}`, `{{$.a}}`, `{{.a.b}}`, `{{.}}`,
		`{{if .}}a{{else if .}}b{{else}}c{{end}}`, `{{with .}}a{{else with .}}b{{end}}`,
		`{{range $i, $e := ls "/"}}{{$i}}{{$e}}{{break}}{{continue}}{{end}}`, `{{range ls "/"}}{{else}}e{{end}}`,
		`{{range $e := ls "/"}}{{$e}}{{end}}`, `{{if $x := getv "/a"}}{{$x}}{{end}}`, `{{(getv "/a")}}`,
		`{{printf "%d" (add 1 2)}}`, `{{and 1 0}}{{or 0 1}}{{not 0}}{{eq 1 1}}{{ne 1 2}}{{len "a"}}{{index (ls "/") 0}}`,
		`{{0}}{{7}}{{true}}{{false}}`, "{{ getv  \"/a\"  }}", "{{getv\t\"/a\"\n}}", `{{- getv "/a" -}}`,
		`{{$x:=1}}{{$x =2}}{{ $x}}{{$x| printf "%v"}}{{ $x | printf "%v" }}`, `{{(printf "%v" $)}}`,
		`{{if not .}}n{{end}}`, `{{range $k, $v := json (getv "/j")}}{{$k}}={{$v}}{{end}}`,
		"a  {{- \"x\" -}}  b", "{{-\t\"x\"\t-}}", "{{-\n\"x\"\n-}}\n", `{{"x"}}{{/**/}}`, `{{/* }} */}}x`,
		"{{`}}`}}", `{{"\u00e9\n"}}`, `{{with $x := getv "/a"}}{{$x}}{{else}}{{$x}}{{end}}`,
		`{{range ls "/"}}{{if eq . "a"}}{{continue}}{{end}}{{.}}{{else}}none{{end}}`,
		`{{$x := 1}}{{range ls "/"}}{{$x = .}}{{end}}{{$x}}`, `{{ getv (printf "/%s/%s" "a" "b") "d" }}`,
		// Declined, each for its own reason.
		`{{getv "/a"}`, `{{getv "/a"`, `{{nope}}`, `{{nil}}`, `{{01}}`, `{{1.5}}`, `{{-1}}`, `{{'a'}}`,
		`{{0x10}}`, `{{(getv "/a").x}}`, `{{getv.x}}`, `{{"a".x}}`, `{{$u}}`, `{{template "x"}}`,
		`{{define "x"}}{{end}}`, `{{block "b" .}}{{end}}`, `{{service "web"}}`, `{{services}}`,
		`{{if}}{{end}}`, `{{end}}`, `{{else}}`, `{{break}}`, `{{range .}}{{else if .}}{{end}}`,
		`{{range $i, $e = ls "/"}}{{end}}`, `{{$a, $b := 1}}`, `{{getv "/a" | | toUpper}}`, `{{| getv}}`,
		`{{"a"b}}`, `{{1 | getv}}`, `{{getv "/a" | .}}`, `{{.x | getv}}`, `{{html "x"}}`, `{{getv html}}`,
		`{{(1}}`, `{{1)}}`, `{{"unterminated}}`, "{{`x\r`}}", `{{é}}`, `{{.é}}`, `{{getv "/a" "b" "c" ""}}`,
		`{{/* unclosed }}`, `{{/* x */ }}`, `{{ /* x */}}`, `{{-}}`, `{{- -}}`, `{{ }}`, `{{}}`,
		`{{if .}}{{else x}}{{end}}`, `{{with .}}{{else if .}}{{end}}`, `{{if .}}`, `{{range .}}{{end x}}`,
	)
	accepted := 0
	for _, text := range texts {
		if checkParseFast(t, text, Options{}) {
			accepted++
		}
	}
	if accepted < len(texts)/3 {
		t.Errorf("parseFast accepted %d of %d texts, want at least a third", accepted, len(texts))
	}
}

// TestParseFastDeep checks that parseFast declines nesting deeper than
// it reads, below text/template's limits and before its own stack runs
// out.
func TestParseFastDeep(t *testing.T) {
	known := func(string) bool { return true }
	for _, n := range []int{maxFastNesting + 1, 10001, 1_000_000} {
		parens := "{{" + strings.Repeat("(", n) + "." + strings.Repeat(")", n) + "}}"
		ifs := strings.Repeat("{{if .}}", n) + strings.Repeat("{{end}}", n)
		for _, text := range []string{parens, ifs} {
			if parseFast(text, known) != nil {
				t.Errorf("nesting %d: parseFast accepted %.40q...", n, text)
			}
		}
	}
	for _, text := range []string{
		"{{" + strings.Repeat("(", maxFastNesting) + "." + strings.Repeat(")", maxFastNesting) + "}}",
		strings.Repeat("{{if .}}", maxFastNesting) + strings.Repeat("{{end}}", maxFastNesting),
	} {
		if !checkParseFast(t, text, Options{}) {
			t.Errorf("nesting %d: parseFast declined", maxFastNesting)
		}
	}
}

// FuzzParseFast checks parseFast against text/template on arbitrary text.
func FuzzParseFast(f *testing.F) {
	for _, s := range goldenSeeds(f) {
		f.Add(s)
	}
	for _, s := range fastExecutorTexts {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 2048 {
			t.Skip()
		}
		checkParseFast(t, text, Options{})
	})
}
