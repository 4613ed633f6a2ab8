package file

import (
	"maps"
	"strings"
	"testing"

	"github.com/confit-dev/confit/backends"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		file    string // decides the format
		data    string
		want    map[string]string
		wantErr string // substring of the error; "" means success
	}{
		{
			name: "yaml nested maps",
			file: "a.yaml",
			data: "app:\n  db:\n    url: postgres://x\n    user: admin\n",
			want: map[string]string{"/app/db/url": "postgres://x", "/app/db/user": "admin"},
		},
		{
			name: "yaml arrays by index, nested",
			file: "a.yml",
			data: "hosts: [a, b]\nservers:\n  - name: web\n    ports: [80, 443]\n  - name: db\n",
			want: map[string]string{
				"/hosts/0": "a", "/hosts/1": "b",
				"/servers/0/name": "web", "/servers/0/ports/0": "80", "/servers/0/ports/1": "443",
				"/servers/1/name": "db",
			},
		},
		{
			name: "yaml scalars as confd renders them, nulls dropped",
			file: "a.yaml",
			data: "t: true\nf: False\ni: 42\nneg: -7\nhex: 0x1F\nf1: 1.0\nf2: 1.5\nf3: 1e3\nf4: 0.000001\nbig: 18446744073709551615\nhuge: 123456789012345678901234567890\nhugeneg: -123_456789012345678901234567890\ninf: .inf\nnull1: null\nnull2: ~\nnull3:\ns: '42'\nts: 2024-01-02T03:04:05Z\ndate: 2024-01-02\n",
			want: map[string]string{
				"/t": "true", "/f": "false", "/i": "42", "/neg": "-7", "/hex": "31",
				"/f1": "1", "/f2": "1.5", "/f3": "1000", "/f4": "0.000001",
				"/big": "18446744073709551615", "/huge": "123456789012345678901234567890", "/hugeneg": "-123456789012345678901234567890",
				"/inf": "+Inf", "/s": "42",
				"/ts": "2024-01-02T03:04:05Z", "/date": "2024-01-02",
			},
		},
		{
			name: "yaml 1.1 booleans: keys stay strings, values are booleans",
			file: "a.yaml",
			data: "y: n\non: off\nyes: no\nNO: Y\nOn: ON\nq: 'yes'\nt: !!str off\nl: [y, N, Off]\n",
			want: map[string]string{"/y": "false", "/on": "false", "/yes": "false", "/NO": "true", "/On": "true",
				"/q": "yes", "/t": "off", "/l/0": "true", "/l/1": "false", "/l/2": "false"},
		},
		{
			name: "yaml 1.1 numbers",
			file: "a.yaml",
			data: "oct: 0777\nhex: 0x1F\nbin: 0b101\no: 0o17\nexp: 1e21\nsep: 1_000\nneg: -0x10\nnot: 08\nq: \"0777\"\nbad: 0x1G\ndot: .5\nnan: .NaN\nninf: -.Inf\nfloatbig: 1e400\n",
			want: map[string]string{"/oct": "511", "/hex": "31", "/bin": "5", "/o": "15", "/exp": "1000000000000000000000",
				"/sep": "1000", "/neg": "-16", "/not": "8", "/q": "0777", "/bad": "0x1G", "/dot": "0.5", "/nan": "NaN",
				"/ninf": "-Inf", "/floatbig": "1e400"},
		},
		{
			name: "yaml nulls drop the key, in mappings and lists",
			file: "a.yaml",
			data: "a: null\nb: ~\nc:\nd: NULL\ne: [x, ~, null, z]\nf: \"\"\ng: 'null'\n",
			want: map[string]string{"/e/0": "x", "/e/3": "z", "/f": "", "/g": "null"},
		},
		{
			name: "yaml non-string keys",
			file: "a.yaml",
			data: "ports:\n  8080: http\n  true: t\n  1.5: f\n",
			want: map[string]string{"/ports/8080": "http", "/ports/true": "t", "/ports/1.5": "f"},
		},
		{
			name: "unicode keys and values",
			file: "a.yaml",
			data: "café:\n  名前: 値 ✓\n",
			want: map[string]string{"/café/名前": "値 ✓"},
		},
		{
			name: "keys are cleaned",
			file: "a.yaml",
			data: "a/b: 1\n/c//d/: 2\n",
			want: map[string]string{"/a/b": "1", "/c/d": "2"},
		},
		{
			name: "empty mappings and lists give no key",
			file: "a.yaml",
			data: "a: {}\nb: []\nc: 1\n",
			want: map[string]string{"/c": "1"},
		},
		{
			name: "yaml anchors and merge keys",
			file: "a.yaml",
			data: "base: &b {host: h, port: 1}\nprod:\n  <<: *b\n  port: 2\n",
			want: map[string]string{"/base/host": "h", "/base/port": "1", "/prod/host": "h", "/prod/port": "2"},
		},
		{
			name: "yaml multi-document, later wins",
			file: "a.yaml",
			data: "a: 1\nb: 1\n---\nb: 2\n",
			want: map[string]string{"/a": "1", "/b": "2"},
		},
		{
			name: "top-level list",
			file: "a.yaml",
			data: "- x\n- y: z\n",
			want: map[string]string{"/0": "x", "/1/y": "z"},
		},
		{
			name: "empty yaml",
			file: "a.yaml",
			data: "",
			want: map[string]string{},
		},
		{
			name: "no extension is yaml",
			file: "config",
			data: "a: b\n",
			want: map[string]string{"/a": "b"},
		},
		{
			name: "uppercase extension",
			file: "A.JSON",
			data: `{"a": 1}`,
			want: map[string]string{"/a": "1"},
		},
		{
			name: "json",
			file: "a.json",
			data: `{"app": {"port": 8080, "ratio": 0.5, "one": 1.0, "exp": 1e3, "on": true, "nil": null,
				"big": 123456789012345678901234567890, "neg0": -0, "list": ["a", {"b": "c"}], "s": "ü"}}`,
			want: map[string]string{
				"/app/port": "8080", "/app/ratio": "0.5", "/app/one": "1", "/app/exp": "1000", "/app/on": "true",
				"/app/big": "123456789012345678901234567890", "/app/neg0": "0",
				"/app/list/0": "a", "/app/list/1/b": "c", "/app/s": "ü",
			},
		},
		{
			name: "toml",
			file: "a.toml",
			data: "title = \"x\"\n[db]\nport = 5432\nratio = 1.25\non = true\nwhen = 2024-01-02T03:04:05Z\nday = 2024-01-02\n[[srv]]\nname = \"a\"\n[[srv]]\nname = \"b\"\n",
			want: map[string]string{
				"/title": "x", "/db/port": "5432", "/db/ratio": "1.25", "/db/on": "true",
				"/db/when": "2024-01-02T03:04:05Z", "/db/day": "2024-01-02",
				"/srv/0/name": "a", "/srv/1/name": "b",
			},
		},
		{name: "yaml syntax error has line", file: "a.yaml", data: "a: 1\nb: [\n", wantErr: "line"},
		{name: "yaml duplicate key", file: "a.yaml", data: "a: 1\na: 2\n", wantErr: "line 2"},
		{name: "yaml scalar top level", file: "a.yaml", data: "hello\n", wantErr: "top-level"},
		{name: "json syntax error has line", file: "a.json", data: "{\n  \"a\": 1,\n  \"b\" 2\n}", wantErr: "line 3:"},
		{name: "json truncated", file: "a.json", data: "{\"a\": ", wantErr: "line 1:"},
		{name: "json trailing data", file: "a.json", data: "{} {}", wantErr: "unexpected data"},
		{name: "toml error has line", file: "a.toml", data: "a = 1\nb = \n", wantErr: "line 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parse(tc.file, []byte(tc.data))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parse error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("parse =\n%v\nwant\n%v", got, tc.want)
			}
		})
	}
}

// FuzzFlatten feeds arbitrary bytes to every parser: parsing may fail, but
// must not panic, and every key it yields must be clean and absolute, or
// have a "." or ".." element (read skips those).
func FuzzFlatten(f *testing.F) {
	for _, seed := range []string{
		"a: {b: [1, 2.5, true, null, x]}\n",
		"y: on\n8080: http\n? [a]\n: b\n",
		"base: &b {x: 1}\nc: {<<: *b}\n",
		`{"a": {"b": [1, 1e400, 123456789012345678901234567890]}, "..": {"": 1}}`,
		"[a]\nb = 1\n[[c]]\nd = 2021-01-01\n",
		"- - - x\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, name := range []string{"f.yaml", "f.json", "f.toml"} {
			kvs, err := parse(name, data)
			if err != nil {
				continue
			}
			for k := range kvs {
				if backends.CleanKey(k) != k && !backends.HasDotSegment(k) {
					t.Fatalf("%s: key %q is not clean", name, k)
				}
			}
		}
	})
}
