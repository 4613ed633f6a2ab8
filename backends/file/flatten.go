package file

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/confit-dev/confit/backends"
	"go.yaml.in/yaml/v3"
)

// format is the syntax a file is parsed with, chosen by its extension.
type format int

const (
	formatYAML format = iota
	formatJSON
	formatTOML
)

// formatOf picks the parser for name: ".json" is JSON, ".toml" is TOML,
// everything else (".yaml", ".yml", no extension, anything unknown) is YAML,
// as confd reads every file as YAML. The comparison ignores case.
func formatOf(name string) format {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".json":
		return formatJSON
	case ".toml":
		return formatTOML
	default:
		return formatYAML
	}
}

// parse decodes data in the format given by name's extension and flattens it
// into absolute keys. Errors carry the parser's line (and column when
// known) but not the file name; the caller adds it.
func parse(name string, data []byte) (kvs map[string]string, err error) {
	kvs = map[string]string{}
	switch formatOf(name) {
	case formatJSON:
		v, err := decodeJSON(data)
		if err != nil {
			return nil, err
		}
		if err := flattenTop(v, kvs); err != nil {
			return nil, err
		}
	case formatTOML:
		var v map[string]any
		if _, err := toml.Decode(string(data), &v); err != nil {
			return nil, err
		}
		if err := flattenTop(v, kvs); err != nil {
			return nil, err
		}
	default:
		if err := parseYAML(data, kvs); err != nil {
			return nil, err
		}
	}
	return kvs, nil
}

// parseYAML flattens every document of a YAML stream into kvs through
// yaml.v3's node trees, with values read as YAML 1.1 reads them (see
// resolveYAML11); later documents win on the same key, as later files do.
func parseYAML(data []byte, kvs map[string]string) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resolveYAML11(&doc, false)
		if err := flattenYAML(&doc, kvs, yamlBudget(len(data))); err != nil {
			return err
		}
	}
}

// maxYAMLBudget caps the node visits of one YAML document, however large
// the file: a visit costs a key string, so the cap bounds memory and time.
const maxYAMLBudget = 5_000_000

// yamlBudget is the node visits allowed for a document of a size-byte
// file: aliases may expand it to at most 100 nodes per byte, and never more
// than maxYAMLBudget.
func yamlBudget(size int) int {
	return min(10000+100*size, maxYAMLBudget)
}

// resolveYAML11 retags the scalars of a YAML tree so that decoding it
// gives what confd's YAML 1.1 reader (yaml.v2) gives, as strings:
//
//   - a plain value scalar is resolved by resolve11: yes/no/on/off/y/n in
//     their YAML 1.1 spellings are "true"/"false", 0777 is "511", 0x1F is
//     "31", 1e21 is "1000000000000000000000", and null, ~ or nothing is
//     null, which flatten leaves out (confd drops those keys);
//   - mapping keys stay as yaml.v3 reads them (a "y:" key is "y"; yaml.v2
//     makes it a boolean and confd crashes);
//   - timestamps keep their source text, as yaml.v2 gives them to confd;
//   - integers too large for 64 bits keep their digits (yaml.v2 makes them
//     floats or confd drops them: a documented difference).
//
// Quoted, block and explicitly tagged scalars are left to yaml.v3. key
// tells whether n is a mapping key. Aliases are not followed: their
// targets are in the tree already.
func resolveYAML11(n *yaml.Node, key bool) {
	switch n.Kind {
	case yaml.ScalarNode:
		switch {
		case !key && n.Style == 0:
			n.Tag, n.Value = resolve11(n.Value)
		case n.ShortTag() == "!!timestamp":
			n.Tag = "!!str"
		case n.ShortTag() == "!!float" && n.Style == 0 && isBigInt(n.Value):
			n.Tag, n.Value = "!!str", strings.ReplaceAll(n.Value, "_", "")
		}
	case yaml.MappingNode:
		for i, c := range n.Content {
			resolveYAML11(c, i%2 == 0)
		}
	default:
		for _, c := range n.Content {
			resolveYAML11(c, false)
		}
	}
}

