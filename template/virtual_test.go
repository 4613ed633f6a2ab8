package template

import (
	"slices"
	"testing"
)

func TestVirtualKeys(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
	}{
		{"none", `{{getv "/a"}}`, nil},
		{"service", `{{range service "web"}}{{.ID}}{{end}}`, []string{"/@service/web"}},
		{"tag", `{{service "web" "canary"}}`, []string{"/@service/web"}},
		{"any", `{{service "web" "any"}}`, []string{"/@service-any/web"}},
		{"dynamic option", `{{$o := "x"}}{{service "web" $o}}`, []string{"/@service-any/web", "/@service/web"}},
		{"services", `{{range services}}{{.Name}}{{end}}`, []string{"/@services"}},
		{"in define", `{{define "x"}}{{service "db"}}{{end}}{{template "x"}}`, []string{"/@service/db"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tm, err := Parse("t", tc.text, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := tm.VirtualKeys(); !slices.Equal(got, tc.want) {
				t.Errorf("VirtualKeys() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestServiceReads(t *testing.T) {
	tm, err := Parse("t", `{{service "web"}}{{services}}`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, reads, err := tm.Execute(NewStore(nil))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/@service/web", "/@services"}; !slices.Equal(reads.Prefixes, want) {
		t.Errorf("Reads.Prefixes = %q, want %q", reads.Prefixes, want)
	}
}

func TestMayReadServices(t *testing.T) {
	tests := []struct {
		text string
		want bool
	}{
		{`{{range service "web"}}{{.Address}}{{end}}`, true},
		{`{{- range services -}}{{.}}{{end}}`, true},
		{`{{len (service "db" "any")}}`, true},
		{`{{"x" | printf "%s" | service}}`, true},
		{"[service]\nname = {{getv \"/service/name\"}}\n", false},
		{`{{/* service "web" */}}{{getv "/a"}}`, false},
		{`{{.service}} {{$service := 1}}`, false},
		{`{{getv "}} service"}}`, false},
		{"{{`}}` | print}} service", false},
		{`{{getv "a\"service"}}`, false},
		{`plain text`, false},
		{"{{-\n/* don't */}}{{range service \"web\"}}{{.Address}}{{end}}", true},
		{"{{-\n/* ` */}}{{service \"web\"}}{{/* ` */}}", true},
		{"{{- /* c */ -}}{{getv \"/a\"}}", false},
		{"{{getv \"/a\"", true}, // not closed: the parse will say so
	}
	for _, tt := range tests {
		if got := MayReadServices(tt.text, Options{}); got != tt.want {
			t.Errorf("MayReadServices(%q) = %v, want %v", tt.text, got, tt.want)
		}
		checkMayReadServices(t, tt.text)
	}
	if !MayReadServices(`<% service "web" %>`, Options{LeftDelim: "<%", RightDelim: "%>"}) {
		t.Error("custom delimiters: service not seen")
	}
}

// checkMayReadServices fails when text parses to a template with virtual
// keys but MayReadServices says it has none.
func checkMayReadServices(t *testing.T, text string) {
	t.Helper()
	tm, err := Parse("x", text, Options{})
	if err != nil || len(tm.VirtualKeys()) == 0 {
		return
	}
	if !MayReadServices(text, Options{}) {
		t.Errorf("MayReadServices(%q) = false, but the template reads %v", text, tm.VirtualKeys())
	}
}

func FuzzMayReadServices(f *testing.F) {
	for _, s := range []string{`{{range service "web"}}{{end}}`, `{{services}}`, "{{`}}`}}{{service \"a\"}}", `{{/* x */}}{{service "b"}}`,
		"{{-\n/* don't */}}{{range service \"web\"}}{{end}}", "{{-\t/* ` */}}{{service \"web\"}}{{/* ` */}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		checkMayReadServices(t, text)
	})
}
