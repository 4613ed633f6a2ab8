package template

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"testing"
	"text/template/parse"
)

// renderBoth renders text against s twice, in the fast executor (falling
// back as Execute does) and in text/template alone, each from its own
// parse, and fails t if the outputs, errors or reads differ. It returns
// the error of the render and whether the fast executor rendered it
// without falling back.
func renderBoth(t testing.TB, text string, opts Options, s *Store) (error, bool) {
	t.Helper()
	fastT, err := Parse("test.tmpl", text, opts)
	if err != nil {
		return err, false
	}
	slowT, err := Parse("test.tmpl", text, opts)
	if err != nil {
		t.Fatalf("second parse: %v", err)
	}
	fastOnly := false
	if fastT.fast != nil {
		b, err := fastT.acquire()
		if err != nil {
			t.Fatal(err)
		}
		b.rec.reset(s)
		var buf bytes.Buffer
		fastOnly = fastT.fast.exec(&buf, b.fast) == nil
		fastT.free = append(fastT.free, b)
	}
	gotOut, gotReads, gotErr := fastT.execute(s, true)
	wantOut, wantReads, wantErr := slowT.execute(s, false)
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

// TestFastGolden renders every golden case both ways.
func TestFastGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	fast := 0
	for _, file := range files {
		_, text, kvs := loadGolden(t, file)
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

// fastExecutorTexts are the texts of fastCases.
var fastExecutorTexts = func() []string {
	var out []string
	for _, c := range fastCases {
		out = append(out, c.text)
	}
	return out
}()

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

// TestFastFallbackSticks checks that a template the fast executor had to
// give up on once goes to text/template directly afterwards, and that a
// function's error does not count as such.
func TestFastFallbackSticks(t *testing.T) {
	tm, err := Parse("t", `{{.}}`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tm.fast == nil {
		t.Fatal("not compiled for the fast executor")
	}
	out, _, err := tm.Execute(nil)
	if err != nil || string(out) != "<no value>" {
		t.Fatalf("got %q, %v", out, err)
	}
	if !tm.slow.Load() {
		t.Error("not marked slow after falling back")
	}
	tm, err = Parse("t", `{{getv "/x"}}`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tm.Execute(nil); !errors.Is(err, ErrNotExist) {
		t.Fatalf("got %v, want ErrNotExist", err)
	}
	if tm.slow.Load() {
		t.Error("marked slow after a function's error")
	}
}

// TestFastConcurrentBindings renders one template from many goroutines,
// so that clones (with their own store functions) run in the fast
// executor too.
func TestFastConcurrentBindings(t *testing.T) {
	tm, err := Parse("t", `{{range ls "/"}}{{getv (printf "/%s" .)}}{{end}}`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	stores := []*Store{NewStore(map[string]string{"/a": "1"}), NewStore(map[string]string{"/b": "2", "/c": "3"})}
	want := []string{"1", "23"}
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
	if tm.slow.Load() {
		t.Error("fell back")
	}
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
func FuzzFastMatchesTextTemplate(f *testing.F) {
	for _, s := range goldenSeeds(f) {
		f.Add(s)
	}
	for _, s := range []string{
		`{{range $i, $k := ls "/app"}}{{$i}}{{$k}}{{if eq $k "db"}}{{break}}{{end}}{{end}}`,
		`{{$j := json (getv "/json")}}{{range $k, $v := $j}}{{$k}}={{$v}}{{end}}{{len $j.a}}`,
		`{{with $x := getv "/app/name"}}{{$x | printf "%q"}}{{else}}-{{end}}{{and 1 0}}{{or 0 ""}}`,
		`{{range 3}}{{.}}{{end}}{{eq 1 1 2}}{{ne "a" "b"}}{{not 0}}{{print 1 "a" true}}`,
		`{{define "x"}}<{{.}}{{$}}>{{end}}{{range ls "/app"}}{{range ls "/no"}}{{else}}{{continue}}{{end}}{{template "x" .}}{{end}}`,
		`{{toJson list}}{{list | toJson}}{{printf "%#v" (list)}}{{template "y" (dict)}}{{define "y"}}{{.}}{{end}}`,
	} {
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
	trees, err := parseText("fuzz.tmpl", text, "", "")
	if err != nil {
		return false
	}
	calls := map[string][]string{}
	for name, tr := range trees {
		walkNodes(tr.Root, func(n parse.Node) {
			if tn, ok := n.(*parse.TemplateNode); ok {
				calls[name] = append(calls[name], tn.Name)
			}
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

// TestTextTemplateOption checks that Options.TextTemplate keeps a template
// the fast executor could run in text/template.
func TestTextTemplateOption(t *testing.T) {
	for _, text := range []bool{false, true} {
		tm, err := Parse("t", `{{getv "/a"}}`, Options{TextTemplate: text})
		if err != nil {
			t.Fatal(err)
		}
		if (tm.fast == nil) != text {
			t.Errorf("TextTemplate %v: compiled for the fast executor: %v", text, tm.fast != nil)
		}
		out, _, err := tm.Execute(NewStore(map[string]string{"/a": "x"}))
		if err != nil || string(out) != "x" {
			t.Errorf("TextTemplate %v: got %q, %v", text, out, err)
		}
	}
}

// TestFallbackAfterFuncsChanged checks that a render falling back to
// text/template (which parses the text again) does not consult the
// caller's Options.Funcs map again: it may have changed since Parse.
func TestFallbackAfterFuncsChanged(t *testing.T) {
	m := map[string]any{"f": func(s string) string { return s }}
	tm, err := Parse("t", `{{f "x"}}{{.}}`, Options{Funcs: m})
	if err != nil {
		t.Fatal(err)
	}
	delete(m, "f")
	out, _, err := tm.Execute(nil)
	if err != nil || string(out) != "x<no value>" {
		t.Fatalf("got %q, %v; want %q", out, err, "x<no value>")
	}
}

// TestFastIndexNoArgs checks that index without arguments falls back as
// an unknown shape (text/template's error), not as a panic, so later
// renders go to text/template directly.
func TestFastIndexNoArgs(t *testing.T) {
	err, _ := renderBoth(t, `{{index}}`, Options{}, emptyStore)
	if err == nil {
		t.Fatal("no error")
	}
	tm, _ := Parse("t", `{{index}}`, Options{})
	tm.Execute(nil)
	if !tm.slow.Load() {
		t.Error("not marked slow")
	}
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