// yaml11Float is yaml.v2's pattern for a plain scalar read as a float.
var yaml11Float = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)

// resolve11 reads the plain scalar s with yaml.v2's rules, rendered as
// confd's file backend renders the result. It returns the tag "!!null" for
// a null and "!!str" with the rendered value for everything else.
func resolve11(s string) (tag, value string) {
	switch s {
	case "", "~", "null", "Null", "NULL":
		return "!!null", ""
	case "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON":
		return "!!str", "true"
	case "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF":
		return "!!str", "false"
	case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF":
		return "!!str", "+Inf"
	case "-.inf", "-.Inf", "-.INF":
		return "!!str", "-Inf"
	case ".nan", ".NaN", ".NAN":
		return "!!str", "NaN"
	}
	if !strings.ContainsRune("+-.0123456789", rune(s[0])) {
		return "!!str", s
	}
	plain := strings.ReplaceAll(s, "_", "")
	if i, err := strconv.ParseInt(plain, 0, 64); err == nil {
		return "!!str", strconv.FormatInt(i, 10)
	}
	if u, err := strconv.ParseUint(plain, 0, 64); err == nil {
		return "!!str", strconv.FormatUint(u, 10)
	}
	if isBigInt(s) {
		return "!!str", plain
	}
	if yaml11Float.MatchString(plain) {
		if f, err := strconv.ParseFloat(plain, 64); err == nil {
			return "!!str", strconv.FormatFloat(f, 'f', -1, 64)
		}
	}
	return "!!str", s
}

// isBigInt reports whether s is a plain decimal integer, optionally signed
// and with YAML's "_" digit separators, that does not fit in 64 bits.
func isBigInt(s string) bool {
	digits := strings.ReplaceAll(strings.TrimLeft(s, "+-"), "_", "")
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return false
	}
	if _, err := strconv.ParseInt(s, 10, 64); err == nil {
		return false
	}
	_, err := strconv.ParseUint(strings.TrimPrefix(s, "+"), 10, 64)
	return err != nil
}

// decodeJSON decodes exactly one JSON value, keeping numbers as json.Number
// so that integers of any size stay exact. Syntax errors name the line and
// column.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // empty file: no keys, like an empty YAML file
		}
		return nil, jsonPosError(data, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		off := dec.InputOffset()
		line, col := lineCol(data, off)
		return nil, fmt.Errorf("line %d:%d: unexpected data after the top-level value", line, col)
	}
	return v, nil
}

// jsonPosError prefixes err with the line and column the decoder stopped at,
// when the error carries an offset.
func jsonPosError(data []byte, err error) error {
	var off int64 = -1
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		off = syn.Offset
	case errors.As(err, &typ):
		off = typ.Offset
	case errors.Is(err, io.ErrUnexpectedEOF):
		off = int64(len(data))
	}
	if off < 0 {
		return err
	}
	line, col := lineCol(data, off)
	return fmt.Errorf("line %d:%d: %w", line, col, err)
}

