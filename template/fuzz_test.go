package template

import (
	"github.com/confit-dev/confit/template/internal/fuzzcase"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/template/internal/exec"
)

// The fuzz targets' stubs, store and guard (shared with the other
// template package's fuzz targets: fuzzcase).
var (
	fuzzStubs = fuzzcase.Stubs()
	fuzzStore = NewStore(fuzzcase.Store)
	bigNumber = fuzzcase.BigNumber
)

// goldenSeeds adds every testdata template to f's corpus.
func goldenSeeds(f testing.TB) []string {
	files, err := filepath.Glob("testdata/*.txtar")
	if err != nil {
		f.Fatal(err)
	}
	var seeds []string
	for _, file := range files {
		ar, err := parseTxtarFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, fl := range ar.Files {
			if fl.Name == "template" {
				seeds = append(seeds, string(fl.Data))
			}
		}
	}
	return seeds
}

func FuzzParseExecute(f *testing.F) {
	for _, s := range goldenSeeds(f) {
		f.Add(s)
	}
	f.Add(`{{range $k, $v := json (getv "/json")}}{{$k}}{{$v}}{{end}}{{ls "/"}}{{lsdir "/app"}}`)
	f.Add(`{{define "t"}}{{template "t" .}}{{end}}{{template "t"}}`)
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 1024 || bigNumber.MatchString(text) {
			t.Skip("could take unbounded time or memory")
		}
		tm, err := Parse("fuzz.tmpl", text, Options{Funcs: fuzzStubs})
		if err != nil {
			return
		}
		out, reads, err := tm.Execute(fuzzStore)
		if err != nil && out != nil {
			t.Errorf("got output %q with error %v", out, err)
		}
		if !slices.IsSorted(reads.Keys) || !slices.IsSorted(reads.Prefixes) {
			t.Errorf("reads not sorted: %+v", reads)
		}
	})
}

// FuzzStoreGlob checks gets, getvs, ls and lsdir against a brute-force
// model over the store's keys for arbitrary patterns and paths.
func FuzzStoreGlob(f *testing.F) {
	for _, s := range []string{"/app/*", "/*/*/*", "*", "/upstreams/?/addr", "/app/db", "/app/",
		"/weird/st\\*r/*", "/weird/st*r/[[]k]", "[", "/a/\\", "/app/d[a-z]", "/app/[^d]*", "", "/", "//app", "/app/db-"} {
		f.Add(s)
	}
	keys := fuzzStore.keys
	f.Fuzz(func(t *testing.T, pattern string) {
		r := &recorder{}
		r.reset(fuzzStore)
		got, err := r.gets(pattern)
		_, badErr := path.Match(pattern, "")
		if (err != nil) != (badErr != nil) {
			t.Fatalf("gets(%q): got error %v, want %v", pattern, err, badErr)
		}
		if err == nil {
			var want []KVPair
			for _, k := range keys {
				if ok, _ := path.Match(pattern, k); ok {
					i, _ := fuzzStore.find(k)
					want = append(want, KVPair{k, fuzzStore.vals[i]})
				}
			}
			if !slices.Equal(got, want) && (len(got) > 0 || len(want) > 0) {
				t.Fatalf("gets(%q): got %v, want %v", pattern, got, want)
			}
			reads := r.reads()
			if len(reads.Prefixes) != 1 {
				t.Fatalf("gets(%q): got prefixes %q, want one", pattern, reads.Prefixes)
			}
			for _, kv := range got {
				if !under(kv.Key, reads.Prefixes[0]) {
					t.Fatalf("gets(%q): key %q not under recorded prefix %q", pattern, kv.Key, reads.Prefixes[0])
				}
			}
		}

		// ls and lsdir against a model of confd's rules (with the root
		// listing its directories too).
		p := backends.CleanKey(pattern)
		wantLs, wantDir := map[string]bool{}, map[string]bool{}
		for _, k := range keys {
			if k == p && p != "/" {
				wantLs[path.Base(k)] = true
			}
			pre := strings.TrimSuffix(p, "/") + "/"
			if rest, ok := strings.CutPrefix(k, pre); ok && rest != "" {
				name, _, deeper := strings.Cut(rest, "/")
				wantLs[name] = true
				if deeper {
					wantDir[name] = true
				}
			}
		}
		check := func(fn string, got []string, want map[string]bool) {
			w := []string{}
			for n := range want {
				w = append(w, n)
			}
			slices.Sort(w)
			if !slices.Equal(got, w) {
				t.Fatalf("%s(%q): got %q, want %q", fn, pattern, got, w)
			}
		}
		check("ls", r.ls(pattern), wantLs)
		check("lsdir", r.lsdir(pattern), wantDir)
	})
}

// under is backends.Under's rule: key is prefix or below prefix + "/".
func under(key, prefix string) bool {
	return key == prefix || prefix == "/" || strings.HasPrefix(key, prefix+"/")
}

// FuzzCompiledFuncs checks the shortcut Parse takes when the fast
// executor compiled every tree: where compiledFuncs vouches for the
// function names, checkTrees (the walk it spares) finds no error, the
// same functions and no service-discovery prefix.
func FuzzCompiledFuncs(f *testing.F) {
	for _, s := range goldenSeeds(f) {
		f.Add(s)
	}
	for _, tc := range compiledFuncsCases {
		f.Add(tc.text)
	}
	f.Fuzz(func(t *testing.T, text string) {
		for _, opts := range []Options{{}, {Decrypter: noDecrypter{}}, {Funcs: fuzzStubs}} {
			trees, err := parseText("fuzz.tmpl", text, "", "")
			if err != nil {
				return
			}
			used, ok := compiledFuncs(exec.Compile(text, trees, "fuzz.tmpl"), opts)
			if !ok {
				continue
			}
			wantUsed, virtual, err := checkTrees(trees, opts)
			if err != nil || !slices.Equal(used, wantUsed) || len(virtual) > 0 {
				t.Errorf("compiledFuncs = %q; checkTrees = %q, %q, %v", used, wantUsed, virtual, err)
			}
		}
	})
}
