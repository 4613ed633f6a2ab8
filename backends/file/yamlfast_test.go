package file

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// fastSeeds are documents in fastYAML's subset, and some just outside it.
var fastSeeds = []string{
	"",
	"# only a comment\n",
	"a: 1\nb: two\n",
	"upstreams:\n  srv1:\n    addr: 10.0.0.1:8080\n    weight: 5\n  srv2:\n    addr: 10.0.0.2:8080\n",
	"list:\n- a\n- b\nnext: 1\n",
	"list:\n  - a\n  -\n  - c # comment\n",
	"- name: x\n  port: 80\n- name: y\n  tags:\n  - t1\n  - t2\n",
	"- a\n- b\n",
	"a:\nb:\n",
	"a: 'it''s'\nb: \"q\" # c\nc: '' \n",
	"a: x #c\nb: x#c\nc: http://h:80/p\n",
	"n: null\nt: True\nf: FALSE\ntilde: ~\ne: \n",
	"i: 007\nj: -0\nk: +5\nl: 0x1F\nm: 1_000\nn: 1.50\no: .5\np: -.inf\nq: 2024-01-02\nr: 123456789012345678901234567890\n",
	"ip: 10.0.0.1\nver: 1.2.3\nneg: -5\nbig: 999999999999999999\nbigger: 9999999999999999999\n",
	"y: y\non: on\nno: no\n",
	"a:\n  b:\n    c: 1\n  d: 2\ne: 3\n",
	"a: 1\n  b: 2\n",
	"a: x\n  y\n",
	"a:\n  hello\n",
	"a: 1\na: 2\n",
	"a:\n  b: 1\na:\n  c: 2\n",
	"a: b: c\n",
	"a: [1, 2]\n",
	"a: &x 1\nb: *x\n",
	"a: |\n  text\n",
	"---\na: 1\n",
	"a/b: 1\n",
	"8080: x\n",
	"a:\tb\n",
	"a: 1\r\n",
	"a: 'open\n",
	"  a: 1\n  b: 2\n",
	"  a: 1\nb: 2\n",
	"- - a\n",
	"-x: 1\n",
	"a: -\n",
	"a: - b\n",
	"a: <<\n",
	"a: ?x\nb: :y\nc: -z\n",
	"k: \"é\"\nl: ünï\n",
	"a:\n- x\n  y: 1\n",
	"-\n  a: 1\n- b\n",
	"a:\n  - x\n  b: 1\n",
}

func FuzzFastYAML(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	for _, s := range yamlDiffSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFastAgrees(t, data)
	})
}

// checkFastAgrees fails when fastYAML takes data and gives other keys than
// yaml.v3 and flattenYAML, or takes a document yaml.v3 rejects.
func checkFastAgrees(t *testing.T, data []byte) {
	t.Helper()
	got, order, ok := fastYAML(data)
	if !ok {
		return
	}
	if len(order) != len(got) || !slices.Equal(slices.Sorted(slices.Values(order)), slices.Sorted(maps.Keys(got))) {
		t.Fatalf("%q: fastYAML order %q does not list its keys %v", data, order, got)
	}
	want := map[string]string{}
	if err := parseYAML(data, want); err != nil {
		t.Fatalf("%q: yaml.v3 fails (%v) but fastYAML gives %v", data, err, got)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("%q:\n fastYAML %v\n yaml.v3  %v", data, got, want)
	}
}

func TestFastYAMLAgrees(t *testing.T) {
	for _, s := range append(fastSeeds, yamlDiffSeeds...) {
		checkFastAgrees(t, []byte(s))
	}
}

