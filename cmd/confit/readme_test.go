package main

import (
	"flag"
	"io"
	"os"
	"regexp"
	"testing"
)

// TestREADMEMentionsEveryFlag fails when a flag of `confit -help` is not
// in the README: a newcomer reads the README, not the source. A flag kept
// only for confd compatibility is mentioned in the README's list of them.
func TestREADMEMentionsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	fs := newFlagSet(&options{}, io.Discard)
	fs.VisitAll(func(f *flag.Flag) {
		re := regexp.MustCompile(`(^|[^\w-])-` + regexp.QuoteMeta(f.Name) + `([^\w-]|$)`)
		if !re.Match(readme) {
			t.Errorf("README.md does not mention -%s (%s)", f.Name, f.Usage)
		}
	})
}
