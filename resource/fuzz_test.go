package resource

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadTOML loads arbitrary bytes as a conf.d file: it may fail, never
// panic, and an error is always a *LoadError naming the file.
func FuzzLoadTOML(f *testing.F) {
	for _, s := range []string{
		"[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/x\"\nkeys = [\"/a\"]\nmode = \"644\"\n",
		"[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/x\"\nuid = 1\ngid = 1\nwait = \"1s:2s\"\ncheck_cmd = \"x {{.src}}\"\n[backend]\nfile = \"a\"\n",
		"[template]\nSrc = 1\n",
		"[template\n",
		"[[template]]\nsrc = \"a\"\n",
		"template = 3\n",
		"[backend]\nnodes = [1, \"a\"]\n",
		"[template]\nwait = \":\"\nmode = \"99999999999999999999\"\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "conf.d"), 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "templates"), 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "templates", "app.tmpl"), []byte("{{getv \"/x\"}}"), 0o644); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file := filepath.Join(t.TempDir(), "app.toml")
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := Load(file, Options{ConfDir: dir})
		if err != nil {
			le, ok := err.(*LoadError)
			if !ok || le.File != file {
				t.Fatalf("error %T %v does not name %s", err, err, file)
			}
			return
		}
		if r.Src == "" || r.Dest == "" || r.Prefix == "" || r.Prefix[0] != '/' {
			t.Fatalf("loaded an invalid resource: %+v", r)
		}
	})
}