// TestFastYAMLTakes pins which documents take the fast path, so that a
// change cannot quietly send common values files back to yaml.v3.
func TestFastYAMLTakes(t *testing.T) {
	tests := []struct {
		doc  string
		fast bool
	}{
		{"upstreams:\n  srv1:\n    addr: 10.0.0.1:8080\n    weight: 5\n", true},
		{"- name: x\n  port: 80\n- name: y\n", true},
		{"list:\n- a\n- b\n", true},
		{"a: 'q' # c\nb: \"d\"\nc:\n", true},
		{"n: null\nv: 1.2.3\nd: 2024-01-02\n", true},
		{"", true},
		{"a: [1, 2]\n", false},         // flow collection
		{"a: &x 1\nb: *x\n", false},    // anchor and alias
		{"a: |\n  text\n", false},      // block scalar
		{"a: x\n  y\n", false},         // multi-line plain scalar
		{"---\na: 1\n", false},         // document marker
		{"a/b: 1\n", false},            // key with a slash
		{"8080: x\n", false},           // key that is a number
		{"a: 1\na: 2\n", false},        // duplicate key: yaml.v3 says so
		{"a: \"x\\ty\"\n", false},      // escape
		{"a:\tb\n", false},             // tab
		{"a: b: c\n", false},           // error: yaml.v3 says so
		{"a: 1\n  b: 2\n", false},      // error: yaml.v3 says so
		{"just a scalar\n", false},     // not a mapping or list
		{"a: 1\r\nb: 2\r\n", false},    // CRLF
		{"a: 'open\n", false},          // quote not closed on the line
		{"\ufeffa: 1\n", false},        // byte order mark
		{"a: <<\n", false},             // merge key as a value
		{"- - a\n", false},             // compact nested sequence
		{"a:\n  - x\n  b: 1\n", false}, // error: yaml.v3 says so
		{strings.Repeat("k", 1024) + ": 1\n", true},
		{strings.Repeat("k", 1025) + ": 1\n", false},        // key too long for yaml.v3
		{"a" + strings.Repeat(" ", 1024) + ": 1\n", false},  // colon too far
		{"- " + strings.Repeat("k", 1025) + ": 1\n", false}, // same, in a sequence item
	}
	for _, tt := range tests {
		if _, _, ok := fastYAML([]byte(tt.doc)); ok != tt.fast {
			t.Errorf("fastYAML(%q) ok = %v, want %v", tt.doc, ok, tt.fast)
		}
		checkFastAgrees(t, []byte(tt.doc))
	}
}

// TestFastYAMLLarge checks a large generated document of every shape the
// fast path takes against yaml.v3.
func TestFastYAMLLarge(t *testing.T) {
	var b strings.Builder
	b.WriteString("# generated\nupstreams:\n")
	for i := range 2000 {
		fmt.Fprintf(&b, "  srv%04d:\n    addr: 10.%d.%d.1:8080 # main\n    weight: %d\n    tags:\n    - 'web'\n    - \"z%d\"\n    on: %v\n", i, i/256, i%256, i%100, i, i%2 == 0)
	}
	b.WriteString("list:\n- name: a\n  v: 1.0\n-\n- x\n")
	data := []byte(b.String())
	got, _, ok := fastYAML(data)
	if !ok {
		t.Fatal("fastYAML declined the generated document")
	}
	if len(got) != 2000*5+4 {
		t.Errorf("got %d keys, want %d", len(got), 2000*5+4)
	}
	checkFastAgrees(t, data)
}

// trickyScalars are values at the edges of the YAML 1.2 resolver and of
// the fast path's scalar rules.
var trickyScalars = []string{
	"x", "y", "on", "null", "Null", "NULL", "nULL", "~", "~x", "true", "True", "tRUE", "false",
	"0", "-0", "+0", "00", "007", "08", "1_000", "0x1F", "0X1f", "0o17", "0b101", "-0b1", "0B1",
	"1.5", "1.", ".5", "-.5", "+.5", "1e3", "1E-3", "-1.5e+3", ".inf", "-.inf", "+.INF", ".NaN", ".nan_",
	"2024-01-02", "2024-1-2", "2024-01-02T03:04:05Z", "2024-01-02 03:04:05", "2024-13-45",
	"10.0.0.1", "10.0.0.1:8080", "1.2.3", "1:2", "12:30", "1-2", "1e", "0x", "0xg", "-", "--",
	"123456789012345678", "1234567890123456789", "9223372036854775808", "18446744073709551616",
	"-9223372036854775809", "99999999999999999999999", "+1", "-x", "?x", ":x", "a#b", "a #b",
	"'q'", "'it''s'", "''", "\"d\"", "\"\"", "\"a'b\"", "'a\"b'", "é", "<x>", "%x", "@x", "`x`",
	"a: b", "a:", "http://h:1/p?q=1&r", "[x]", "{x}", "*x", "&x", "!x", "|", ">", "x,y", "=",
}

