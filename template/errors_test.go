package template

import (
	"errors"
	"strings"
	"testing"
)

// canary stands for a secret in the store: no error may show it.
const canary = "s3cr3t-CANARY-7f3a"

// TestErrorsHideValues runs a canary value through every function that can
// fail on a value, and through text/template's own errors that print one:
// the error names the key (where the value came from one) and never the
// value.
func TestErrorsHideValues(t *testing.T) {
	store := NewStore(map[string]string{"/secret": canary, "/other": "plain"})
	tests := []struct {
		name, text string
		want       string // in the message
	}{
		{name: "atoi", text: `{{atoi (getv "/secret")}}`, want: "error calling atoi: value of /secret (18 bytes) is not an integer (invalid syntax)"},
		{name: "atoi via variable", text: `{{$v := getv "/secret"}}{{atoi $v}}`, want: "value of /secret (18 bytes) is not an integer"},
		{name: "parseBool", text: `{{parseBool (getv "/secret")}}`, want: "error calling parseBool: value of /secret (18 bytes) is not a boolean (invalid syntax)"},
		{name: "json", text: `{{json (getv "/secret")}}`, want: "error calling json: value of /secret (18 bytes) is not a JSON object (invalid character at byte 1)"},
		{name: "jsonArray", text: `{{jsonArray (getv "/secret")}}`, want: "value of /secret (18 bytes) is not a JSON array"},
		{name: "mustFromJson", text: `{{mustFromJson (getv "/secret")}}`, want: "value of /secret (18 bytes) is not JSON"},
		{name: "getvs by value", text: `{{range getvs "/s*"}}{{atoi .}}{{end}}`, want: "value of /secret (18 bytes) is not an integer"},
		{name: "gets by value", text: `{{range gets "/s*"}}{{parseBool .Value}}{{end}}`, want: "value of /secret (18 bytes) is not a boolean"},
		{name: "mustToDate", text: `{{mustToDate "2006-01-02" (getv "/secret")}}`, want: `value of /secret (18 bytes) does not match layout "2006-01-02"`},
		{name: "mustDateModify", text: `{{mustDateModify (getv "/secret") now}}`, want: "value of /secret (18 bytes) is not a duration"},
		{name: "semverCompare", text: `{{semverCompare (getv "/secret") "1.0.0"}}`, want: "[value of /secret redacted, 18 bytes]"},
		{name: "urlParse panics", text: `{{urlParse (printf "%s%%zz" (getv "/secret"))}}`, want: "[value of /secret redacted, 18 bytes]"},
		{name: "regex panics", text: `{{regexFind (printf "(%s" (getv "/secret")) "x"}}`, want: "[value of /secret redacted, 18 bytes]"},
		{name: "range over a value", text: `{{range getv "/secret"}}{{end}}`, want: "[value of /secret redacted, 18 bytes]"},
		{name: "fail with the value", text: `{{fail (getv "/secret")}}`, want: "[value of /secret redacted, 18 bytes]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, textOnly := range []bool{false, true} {
				tm, err := Parse("x.tmpl", tc.text, Options{TextTemplate: textOnly})
				if err != nil {
					t.Fatal(err)
				}
				_, _, err = tm.Execute(store)
				if err == nil {
					t.Fatal("got no error")
				}
				if strings.Contains(err.Error(), canary) {
					t.Errorf("error shows the value: %v", err)
				}
				if !strings.Contains(err.Error(), tc.want) {
					t.Errorf("got %q, want it to contain %q", err, tc.want)
				}
			}
		})
	}
}

// TestRedactQuoted checks that a value is also found as %q prints it.
func TestRedactQuoted(t *testing.T) {
	secret := "pa\"ss\tw0rd"
	store := NewStore(map[string]string{"/k": secret})
	tm, err := Parse("x.tmpl", `{{urlParse (printf "%s%%zz" (getv "/k"))}}`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = tm.Execute(store)
	if err == nil || strings.Contains(err.Error(), `pa\"ss\tw0rd`) || strings.Contains(err.Error(), secret) ||
		!strings.Contains(err.Error(), "[value of /k redacted, 10 bytes]") {
		t.Errorf("got %v, want the value redacted", err)
	}
}

// TestRedactKeepsContext checks that a value equal to text of the
// template is not removed from the template context of the message, and
// that the error still wraps the function's error.
func TestRedactKeepsContext(t *testing.T) {
	store := NewStore(map[string]string{"/k": `"%s"`})
	tm, err := Parse("x.tmpl", `{{range $x := getv "/k" | printf "%s"}}{{end}}`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = tm.Execute(store)
	want := `template: x.tmpl:1:33: executing "x.tmpl" at <"%s">: range can't iterate over [value of /k redacted, 4 bytes]`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	tm, err = Parse("x.tmpl", `{{getv "/nope"}}`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = tm.Execute(store)
	var ne *NotExistError
	if !errors.Is(err, ErrNotExist) || !errors.As(err, &ne) || ne.Key != "/nope" {
		t.Errorf("got %v, want a *NotExistError for /nope", err)
	}
}

func TestWithPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{`template: web.tmpl:4: function "nope" not defined`, `templates/web.tmpl:4: function "nope" not defined`},
		{`template: web.tmpl:4:3: executing "web.tmpl" at <getv "/a">: error calling getv: key does not exist: /a`, `templates/web.tmpl:4:3: executing "web.tmpl" at <getv "/a">: error calling getv: key does not exist: /a`},
		{`template: web.tmpl: bad function in Options.Funcs: x`, `templates/web.tmpl: bad function in Options.Funcs: x`},
		{`something else`, `templates/web.tmpl: something else`},
	}
	for _, tc := range tests {
		in := errors.New(tc.in)
		got := WithPath(in, "web.tmpl", "templates/web.tmpl")
		if got.Error() != tc.want || !errors.Is(got, in) {
			t.Errorf("WithPath(%q) = %q, want %q wrapping the original", tc.in, got, tc.want)
		}
	}
}
