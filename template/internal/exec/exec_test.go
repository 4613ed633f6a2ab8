package exec_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/confit-dev/confit/template/internal/fuzzcase"
	"maps"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"text/template/parse"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/confit-dev/confit/template"
	"github.com/confit-dev/confit/template/internal/exec"
)

// The differential tests render every case twice through the template
// package, once with the fast executor (falling back as Execute does) and
// once with text/template alone (Options.TextTemplate), and require the
// same output, error and reads. exec.Renders tells whether the executor
// rendered a case without falling back. The tests do not run in parallel,
// so that the count is theirs.

type (
	Options = template.Options
	Store   = template.Store
)

var (
	NewStore    = template.NewStore
	ErrNotExist = template.ErrNotExist
)

// goldenGlob finds the template package's golden cases.
const goldenGlob = "../../testdata/*.txtar"

// renderBoth renders text against s twice, in the fast executor (falling
// back as Execute does) and in text/template alone, each from its own
// parse, and fails t if the outputs, errors or reads differ. It returns
// the error of the render and whether the fast executor rendered it
// without falling back.
func renderBoth(t testing.TB, text string, opts Options, s *Store) (error, bool) {
	t.Helper()
	fastT, err := template.Parse("test.tmpl", text, opts)
	if err != nil {
		return err, false
	}
	textOpts := opts
	textOpts.TextTemplate = true
	slowT, err := template.Parse("test.tmpl", text, textOpts)
	if err != nil {
		t.Fatalf("second parse: %v", err)
	}
	before := exec.Renders()
	gotOut, gotReads, gotErr := fastT.Execute(s)
	fastOnly := exec.Renders() > before
	wantOut, wantReads, wantErr := slowT.Execute(s)
	if errString(gotErr) != errString(wantErr) {
		t.Fatalf("template %q:\nfast error: %v\ntext/template error: %v", text, gotErr, wantErr)
	}
	if wantErr != nil && errors.Is(wantErr, ErrNotExist) != errors.Is(gotErr, ErrNotExist) {
		t.Fatalf("template %q: errors.Is(ErrNotExist) differs: fast %v, text/template %v", text, gotErr, wantErr)
	}
	if !bytes.Equal(gotOut, wantOut) {
		t.Fatalf("template %q:\nfast output: %q\ntext/template output: %q", text, gotOut, wantOut)
	}
	if !reflect.DeepEqual(gotReads, wantReads) {
		t.Fatalf("template %q:\nfast reads: %+v\ntext/template reads: %+v", text, gotReads, wantReads)
	}
	return wantErr, fastOnly
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// loadGolden reads a golden case of the template package (see its
// golden_test.go): its template and its store.
func loadGolden(t testing.TB, file string) (text string, kvs map[string]string) {
	t.Helper()
	ar, err := txtar.ParseFile(file)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, f := range ar.Files {
		files[f.Name] = string(f.Data)
	}
	text, ok := files["template"]
	if !ok {
		t.Fatalf("%s: no template section", file)
	}
	kvs = map[string]string{}
	if data := files["data"]; strings.HasPrefix(strings.TrimSpace(data), "{") {
		if err := json.Unmarshal([]byte(data), &kvs); err != nil {
			t.Fatalf("%s: data: %v", file, err)
		}
	} else {
		for line := range strings.Lines(data) {
			line = strings.TrimSuffix(line, "\n")
			if line == "" {
				continue
			}
			k, v, _ := strings.Cut(line, "=")
			kvs[k] = v
		}
	}
	return text, kvs
}

// goldenOptions are the options a golden case is parsed with.
func goldenOptions(file string) Options {
	if filepath.Base(file) == "delims.txtar" {
		return Options{LeftDelim: "[[", RightDelim: "]]"}
	}
	return Options{}
}

// TestFastGolden renders every golden case both ways.
func TestFastGolden(t *testing.T) {
	files, err := filepath.Glob(goldenGlob)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden cases")
	}
	fast := 0
	for _, file := range files {
		text, kvs := loadGolden(t, file)
		if _, ok := renderBoth(t, text, goldenOptions(file), NewStore(kvs)); ok {
			fast++
		}
	}
	if fast < len(files)/2 {
		t.Errorf("the fast executor rendered %d of %d golden cases, want at least half", fast, len(files))
	}
}

