package file

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// flattenYAML flattens one parsed YAML document straight from its node
// tree. It gives the same keys and values as decoding into `any` and calling
// flattenTop, but in linear time: yaml.v3's decoder checks mapping keys for
// duplicates pairwise, which made a 10,000-entry mapping take 170 ms.
// Duplicate keys are still an error, as they are for the decoder.
//
// Aliases are expanded, so a small document can stand for a huge tree (the
// "billion laughs" attack): the walk gives up after budget node visits.
func flattenYAML(doc *yaml.Node, kvs map[string]string, budget int) error {
	w := &yamlWalker{kvs: kvs, budget: budget}
	n := doc
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	n = resolveAlias(n)
	switch n.Kind {
	case yaml.MappingNode, yaml.SequenceNode:
		return w.flatten(n, "/")
	case yaml.ScalarNode:
		v, err := scalarValue(n)
		if err != nil {
			return err
		}
		if v == nil {
			return nil
		}
		return fmt.Errorf("top-level value is a %T; want a mapping or a list", v)
	}
	return nil
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// yamlEntry is one mapping entry: its key rendered as a path element, the
// Go type the decoder would give the key (to order keys that render alike),
// and its value node.
type yamlEntry struct {
	name, order string
	v           *yaml.Node
}

// errExcessiveAliasing is returned when alias expansion exceeds the budget.
var errExcessiveAliasing = errors.New("yaml: document contains excessive aliasing")

// yamlWalker flattens a node tree into kvs within a visit budget.
type yamlWalker struct {
	kvs    map[string]string
	budget int
}

func (w *yamlWalker) flatten(n *yaml.Node, key string) error {
	if w.budget--; w.budget < 0 {
		return errExcessiveAliasing
	}
	n = resolveAlias(n)
	switch n.Kind {
	case yaml.MappingNode:
		entries, collide, err := w.mappingEntries(n)
		if err != nil {
			return err
		}
		if collide {
			// Keys that render alike (1 and "1") are visited in a fixed
			// order, so the later one wins deterministically.
			slices.SortFunc(entries, func(a, b yamlEntry) int {
				if c := strings.Compare(a.name, b.name); c != 0 {
					return c
				}
				return strings.Compare(a.order, b.order)
			})
		}
		for _, e := range entries {
			if err := w.flatten(e.v, joinKey(key, e.name)); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			if err := w.flatten(item, joinKey(key, strconv.Itoa(i))); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		v, err := scalarValue(n)
		if err != nil {
			return err
		}
		w.kvs[key] = scalar(v)
	}
	return nil
}

// mappingEntries lists a mapping's entries with YAML merge keys ("<<")
// applied, with the decoder's rules: two key nodes with the same source
// text are an error; keys that decode to the same value (0x1 and 1) keep the
// later one; explicit keys win over merged ones, and earlier merge sources
// over later ones.
func (w *yamlWalker) mappingEntries(n *yaml.Node) (_ []yamlEntry, collide bool, _ error) {
	type id struct{ name, order string }
	seen := make(map[id]int, len(n.Content)/2) // decoded key -> index in entries
	names := make(map[string]struct{}, len(n.Content)/2)
	entries := make([]yamlEntry, 0, len(n.Content)/2)
	add := func(e yamlEntry, override bool) {
		k := id{e.name, e.order}
		if i, ok := seen[k]; ok {
			if override {
				entries[i] = e
			}
			return
		}
		if _, dup := names[e.name]; dup {
			collide = true
		}
		names[e.name] = struct{}{}
		seen[k] = len(entries)
		entries = append(entries, e)
	}
	type raw struct {
		kind  yaml.Kind
		value string
	}
	lines := map[raw]int{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		r := raw{k.Kind, k.Value}
		if first, dup := lines[r]; dup {
			return nil, false, fmt.Errorf("yaml: line %d: mapping key %q already defined at line %d", k.Line, k.Value, first)
		}
		lines[r] = k.Line
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		kv, err := scalarValue(resolveAlias(k))
		if err != nil {
			return nil, false, err
		}
		add(yamlEntry{name: scalar(kv), order: fmt.Sprintf("%T", kv), v: v}, true)
	}
	for _, m := range merges {
		m = resolveAlias(m)
		sources := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			sources = m.Content
		}
		for _, src := range sources {
			src = resolveAlias(src)
			if src.Kind != yaml.MappingNode {
				return nil, false, fmt.Errorf("yaml: line %d: map merge requires map or sequence of maps as the value", src.Line)
			}
			if w.budget -= len(src.Content); w.budget < 0 {
				return nil, false, errExcessiveAliasing
			}
			sub, _, err := w.mappingEntries(src)
			if err != nil {
				return nil, false, err
			}
			for _, e := range sub {
				add(e, false)
			}
		}
	}
	return entries, collide, nil
}

// joinKey is path.Join(key, name) for a clean key, without the cost of
// cleaning when name is a plain path element (the common case).
func joinKey(key, name string) string {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") ||
		strings.HasPrefix(name, "./") || strings.Contains(name, "/.") {
		return path.Join(key, name)
	}
	if key == "/" {
		return "/" + name
	}
	return key + "/" + name
}

// scalarValue decodes one scalar node as the decoder would: plain strings
// directly (the common case), anything else through yaml.v3 itself.
func scalarValue(n *yaml.Node) (any, error) {
	if n.Kind != yaml.ScalarNode {
		return nil, fmt.Errorf("yaml: line %d: a mapping key must be a scalar", n.Line)
	}
	if n.ShortTag() == "!!str" {
		return n.Value, nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}
