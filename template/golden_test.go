package template

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the want section of testdata/*.txtar")

// A golden case is a txtar archive in testdata with these files:
//
//	template  the template text; it is parsed under the name "test.tmpl"
//	data      the store: either a JSON object of key -> string value, or one
//	          key=value per line (split at the first "="; blank lines skipped)
//	want      the exact expected output, or
//	error     a substring of the expected parse or execution error
//
// The archive comment describes the case. A case named delims.txtar is
// parsed with the delimiters "[[" and "]]". go test -update rewrites want
// (cases with an error section are left alone).

// loadGolden parses one archive into its template, store and expectations.
func loadGolden(t *testing.T, file string) (ar *txtarArchive, text string, kvs map[string]string) {
	t.Helper()
	ar, err := parseTxtarFile(file)
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
	kvs, err = parseData(files["data"])
	if err != nil {
		t.Fatalf("%s: data: %v", file, err)
	}
	return ar, text, kvs
}

// parseData reads a golden case's data section.
func parseData(data string) (map[string]string, error) {
	kvs := map[string]string{}
	if strings.HasPrefix(strings.TrimSpace(data), "{") {
		err := json.Unmarshal([]byte(data), &kvs)
		return kvs, err
	}
	for line := range strings.Lines(data) {
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		kvs[k] = v
	}
	return kvs, nil
}

func goldenOptions(file string) Options {
	if filepath.Base(file) == "delims.txtar" {
		return Options{LeftDelim: "[[", RightDelim: "]]"}
	}
	return Options{}
}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 12 {
		t.Fatalf("got %d golden cases, want at least 12", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, text, kvs := loadGolden(t, file)
			var want, wantErr *string
			for i := range ar.Files {
				switch ar.Files[i].Name {
				case "want":
					s := string(ar.Files[i].Data)
					want = &s
				case "error":
					s := strings.TrimSpace(string(ar.Files[i].Data))
					wantErr = &s
				}
			}
			if (want == nil) == (wantErr == nil) {
				t.Fatal("need exactly one of want and error")
			}

			got, err := render(text, goldenOptions(file), kvs)
			if wantErr != nil {
				if err == nil {
					t.Fatalf("got output %q, want error containing %q", got, *wantErr)
				}
				if !strings.Contains(err.Error(), *wantErr) {
					t.Fatalf("got error %q, want it to contain %q", err, *wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want output", err)
			}
			if *update {
				for i := range ar.Files {
					if ar.Files[i].Name == "want" {
						ar.Files[i].Data = got
					}
				}
				if err := os.WriteFile(file, formatTxtar(ar), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !bytes.Equal(got, []byte(*want)) {
				t.Errorf("got:\n%s\nwant:\n%s", got, *want)
			}
		})
	}
}

// render parses text as "test.tmpl" and executes it against kvs.
func render(text string, opts Options, kvs map[string]string) ([]byte, error) {
	tm, err := Parse("test.tmpl", text, opts)
	if err != nil {
		return nil, err
	}
	out, _, err := tm.Execute(NewStore(kvs))
	return out, err
}