// fastCases are TestFastExecutor's templates, and whether the fast
// executor renders each without falling back.
var fastCases = []struct {
	name, text string
	fast       bool
}{
	{"text", "plain text\n", true},
	{"getv", `{{getv "/app/name"}}:{{getv "/app/port"}}`, true},
	{"getv default", `{{getv "/missing" "dflt"}} {{getv "/app/name" "dflt"}}`, true},
	{"getv missing", `a{{getv "/missing"}}b`, false},
	{"haproxy", `{{range lsdir "/up"}}server {{.}} {{getv (printf "/up/%s/addr" .)}} weight {{getv (printf "/up/%s/weight" .) "1"}}
{{end}}`, true},
	{"gets kv", `{{range gets "/app/env/*"}}{{base .Key}}={{.Value}};{{end}}`, true},
	{"get", `{{with get "/app/name"}}{{.Key}}={{.Value}}{{end}}`, true},
	{"getvs ls", `{{getvs "/app/env/*"}} {{ls "/app"}} {{lsdir "/"}}`, true},
	{"exists if else", `{{if exists "/app/name"}}y{{else}}n{{end}}{{if exists "/nope"}}y{{else if true}}e{{end}}`, true},
	{"empty is false", `{{if getv "/app/empty"}}full{{else}}empty{{end}}`, true},
	{"with else", `{{with getv "/app/empty"}}[{{.}}]{{else}}none{{end}}{{with getv "/app/name"}}[{{.}}]{{end}}`, true},
	{"variables", `{{$n := getv "/app/name"}}{{$p := getv "/app/port"}}{{$n}}:{{$p}}{{$n = "x"}}{{$n}}{{$}}`, false},
	{"assign", `{{$n := "a"}}{{range ls "/app/env"}}{{$n = .}}{{end}}{{$n}}`, true},
	{"range vars", `{{range $i, $k := ls "/app/env"}}{{$i}}{{$k}} {{end}}{{range $k := ls "/app/env"}}{{$k}}{{end}}`, true},
	{"range else", `{{range ls "/nothing"}}x{{else}}empty{{end}}`, true},
	{"range int", `{{range 3}}{{.}}{{end}}{{range $i := 2}}{{$i}}{{end}}`, true},
	{"range int two vars", `{{range $i, $e := 3}}{{.}}{{end}}`, false},
	{"continue in a range's else", `{{range ls "/up"}}{{range ls "/nothing"}}{{else}}{{continue}}{{end}}X{{end}}|{{range ls "/up"}}{{range ls "/nothing"}}{{else}}{{break}}{{end}}Y{{end}}`, true},
	{"empty variadic any", `{{toJson list}} {{printf "%#v" list}} {{list | toJson}} {{toJson (list)}} {{printf "%#v" (list 1)}}`, true},
	{"break continue", `{{range ls "/up"}}{{if eq . "s2"}}{{break}}{{end}}{{.}}{{end}}|{{range ls "/up"}}{{if eq . "s1"}}{{continue}}{{end}}{{.}}{{end}}`, true},
	{"scopes", `{{$x := 1}}{{range ls "/up"}}{{$x := .}}{{$x}}{{end}}{{$x}}{{if true}}{{$x := 2}}{{$x}}{{end}}{{$x}}`, true},
	{"json map", `{{$j := json (getv "/json")}}{{$j.b.c}} {{range $k, $v := $j}}{{$k}};{{end}} {{$j.f}} {{len $j.a}}`, true},
	{"json nil field", `{{$j := json (getv "/json")}}{{$j.n}}`, false},
	{"json missing field", `{{$j := json (getv "/json")}}{{$j.zz}}`, false},
	{"json array", `{{range jsonArray (getv "/array")}}{{.}},{{end}}`, true},
	{"printf print", `{{printf "%s-%d-%v" "a" 3 true}} {{print "a" 1 2 "b"}} {{printf "%q" (ls "/app")}}`, true},
	{"pipes", `{{getv "/app/name" | toUpper}} {{"/app/name" | getv | printf "<%s>"}}`, true},
	{"arith", `{{add 1 2}} {{sub 5 3}} {{mul (atoi (getv "/app/port")) 2}} {{div 7 2}} {{mod 7 2}}`, true},
	{"div zero", `{{div 1 0}}`, false},
	{"atoi error", `{{atoi "x"}}`, false},
	{"strings", `{{split "a,b" ","}} {{join (ls "/app") "+"}} {{contains "abc" "b"}} {{replace "aaa" "a" "b" 2}} {{trimSuffix "a.conf" ".conf"}} {{dir "/a/b"}}`, true},
	{"and or not", `{{and 1 "x" true}} {{or 0 "" "y"}} {{not ""}} {{and 0 "never"}} {{or "first" "never"}} {{true | and 1}}`, true},
	{"eq ne len", `{{eq "a" "b" "a"}} {{ne 1 2}} {{eq true true}} {{len "héllo"}} {{len (ls "/app")}}`, true},
	{"eq mixed", `{{eq "a" 1}}`, false},
	{"numbers", `{{1.5}} {{0x10}} {{'a'}} {{1e3}}`, false},
	{"wrong type", `{{getv 1}}`, false},
	{"wrong arity", `{{getv}}`, false},
	{"dot at top", `{{.}}`, false},
	{"if dot at top", `{{if .}}y{{else}}n{{end}}`, true},
	{"field at top", `{{.Foo}}`, false},
	{"sprig", `{{upper "a"}} {{trim " b "}} {{default "d" ""}} {{quote "q"}} {{list 1 2}} {{coalesce "" "c"}} {{ternary "y" "n" true}} {{trunc 2 "abc"}} {{regexReplaceAll "[0-9]" "a1" "#"}} {{dict "k" 1}} {{sortAlpha (list "b" "a")}}`, true},
	{"sprig unknown signature", `{{until 3}}`, false},
	{"define template", `{{define "x"}}in{{.}}{{$}}{{end}}{{template "x"}}|{{template "x" "dot"}}`, false},
	{"template dot", `{{define "x"}}<{{.}}{{$}}>{{end}}{{range ls "/app"}}{{template "x" .}}{{end}}`, true},
	{"template vars", `{{define "x"}}{{$v := 1}}{{$v}}{{end}}{{$v := 2}}{{template "x" "a"}}{{$v}}`, true},
	{"block", `{{block "b" "d"}}[{{.}}]{{end}}`, true},
	{"recursive template", `{{define "r"}}{{if .}}{{len .}}{{template "r" (slice . 1)}}{{end}}{{end}}{{template "r" "abc"}}`, false},
	{"template recursion limit", `{{define "r"}}{{template "r" .}}{{end}}{{template "r" 1}}`, false},
	{"index", `{{$j := json (getv "/json")}}{{index $j "b" "c"}} {{index $j.a 1}} {{index (ls "/app") 0}} {{if index $j "zz"}}y{{else}}n{{end}} {{index (map "a" "b") "a"}}`, true},
	{"index missing", `{{$j := json (getv "/json")}}{{index $j "zz"}}`, false},
	{"index out of range", `{{index (ls "/app") 9}}`, false},
	{"chain", `{{(get "/app/name").Key}}`, false},
	{"comments trim", "{{- /* c */ -}}\n  {{ getv \"/app/name\" -}}  \n", true},
	{"reverse sort", `{{reverse (ls "/app")}} {{sortByLength (ls "/")}} {{sortKVByLength (gets "/app/env/*")}}`, true},
	{"map", `{{$m := map "a" 1 "b" "x"}}{{$m.a}}{{$m.b}}{{range $k, $v := $m}}{{$k}}{{end}}`, true},
	{"bool int print", `{{exists "/a"}} {{len (ls "/")}} {{seq 1 3}}`, true},
	{"kvpair print", `{{get "/app/name"}} {{gets "/app/env/*"}}`, true},
	{"empty variadic string", `{{restNil "a"}} {{restNil "a" "b"}}`, true},
	{"parseBool", `{{parseBool "true"}} {{if parseBool "false"}}t{{else}}f{{end}}`, true},
	{"hostname", `{{hostname}} {{hostname | len}}`, true},
	{"service none", `{{range service "web"}}{{.Address}}{{else}}no web{{end}}`, true},
}