// TestFastYAMLGenerated checks fastYAML against yaml.v3 on documents built
// from random nestings of mappings, sequences and tricky scalars.
func TestFastYAMLGenerated(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := []string{"a", "b", "on", "y", "k_1", "K.v", "x-y", "null", "a", "8080"}
	var gen func(b *strings.Builder, indent, depth int, seq bool)
	gen = func(b *strings.Builder, indent, depth int, seq bool) {
		pad := strings.Repeat(" ", indent)
		for range 1 + rng.IntN(3) {
			lead := pad
			if seq {
				lead = pad + "- "
			} else {
				lead = pad + keys[rng.IntN(len(keys))] + ":"
			}
			switch r := rng.IntN(10); {
			case depth < 3 && r < 3:
				b.WriteString(lead + "\n")
				gen(b, indent+2, depth+1, rng.IntN(2) == 0)
			case depth < 3 && r == 3 && !seq:
				b.WriteString(lead + "\n") // sequence at the key's column
				gen(b, indent, depth+1, true)
			case r == 4:
				b.WriteString(lead + " # comment\n")
			default:
				b.WriteString(lead + " " + trickyScalars[rng.IntN(len(trickyScalars))] + "\n")
			}
		}
	}
	fast := 0
	for range 20000 {
		var b strings.Builder
		gen(&b, 0, 0, rng.IntN(4) == 0)
		data := []byte(b.String())
		if _, _, ok := fastYAML(data); ok {
			fast++
		}
		checkFastAgrees(t, data)
		if t.Failed() {
			return
		}
	}
	t.Logf("%d of 20000 generated documents took the fast path", fast)
	if fast < 2000 {
		t.Errorf("only %d of 20000 generated documents took the fast path", fast)
	}
}

// TestFastYAMLLargeMappingDuplicate checks duplicate keys in a mapping
// large enough to be checked through a set.
func TestFastYAMLLargeMappingDuplicate(t *testing.T) {
	var b strings.Builder
	b.WriteString("m:\n")
	for i := range 40 {
		fmt.Fprintf(&b, "  k%d: %d\n", i, i)
	}
	if _, _, ok := fastYAML([]byte(b.String())); !ok {
		t.Fatal("fastYAML declined 40 distinct keys")
	}
	checkFastAgrees(t, []byte(b.String()))
	for _, at := range []int{3, 30} {
		doc := b.String() + fmt.Sprintf("  k%d: again\n", at)
		if _, _, ok := fastYAML([]byte(doc)); ok {
			t.Errorf("fastYAML took a duplicate of key %d of 40", at)
		}
	}
}

func TestFastYAMLDepth(t *testing.T) {
	nested := func(depth int) []byte {
		var b strings.Builder
		for i := range depth {
			b.WriteString(strings.Repeat(" ", i) + "k:\n")
		}
		b.WriteString(strings.Repeat(" ", depth) + "v: 1\n")
		return []byte(b.String())
	}
	if _, _, ok := fastYAML(nested(50)); !ok {
		t.Error("fastYAML declined 50 levels")
	}
	checkFastAgrees(t, nested(50))
	if _, _, ok := fastYAML(nested(maxFastDepth + 1)); ok {
		t.Errorf("fastYAML took %d levels", maxFastDepth+1)
	}
}
