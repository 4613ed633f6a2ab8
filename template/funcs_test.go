package template

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/Masterminds/sprig/v3"
)

// testStore is the store the function tests render against.
var testStore = map[string]string{
	"/app/name":              "web",
	"/app/db":                "primary",
	"/app/db/host":           "db1",
	"/app/db/port":           "5432",
	"/app/db-replica/host":   "db2",
	"/upstreams/b/addr":      "10.0.0.2",
	"/upstreams/a/addr":      "10.0.0.3",
	"/upstreams/c/addr":      "10.0.0.1",
	"/upstreams/a/weight":    "5",
	"/json/obj":              `{"a":1,"b":[true,"x"]}`,
	"/json/arr":              `[1,"two",{"three":3}]`,
	"/json/bad":              `{`,
	"/b64":                   "aGVsbG8=",
	"/b64bad":                "!!!",
	"/weird/with space/k":    "sp",
	"/weird/star*/k":         "st",
	"/weird/brack[et]/k":     "br",
	"/weird/q?/k":            "q",
	"/weird/back\\slash/k":   "bs",
	"/weird/unicode-é/k":     "u",
	"/weird/with space/more": "sp2",
}

func TestFuncs(t *testing.T) {
	t.Setenv("CONFIT_TEST_SET", "set")
	t.Setenv("CONFIT_TEST_EMPTY", "")
	dir := t.TempDir()
	present := filepath.Join(dir, "present")
	if err := os.WriteFile(present, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		text    string
		want    string
		wantErr string // substring; "" means no error
	}{
		// store functions
		{name: "get", text: `{{with get "/app/name"}}{{.Key}}={{.Value}}{{end}}`, want: "/app/name=web"},
		{name: "get missing", text: `{{get "/nope"}}`, wantErr: "error calling get: key does not exist: /nope"},
		{name: "get unclean key is looked up as written (confd)", text: `{{(get "app//name/").Key}}`, wantErr: "key does not exist: app//name/"},
		{name: "getv", text: `{{getv "/app/db/port"}}`, want: "5432"},
		{name: "getv default", text: `{{getv "/nope" "dflt"}}`, want: "dflt"},
		{name: "getv default ignored when present", text: `{{getv "/app/name" "dflt"}}`, want: "web"},
		{name: "getv extra defaults", text: `{{getv "/nope" "one" "two"}}`, want: "one"},
		{name: "getv missing", text: `{{getv "/database/url"}}`, wantErr: "key does not exist: /database/url"},
		{name: "getv no args", text: `{{getv}}`, wantErr: "wrong number of args for getv"},
		{name: "exists", text: `{{exists "/app/name"}} {{exists "/app"}} {{exists "/nope"}}`, want: "true false false"},
		{name: "gets sorted by key", text: `{{range gets "/upstreams/*/addr"}}{{.Key}} {{end}}`, want: "/upstreams/a/addr /upstreams/b/addr /upstreams/c/addr "},
		{name: "gets star does not cross slash", text: `{{len (gets "/upstreams/*")}}`, want: "0"},
		{name: "gets exact", text: `{{range gets "/app/name"}}{{.Value}}{{end}}`, want: "web"},
		{name: "gets no match", text: `{{gets "/zzz/*"}}`, want: "[]"},
		{name: "gets bad pattern", text: `{{gets "/app/[a-"}}`, wantErr: "syntax error in pattern"},
		{name: "gets bad pattern empty store section", text: `{{gets "/zzz/\\"}}`, wantErr: "syntax error in pattern"},
		{name: "gets escaped meta", text: `{{range gets "/weird/star\\*/*"}}{{.Value}}{{end}}`, want: "st"},
		{name: "gets class", text: `{{range gets "/weird/brack[e]t]/*"}}{{.Value}}{{end}}`, want: ""},
		{name: "gets question", text: `{{range gets "/weird/q?/k"}}{{.Value}}{{end}}`, want: "q"},
		{name: "gets literal question", text: `{{range gets "/weird/q\\?/k"}}{{.Value}}{{end}}`, want: "q"},
		{name: "gets leading star", text: `{{range gets "*"}}{{.Key}}{{end}}`, want: ""},
		{name: "gets all two deep", text: `{{len (gets "/*/*")}}`, want: "5"},
		{name: "getvs sorted by value", text: `{{getvs "/upstreams/*/addr"}}`, want: "[10.0.0.1 10.0.0.2 10.0.0.3]"},
		{name: "getvs bad pattern", text: `{{getvs "["}}`, wantErr: "syntax error in pattern"},
		{name: "ls", text: `{{ls "/app"}}`, want: "[db db-replica name]"},
		{name: "ls key equal to path", text: `{{ls "/app/db"}}`, want: "[db host port]"},
		{name: "ls missing", text: `{{ls "/nope"}}`, want: "[]"},
		{name: "ls root", text: `{{ls "/"}}`, want: "[app b64 b64bad json upstreams weird]"},
		{name: "ls does not match sibling prefix", text: `{{ls "/app/db-"}}`, want: "[]"},
		{name: "ls weird names", text: `{{join (ls "/weird") "|"}}`, want: `back\slash|brack[et]|q?|star*|unicode-é|with space`},
		{name: "lsdir", text: `{{lsdir "/app"}}`, want: "[db db-replica]"},
		{name: "lsdir leaf", text: `{{lsdir "/app/name"}}`, want: "[]"},
		{name: "lsdir root", text: `{{lsdir "/"}}`, want: "[app json upstreams weird]"},

		// confd's general functions
		{name: "base", text: `{{base "/a/b/c.conf"}} {{base ""}}`, want: "c.conf ."},
		{name: "dir", text: `{{dir "/a/b/c.conf"}} {{dir "c"}}`, want: "/a/b ."},
		{name: "split", text: `{{split "a,b,,c" ","}}`, want: "[a b  c]"},
		{name: "join", text: `{{join (split "a b" " ") "+"}}`, want: "a+b"},
		{name: "toUpper toLower", text: `{{toUpper "aB"}}{{toLower "aB"}}`, want: "ABab"},
		{name: "contains s substr", text: `{{contains "confit" "fit"}} {{contains "fit" "confit"}}`, want: "true false"},
		{name: "replace s old new n", text: `{{replace "a.b.c" "." "/" -1}} {{replace "a.b.c" "." "/" 1}}`, want: "a/b/c a/b.c"},
		{name: "trimSuffix s suffix", text: `{{trimSuffix "app.conf" ".conf"}}`, want: "app"},
		{name: "trimPrefix is sprig's prefix s", text: `{{trimPrefix "www." "www.x.org"}}`, want: "x.org"},
		{name: "json", text: `{{$j := json (getv "/json/obj")}}{{$j.a}} {{index $j.b 1}}`, want: "1 x"},
		{name: "json bad", text: `{{json (getv "/json/bad")}}`, wantErr: "error calling json: value of /json/bad (1 bytes) is not a JSON object (unexpected end of JSON input)"},
		{name: "json array is not object", text: `{{json (getv "/json/arr")}}`, wantErr: "error calling json"},
		{name: "jsonArray", text: `{{range jsonArray (getv "/json/arr")}}{{.}};{{end}}`, want: "1;two;map[three:3];"},
		{name: "jsonArray bad", text: `{{jsonArray "{}"}}`, wantErr: "error calling jsonArray"},
		{name: "map", text: `{{$m := map "a" 1 "b" "two"}}{{$m.a}} {{$m.b}}`, want: "1 two"},
		{name: "map empty", text: `{{len (map)}}`, want: "0"},
		{name: "map odd", text: `{{map "a"}}`, wantErr: "invalid map call"},
		{name: "map non-string key", text: `{{map 1 2}}`, wantErr: "map keys must be strings"},
		{name: "getenv set", text: `{{getenv "CONFIT_TEST_SET" "d"}}`, want: "set"},
		{name: "getenv empty is unset", text: `{{getenv "CONFIT_TEST_EMPTY" "d"}}`, want: "d"},
		{name: "getenv unset no default", text: `[{{getenv "CONFIT_TEST_UNSET"}}]`, want: "[]"},
		{name: "datetime", text: `{{gt (datetime.Year) 2000}}`, want: "true"},
		{name: "fileExists", text: `{{fileExists "` + present + `"}} {{fileExists "` + present + `.no"}}`, want: "true false"},
		{name: "base64Encode", text: `{{base64Encode "hello"}}`, want: "aGVsbG8="},
		{name: "base64Decode", text: `{{base64Decode (getv "/b64")}}`, want: "hello"},
		{name: "base64Decode bad", text: `{{base64Decode (getv "/b64bad")}}`, wantErr: "illegal base64 data"},
		{name: "parseBool", text: `{{parseBool "1"}} {{parseBool "F"}}`, want: "true false"},
		{name: "parseBool bad", text: `{{parseBool "yes"}}`, wantErr: `error calling parseBool: value (3 bytes) is not a boolean (invalid syntax)`},
		{name: "atoi", text: `{{add (atoi "40") 2}}`, want: "42"},
		{name: "atoi bad", text: `{{atoi "4x"}}`, wantErr: `error calling atoi: value (2 bytes) is not an integer (invalid syntax)`},
		{name: "reverse strings in place", text: `{{$l := split "a b c" " "}}{{$_ := reverse $l}}{{$l}}`, want: "[c b a]"},
		{name: "reverse leaves kvpairs as confd does", text: `{{$l := gets "/upstreams/*/addr"}}{{$_ := reverse $l}}{{range $l}}{{.Value}} {{end}}`, want: "10.0.0.3 10.0.0.2 10.0.0.1 "},
		{name: "reverse leaves []any as confd does", text: `{{reverse (list 1 2 3)}}`, want: "[1 2 3]"},
		{name: "reverse other", text: `{{reverse 5}}`, want: "5"},
		{name: "sortByLength stable", text: `{{sortByLength (split "ccc,b,a,dd" ",")}}`, want: "[b a dd ccc]"},
		{name: "sortKVByLength", text: `{{range sortKVByLength (gets "/app/*")}}{{.Key}} {{end}}`, want: "/app/db /app/name "},
		{name: "seq", text: `{{seq 1 3}} {{seq 2 2}} {{seq 3 1}} {{len (seq 3 1)}}`, want: "[1 2 3] [2] [] 0"},
		{name: "add sub mul div mod", text: `{{add 2 3}} {{sub 2 3}} {{mul 2 3}} {{div 7 2}} {{mod 7 3}} {{div -7 2}}`, want: "5 -1 6 3 1 -3"},
		{name: "div by zero", text: `{{div 1 0}}`, wantErr: "error calling div: runtime error: integer divide by zero"},
		{name: "mod by zero", text: `{{mod 1 0}}`, wantErr: "error calling mod: runtime error: integer divide by zero"},
		{name: "add wants ints", text: `{{add "1" 2}}`, wantErr: "expected integer"},
		{name: "lookupIP bad host is nil", text: `{{lookupIP "bad host name..invalid"}}`, want: "[]"},
		{name: "lookupSRV bad is empty", text: `{{len (lookupSRV "x" "tcp" "bad host..invalid")}}`, want: "0"},
		{name: "hostname", text: `{{if hostname}}ok{{end}}`, want: "ok"},

		// sprig, and confit's sorted keys/values
		{name: "sprig upper", text: `{{upper "x"}}`, want: "X"},
		{name: "sprig default", text: `{{default "d" (getv "/nope" "")}}`, want: "d"},
		{name: "keys sorted", text: `{{keys (dict "c" 1 "a" 2 "b" 3)}}`, want: "[a b c]"},
		{name: "values by sorted key", text: `{{values (dict "c" 1 "a" 2 "b" 3)}}`, want: "[2 3 1]"},
		{name: "sprig fail", text: `{{fail "boom"}}`, wantErr: "boom"},
	}
	store := NewStore(testStore)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tm, err := Parse("funcs.tmpl", tc.text, Options{})
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			got, _, err := tm.Execute(store)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("got output %q, want error containing %q", got, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %q, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			if string(got) != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNotExistIsWrapped(t *testing.T) {
	tm, err := Parse("x.tmpl", `{{getv "/a"}}`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = tm.Execute(NewStore(nil))
	if !errors.Is(err, ErrNotExist) {
		t.Errorf("got %v, want errors.Is ErrNotExist", err)
	}
	want := `template: x.tmpl:1:2: executing "x.tmpl" at <getv "/a">: error calling getv: key does not exist: /a`
	if err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
}

func TestLookupIP(t *testing.T) {
	ips := func(ss ...string) func(string) ([]net.IP, error) {
		return func(string) ([]net.IP, error) {
			var out []net.IP
			for _, s := range ss {
				out = append(out, net.ParseIP(s))
			}
			return out, nil
		}
	}
	fail := func(string) ([]net.IP, error) { return nil, errors.New("no such host") }
	tests := []struct {
		name          string
		fn            func(string) ([]net.IP, error)
		all, ip4, ip6 []string
	}{
		{
			name: "sorted as strings",
			fn:   ips("10.0.0.10", "::1", "10.0.0.9", "fe80::1"),
			all:  []string{"10.0.0.10", "10.0.0.9", "::1", "fe80::1"},
			ip4:  []string{"10.0.0.10", "10.0.0.9"},
			ip6:  []string{"::1", "fe80::1"},
		},
		{name: "error is nil", fn: fail},
		{name: "only v4", fn: ips("1.2.3.4"), all: []string{"1.2.3.4"}, ip4: []string{"1.2.3.4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			all := lookupIP(tc.fn, "h")
			if !slices.Equal(all, tc.all) {
				t.Errorf("lookupIP: got %q, want %q", all, tc.all)
			}
			if got := filterIPs(all, "."); !slices.Equal(got, tc.ip4) {
				t.Errorf("lookupIPV4: got %q, want %q", got, tc.ip4)
			}
			if got := filterIPs(all, ":"); !slices.Equal(got, tc.ip6) {
				t.Errorf("lookupIPV6: got %q, want %q", got, tc.ip6)
			}
		})
	}
	if got := lookupIP(fail, "h"); got != nil {
		t.Errorf("lookupIP on error: got %#v, want nil", got)
	}
}

func TestLookupSRV(t *testing.T) {
	recs := []*net.SRV{
		{Target: "b.", Port: 80, Priority: 1, Weight: 1},
		{Target: "a.", Port: 9000, Priority: 1, Weight: 1},
		{Target: "a.", Port: 80, Priority: 2, Weight: 1},
		{Target: "a.", Port: 80, Priority: 10, Weight: 1},
	}
	fn := func(service, proto, name string) (string, []*net.SRV, error) {
		return "", slices.Clone(recs), nil
	}
	got := lookupSRV(fn, "http", "tcp", "x")
	// confd compares the strings target+port+priority+weight:
	// "a.80101" < "a.8021" < "a.900011" < "b.8011".
	want := []*net.SRV{recs[3], recs[2], recs[1], recs[0]}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	fail := func(service, proto, name string) (string, []*net.SRV, error) {
		return "", nil, errors.New("nxdomain")
	}
	if got := lookupSRV(fail, "http", "tcp", "x"); got == nil || len(got) != 0 {
		t.Errorf("on error: got %#v, want empty non-nil", got)
	}
}

func TestFuncNames(t *testing.T) {
	names := FuncNames()
	if !slices.IsSorted(names) {
		t.Error("FuncNames not sorted")
	}
	confd := []string{
		"get", "gets", "getv", "getvs", "exists", "ls", "lsdir", "json", "jsonArray", "base", "dir",
		"split", "join", "map", "getenv", "datetime", "lookupIP", "lookupIPV4", "lookupIPV6",
		"lookupSRV", "fileExists", "base64Encode", "base64Decode", "parseBool", "atoi", "reverse",
		"sortByLength", "sortKVByLength", "seq", "add", "sub", "mul", "div", "mod", "toUpper",
		"toLower", "contains", "replace", "trimSuffix", "hostname", "trimPrefix",
	}
	for _, n := range confd {
		if _, ok := slices.BinarySearch(names, n); !ok {
			t.Errorf("FuncNames lacks %q", n)
		}
	}
	// Every sprig function is available; the collisions take confd's
	// implementation.
	collisions := []string{"add", "atoi", "base", "contains", "dir", "div", "get", "join", "mod",
		"mul", "replace", "reverse", "seq", "split", "sub", "trimSuffix"}
	for n := range sprig.TxtFuncMap() {
		if _, ok := slices.BinarySearch(names, n); !ok {
			t.Errorf("FuncNames lacks sprig's %q", n)
		}
	}
	for _, n := range collisions {
		if _, ok := confdFuncs()[n]; !ok && n != "get" {
			t.Errorf("collision %q is not confd's", n)
		}
	}
}

// TestStoreFunc: storeFunc binds every name of storeFuncNames and no other
// name, so a template calling a store function gets it bound to its own
// recorder.
func TestStoreFunc(t *testing.T) {
	r := &recorder{}
	for _, n := range storeFuncNames {
		if f, ok := storeFunc(r, n); !ok || f == nil {
			t.Errorf("storeFunc(%q) = %v, %v; want a function", n, f, ok)
		}
	}
	for _, n := range []string{"getenv", "base", "", "Get"} {
		if f, ok := storeFunc(r, n); ok {
			t.Errorf("storeFunc(%q) = %v, true; want none", n, f)
		}
	}
}

func TestParseErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "haproxy.cfg.tmpl")
	text := strings.Repeat("line\n", 11) + `{{nope "x"}}` + "\n"
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ParseFile(file, Options{})
	if err == nil {
		t.Fatal("got nil error")
	}
	if want := file + `:12: function "nope" not defined`; err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	if _, err := ParseFile(filepath.Join(dir, "missing.tmpl"), Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v, want os.ErrNotExist", err)
	}
	_, err = Parse("x.tmpl", "a\n{{if}}", Options{})
	if err == nil || !strings.Contains(err.Error(), "x.tmpl:2") {
		t.Errorf("got %v, want x.tmpl:2", err)
	}
}

func TestOptionsFuncsOverride(t *testing.T) {
	tm, err := Parse("o.tmpl", `{{getv "/a"}} {{upper "x"}} {{extra}}`, Options{Funcs: map[string]any{
		"getv":  func(k string) string { return "custom:" + k },
		"upper": func(s string) string { return "U" },
		"extra": func() int { return 7 },
	}})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // once from a fresh clone, once from the pool
		got, reads, err := tm.Execute(NewStore(map[string]string{"/a": "1"}))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "custom:/a U 7" {
			t.Errorf("got %q, want %q", got, "custom:/a U 7")
		}
		if len(reads.Keys) != 0 {
			t.Errorf("got reads %v from an overridden getv, want none", reads.Keys)
		}
	}
}

func TestOptionsFuncsBad(t *testing.T) {
	tests := []struct {
		name  string
		funcs map[string]any
	}{
		{name: "not a function", funcs: map[string]any{"x": 1}},
		{name: "nil", funcs: map[string]any{"x": nil}},
		{name: "three results", funcs: map[string]any{"x": func() (int, int, int) { return 0, 0, 0 }}},
		{name: "bad name", funcs: map[string]any{"a-b": func() int { return 0 }}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.tmpl", "x", Options{Funcs: tc.funcs})
			if err == nil || !strings.Contains(err.Error(), "bad function in Options.Funcs") {
				t.Errorf("got %v, want a bad function error", err)
			}
		})
	}
}