// TestFastExecutor pins, construct by construct, that the fast executor
// renders what text/template renders, and which constructs it leaves to
// text/template.
func TestFastExecutor(t *testing.T) {
	s := NewStore(map[string]string{
		"/app/name": "web", "/app/port": "8080", "/app/empty": "",
		"/app/env/A": "1", "/app/env/B": "2",
		"/up/s1/addr": "10.0.0.1", "/up/s1/weight": "3", "/up/s2/addr": "10.0.0.2",
		"/json":  `{"b":{"c":"deep"},"a":[1,"x",true],"n":null,"f":1.5}`,
		"/array": `["x","y",{"k":"v"}]`,
	})
	for _, tt := range fastCases {
		t.Run(tt.name, func(t *testing.T) {
			_, fast := renderBoth(t, tt.text, Options{Funcs: map[string]any{
				// What a variadic gets with no arguments: empty, not nil.
				"restNil": func(s string, rest ...string) (string, error) { return fmt.Sprint(rest == nil), nil },
			}}, s)
			if fast != tt.fast {
				t.Errorf("rendered by the fast executor: %v, want %v", fast, tt.fast)
			}
		})
	}
}

// TestFastConcurrentBindings renders one template from many goroutines,
// so that clones (with their own store functions) run in the fast
// executor too.
func TestFastConcurrentBindings(t *testing.T) {
	tm, err := template.Parse("t", `{{range ls "/"}}{{getv (printf "/%s" .)}}{{end}}`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	stores := []*Store{NewStore(map[string]string{"/a": "1"}), NewStore(map[string]string{"/b": "2", "/c": "3"})}
	want := []string{"1", "23"}
	before := exec.Renders()
	done := make(chan error)
	for g := range 8 {
		go func() {
			for range 50 {
				out, _, err := tm.Execute(stores[g%2])
				if err == nil && string(out) != want[g%2] {
					err = errors.New("got " + string(out) + ", want " + want[g%2])
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := exec.Renders() - before; n != 8*50 {
		t.Errorf("the fast executor rendered %d of %d renders: fell back", n, 8*50)
	}
}

// The fuzz targets' stubs, store and guard (shared with the other
// template package's fuzz targets: fuzzcase).
var (
	fuzzStubs = fuzzcase.Stubs()
	fuzzStore = NewStore(fuzzcase.Store)
	bigNumber = fuzzcase.BigNumber
)

// goldenSeeds returns the template of every golden case.
func goldenSeeds(f testing.TB) []string {
	files, err := filepath.Glob(goldenGlob)
	if err != nil {
		f.Fatal(err)
	}
	var seeds []string
	for _, file := range files {
		text, _ := loadGolden(f, file)
		seeds = append(seeds, text)
	}
	return seeds
}

// diffStubs are fuzzStubs plus stubs for the functions whose output
// varies from call to call, so that two renders can be compared.
var diffStubs = func() map[string]any {
	m := maps.Clone(fuzzStubs)
	for _, n := range []string{"randAlphaNum", "randAlpha", "randAscii", "randNumeric", "randBytes",
		"randInt", "uuidv4", "shuffle", "ago", "toDate", "mustToDate", "unixEpoch", "dateModify",
		"mustDateModify", "date", "dateInZone", "htmlDate", "htmlDateInZone", "duration", "durationRound"} {
		m[n] = fuzzStubs["now"]
	}
	return m
}()

// FuzzFastMatchesTextTemplate renders arbitrary templates in the fast
// executor and in text/template and requires the same output, error and
// reads.
//
// Its seeds are the golden cases and testdata/fuzz/FuzzFastMatchesTextTemplate
// (TestFastExecutor's cases and a few more).
func FuzzFastMatchesTextTemplate(f *testing.F) {
	for _, s := range goldenSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 1024 || bigNumber.MatchString(text) || recursive(text) {
			// A recursive {{template}} runs 100,000 calls deep in
			// text/template before it fails (~0.3 s a case).
			t.Skip("could take unbounded time or memory")
		}
		renderBoth(t, text, Options{Funcs: diffStubs}, fuzzStore)
	})
}

// recursive reports whether text parses into templates that call
// themselves through {{template}} (directly or not).
func recursive(text string) bool {
	tr := parse.New("fuzz.tmpl")
	tr.Mode = parse.SkipFuncCheck
	trees := map[string]*parse.Tree{}
	if _, err := tr.Parse(text, "", "", trees); err != nil {
		return false
	}
	calls := map[string][]string{}
	for name, tr := range trees {
		walkTemplates(tr.Root, func(tn *parse.TemplateNode) {
			calls[name] = append(calls[name], tn.Name)
		})
	}
	// Depth-first search for a cycle: 1 on the path, 2 done.
	state := map[string]int{}
	var cycle func(string) bool
	cycle = func(name string) bool {
		switch state[name] {
		case 1:
			return true
		case 2:
			return false
		}
		state[name] = 1
		for _, c := range calls[name] {
			if cycle(c) {
				return true
			}
		}
		state[name] = 2
		return false
	}
	for name := range trees {
		if cycle(name) {
			return true
		}
	}
	return false
}

func TestRecursiveGuard(t *testing.T) {
	for text, want := range map[string]bool{
		`{{define "r"}}{{template "r" .}}{{end}}{{template "r"}}`:                     true,
		`{{define "a"}}{{template "b"}}{{end}}{{define "b"}}{{template "a"}}{{end}}x`: true,
		`{{block "b" .}}{{template "b"}}{{end}}`:                                      true,
		`{{define "x"}}in{{end}}{{template "x"}}{{template "x"}}`:                     false,
		`{{if 1}}{{end}}`: false,
		`{{template`:      false,
	} {
		if got := recursive(text); got != want {
			t.Errorf("recursive(%q) = %v, want %v", text, got, want)
		}
	}
}

// walkTemplates calls fn for every {{template}} under n.
func walkTemplates(n parse.Node, fn func(*parse.TemplateNode)) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			walkTemplates(c, fn)
		}
	case *parse.IfNode:
		walkTemplates(n.List, fn)
		walkTemplates(n.ElseList, fn)
	case *parse.RangeNode:
		walkTemplates(n.List, fn)
		walkTemplates(n.ElseList, fn)
	case *parse.WithNode:
		walkTemplates(n.List, fn)
		walkTemplates(n.ElseList, fn)
	case *parse.TemplateNode:
		fn(n)
	}
}
