package template

import (
	"errors"
	"testing"
)

// The fast executor's own tests (differential, golden, concurrency, fuzz)
// are in internal/exec; these check how Parse and Execute use it: when a
// render falls back to text/template, and what sticks.

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
	tm, _ := Parse("t", `{{index}}`, Options{})
	_, _, err := tm.Execute(nil)
	if err == nil {
		t.Fatal("no error")
	}
	textT, _ := Parse("t", `{{index}}`, Options{TextTemplate: true})
	if _, _, want := textT.Execute(nil); err.Error() != want.Error() {
		t.Fatalf("fast error: %v\ntext/template error: %v", err, want)
	}
	if !tm.slow.Load() {
		t.Error("not marked slow")
	}
}
