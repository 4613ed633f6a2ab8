package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// This file turns the flag package's errors into one line that names the
// flag and says what it wants. It works from the flags' types, never from
// a list of names, so a flag declared in newFlagSet gets it for free.

// setError is a flag value that did not parse. Its message names where the
// value came from, the value when it is safe to show, and what the flag
// wants:
//
//	-interval "abc": want a whole number
//	CONFIT_INTERVAL="abc": want a whole number (-interval)
//	confd.toml: key "interval": "abc": want a whole number
type setError struct {
	src   string // "-interval", "CONFIT_INTERVAL", `confd.toml: key "interval"`
	sep   string // between src and the value: " ", "=" or ": "
	flag  string // "-interval" when src does not say it already
	value string
	// show is set when value may appear in the message: the flag has a
	// type (number, duration, boolean) that never carries a secret.
	show bool
	want string // "want a whole number", or the Set error's own text
}

func (e *setError) Error() string {
	var b strings.Builder
	b.WriteString(e.src)
	if e.show {
		fmt.Fprintf(&b, "%s%q", e.sep, e.value)
	}
	b.WriteString(": ")
	b.WriteString(e.want)
	if e.flag != "" {
		b.WriteString(" (" + e.flag + ")")
	}
	return b.String()
}

// Where a value comes from, for badValue.
const (
	fromCLI    = iota // -name value
	fromEnv           // CONFIT_NAME=value
	fromConfig        // FILE: key "name": value
)

// badValue describes err, returned by f.Value.Set(value), as a setError
// naming src (the variable or config file key when from is not fromCLI).
func badValue(f *flag.Flag, from int, src, value string, err error) *setError {
	e := &setError{src: "-" + f.Name, sep: " ", value: value, show: true}
	switch from {
	case fromEnv:
		e.src, e.sep, e.flag = src, "=", "-"+f.Name
	case fromConfig:
		e.src, e.sep = src, ": "
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		e.show, e.want = false, err.Error()
		return e
	}
	outOfRange := strings.Contains(err.Error(), "out of range")
	switch g.Get().(type) {
	case time.Duration:
		e.want = durationHint(value)
	case int, int64, uint, uint64:
		e.want = "want a whole number"
		if outOfRange {
			e.want = "out of range"
		}
	case float64:
		e.want = "want a number"
	case bool:
		e.want = "want true or false"
	default:
		e.show, e.want = false, err.Error()
	}
	return e
}

// durationHint says how to write a duration, from the value that was given:
// "5" gets "durations take a unit: 5s".
func durationHint(value string) string {
	v := strings.TrimSpace(value)
	if _, err := strconv.ParseFloat(v, 64); err == nil {
		return "durations take a unit: " + v + "s"
	}
	return "want a duration such as 500ms, 30s or 1m30s"
}

// trackedValue wraps a flag's Value while the command line is parsed, to
// keep the typed error of the first value that fails to parse.
type trackedValue struct {
	flag.Value
	f      *flag.Flag
	failed **setError
}

func (t *trackedValue) Set(v string) error {
	if err := t.Value.Set(v); err != nil {
		e := badValue(t.f, fromCLI, "", v, err)
		*t.failed = e
		return e
	}
	return nil
}

// IsBoolFlag lets -watch stand alone when the wrapped flag is a boolean.
func (t *trackedValue) IsBoolFlag() bool {
	b, ok := t.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// parseCommandLine parses args into the flags of fs. It returns the names of
// the flags set, flag.ErrHelp for -help, -h or --help, and otherwise an error
// of one line naming the flag at fault. fs prints nothing: the caller
// prints usage and errors.
func parseCommandLine(fs *flag.FlagSet, args []string) (map[string]bool, error) {
	var failed *setError
	p := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	p.SetOutput(io.Discard)
	p.Usage = func() {}
	fs.VisitAll(func(f *flag.Flag) {
		p.Var(&trackedValue{Value: f.Value, f: f, failed: &failed}, f.Name, f.Usage)
	})
	err := p.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return nil, err
	case failed != nil:
		return nil, failed
	case err != nil:
		return nil, describeParseError(fs, err)
	case p.NArg() > 0:
		return nil, fmt.Errorf("unexpected argument %q (confit takes flags only)", p.Arg(0))
	}
	set := map[string]bool{}
	p.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set, nil
}

// describeParseError rewrites the flag package's errors that are not about
// a value: an unknown flag (with the nearest flag's name) and a flag
// missing its value.
func describeParseError(fs *flag.FlagSet, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		if near := nearest(name, flagNames(fs)); near != "" {
			return fmt.Errorf("unknown flag -%s (did you mean -%s?)", name, near)
		}
		return fmt.Errorf("unknown flag -%s", name)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Errorf("-%s needs a value (-%s VALUE or -%s=VALUE)", name, name, name)
	}
	return err
}

// flagNames lists fs's flags.
func flagNames(fs *flag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return names
}

// nearest returns the candidate closest to s in edit distance, when that
// is close enough to be a typo (at most 2 edits, fewer than half of s), or
// a candidate of which s is a prefix; "" otherwise.
func nearest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		d := editDistance(strings.ToLower(s), strings.ToLower(c))
		if d < bestD && d*2 < len(s) {
			best, bestD = c, d
		}
	}
	if best != "" {
		return best
	}
	for _, c := range candidates {
		if len(s) >= 3 && strings.HasPrefix(c, s) {
			return c
		}
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
