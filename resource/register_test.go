package resource

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestRegisterTable: a [register] table is accepted beside [template] (and
// handed over as decoded), a file with only [register] is no template
// resource, and keys outside the known tables are still errors.
func TestRegisterTable(t *testing.T) {
	tmpl := "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/x\"\n"
	reg := "[register]\nkey = \"/services/web/a\"\n[register.check]\ntcp = \"127.0.0.1:80\"\n"
	dir := confDir(t, map[string]string{
		"conf.d/both.toml":   tmpl + reg,
		"conf.d/only.toml":   reg + "[backend]\nbackend = \"consul\"\n",
		"conf.d/bad.toml":    reg + "[registr]\nx = 1\n",
		"templates/app.tmpl": "x",
	})
	rs, errs := LoadDir(Options{ConfDir: dir})
	var names []string
	for _, r := range rs {
		names = append(names, r.Name)
	}
	if want := []string{"both.toml"}; !reflect.DeepEqual(names, want) {
		t.Errorf("loaded %q, want %q", names, want)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `bad.toml:5: unknown key "registr"`) {
		t.Errorf("errors = %v, want one naming bad.toml:5 and registr", errs)
	}

	c, err := DecodeConfig("both.toml", []byte(tmpl+reg))
	if err != nil || !c.HasTemplate() {
		t.Fatalf("both: %v, template %v", err, c != nil && c.HasTemplate())
	}
	if c.Register["key"] != "/services/web/a" {
		t.Errorf("Register = %v", c.Register)
	}
	c, err = DecodeConfig("only.toml", []byte(reg+"[backend]\nbackend = \"consul\"\n"))
	if err != nil || c.HasTemplate() || c.BackendSpec() == nil || c.BackendSpec().Backend != "consul" {
		t.Fatalf("only: %v, %+v", err, c)
	}
	if _, err := Load(dir+"/conf.d/only.toml", Options{ConfDir: dir}); !errors.Is(err, ErrRegisterOnly) {
		t.Errorf("Load(only.toml) = %v, want ErrRegisterOnly", err)
	}
	if _, err := DecodeConfig("none.toml", []byte("[backend]\nbackend = \"consul\"\n")); err == nil || !strings.Contains(err.Error(), "missing [template] table") {
		t.Errorf("no [template] nor [register]: %v", err)
	}
}
