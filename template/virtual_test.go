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