// lineCol converts a byte offset into a 1-based line and column.
func lineCol(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

// flattenTop flattens one decoded document into kvs. The document must be a
// mapping, a list or empty; a bare scalar has no key to live under.
func flattenTop(v any, kvs map[string]string) error {
	switch v.(type) {
	case nil:
		return nil
	case map[string]any, map[any]any, []any, []map[string]any:
		flatten(v, "/", kvs)
		return nil
	default:
		return fmt.Errorf("top-level value is a %T; want a mapping or a list", v)
	}
}

// flatten walks v, writing one entry per scalar: mapping keys become path
// elements (/a/b) and list items their index (/list/0). Keys are cleaned as
// backends.CleanKey does, so "a/b" as a single mapping key becomes two path
// elements, as confd's path.Join does; a key with a "." or ".." element is
// joined verbatim instead (see joinName), for read to skip. Mapping keys
// are visited in sorted order so that two spellings of the same path
// ("a/b" and a: {b:}) collide deterministically: the later one in sort
// order wins. Empty mappings and lists, and nulls, produce no key.
func flatten(v any, key string, kvs map[string]string) {
	switch n := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(n)) {
			flatten(n[k], joinName(key, k), kvs)
		}
	case map[any]any:
		// YAML mappings with non-string keys (8080:, true:, 1.5:) decode
		// here; the key is rendered like a value. Keys that render alike
		// (1 and "1") are visited in a fixed order so the result does not
		// depend on Go's map iteration order.
		type entry struct {
			name, order string
			v           any
		}
		entries := make([]entry, 0, len(n))
		for k, val := range n {
			entries = append(entries, entry{name: scalar(k), order: fmt.Sprintf("%T", k), v: val})
		}
		slices.SortFunc(entries, func(a, b entry) int {
			if c := strings.Compare(a.name, b.name); c != 0 {
				return c
			}
			return strings.Compare(a.order, b.order)
		})
		for _, e := range entries {
			flatten(e.v, joinName(key, e.name), kvs)
		}
	case []any:
		for i, item := range n {
			flatten(item, path.Join(key, strconv.Itoa(i)), kvs)
		}
	case []map[string]any: // TOML arrays of tables
		for i, item := range n {
			flatten(item, path.Join(key, strconv.Itoa(i)), kvs)
		}
	case nil:
		// A null (YAML ~ or nothing, JSON null) has no value: confd
		// leaves the key out.
	default:
		if !backends.HasDotSegment(key) {
			key = backends.CleanKey(key)
		}
		kvs[key] = scalar(n)
	}
}

// joinName is path.Join(key, name), except that a name with a "." or ".."
// element is appended as it is: cleaned, "../../etc/passwd" would climb
// out of its parent. read skips the keys it makes (backends.HasDotSegment).
func joinName(key, name string) string {
	if backends.HasDotSegment(name) || backends.HasDotSegment(key) {
		return strings.TrimSuffix(key, "/") + "/" + name
	}
	return path.Join(key, name)
}

// scalar renders a decoded scalar the way confd's file backend does:
// strings as they are, booleans as "true"/"false", integers in decimal,
// floats with strconv.FormatFloat(f, 'f', -1, 64) (so 1.0 is "1", 1e3 is
// "1000", 0.000001 is "0.000001", never an exponent), and null as "".
// Integers keep their exact digits however large (see keepText). YAML
// timestamps keep their source text; TOML date-times are RFC 3339.
func scalar(v any) string {
	switch s := v.(type) {
	case nil:
		return ""
	case string:
		return s
	case bool:
		return strconv.FormatBool(s)
	case int:
		return strconv.Itoa(s)
	case int64:
		return strconv.FormatInt(s, 10)
	case uint64:
		return strconv.FormatUint(s, 10)
	case float64:
		return strconv.FormatFloat(s, 'f', -1, 64)
	case json.Number:
		return jsonNumber(s)
	case time.Time:
		// TOML local date-times, dates and times carry marker locations.
		switch s.Location().String() {
		case "datetime-local":
			return s.Format("2006-01-02T15:04:05.999999999")
		case "date-local":
			return s.Format("2006-01-02")
		case "time-local":
			return s.Format("15:04:05.999999999")
		}
		return s.Format(time.RFC3339Nano)
	case []byte:
		return string(s)
	case fmt.Stringer: // toml.LocalDate, LocalTime, LocalDateTime
		return s.String()
	default:
		return fmt.Sprint(s)
	}
}

// jsonNumber renders a JSON number like its YAML twin: integers keep their
// digits (exactly, beyond 64 bits too), other numbers go through float64.
func jsonNumber(n json.Number) string {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return strconv.FormatInt(i, 10) // "-0" -> "0"
		}
		return s
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return s // out of float64 range: keep the source text
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}
