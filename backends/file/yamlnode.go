package file

import (
	"errors"
	"fmt"
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
// yaml.v3 node trees can hold cycles (an alias inside the node its anchor
// names, directly or through a merge): an alias whose target is already
// being expanded is an error, as it is for the decoder.
func flattenYAML(doc *yaml.Node, kvs map[string]string, budget int) error {
	w := &yamlWalker{kvs: kvs, budget: budget, expanding: map[*yaml.Node]bool{}, sortAll: hasDotDotKey(doc)}
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
// its value node, and the merge aliases it was reached through (outermost
// first): their targets are being expanded while v is.
type yamlEntry struct {
	name, order string
	v           *yaml.Node
	via         []*yaml.Node
}

// errExcessiveAliasing is returned when alias expansion exceeds the budget.
var errExcessiveAliasing = errors.New("yaml: document contains excessive aliasing")

// yamlWalker flattens a node tree into kvs within a visit budget.
type yamlWalker struct {
	kvs    map[string]string
	budget int
	// expanding holds the alias targets on the current path: meeting one
	// again means the tree is cyclic.
	expanding map[*yaml.Node]bool
	// sortAll visits every mapping's keys in sorted order, as flatten
	// does: a key with ".." can name a path outside its own mapping, so
	// any two mappings' keys may collide.
	sortAll bool
}

// hasDotDotKey reports whether a mapping key anywhere in the tree (not
// through aliases: their targets are in the tree too) contains "..".
func hasDotDotKey(n *yaml.Node) bool {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; k.Kind == yaml.ScalarNode && strings.Contains(k.Value, "..") {
				return true
			}
		}
	}
	for _, c := range n.Content {
		if c.Kind != yaml.AliasNode && hasDotDotKey(c) {
			return true
		}
	}
	return false
}

// enter resolves n when it is an alias and marks its target as being
// expanded; leave unmarks it. An alias to a target already being expanded
// is an error naming its anchor.
func (w *yamlWalker) enter(n *yaml.Node) (*yaml.Node, error) {
	if n.Kind != yaml.AliasNode {
		return n, nil
	}
	t := resolveAlias(n)
	if w.expanding[t] {
		return nil, fmt.Errorf("yaml: anchor %q contains itself", n.Value)
	}
	w.expanding[t] = true
	return t, nil
}

func (w *yamlWalker) leave(n *yaml.Node) {
	if n.Kind == yaml.AliasNode {
		delete(w.expanding, resolveAlias(n))
	}
}

// enterAll enters every alias of via in order; on error the ones entered
// are left again.
func (w *yamlWalker) enterAll(via []*yaml.Node) error {
	for i, a := range via {
		if _, err := w.enter(a); err != nil {
			w.leaveAll(via[:i])
			return err
		}
	}
	return nil
}

func (w *yamlWalker) leaveAll(via []*yaml.Node) {
	for _, a := range via {
		w.leave(a)
	}
}

func (w *yamlWalker) flatten(n *yaml.Node, key string) error {
	if w.budget--; w.budget < 0 {
		return errExcessiveAliasing
	}
	alias := n
	n, err := w.enter(alias)
	if err != nil {
		return err
	}
	defer w.leave(alias)
	switch n.Kind {
	case yaml.MappingNode:
		entries, collide, err := w.mappingEntries(n)
		if err != nil {
			return err
		}
		if collide || w.sortAll {
			// Keys that render alike (1 and "1"), or that name the same
			// path once cleaned ("a/b" and a: {b:}), are visited in sorted
			// order, as flatten visits them, so the later one wins
			// deterministically.
			slices.SortFunc(entries, func(a, b yamlEntry) int {
				if c := strings.Compare(a.name, b.name); c != 0 {
					return c
				}
				return strings.Compare(a.order, b.order)
			})
		}
		for _, e := range entries {
			if err := w.enterAll(e.via); err != nil {
				return err
			}
			err := w.flatten(e.v, joinKey(key, e.name))
			w.leaveAll(e.via)
			if err != nil {
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
		if v != nil { // a null has no value: confd leaves the key out
			w.kvs[key] = scalar(v)
		}
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
		if _, dup := names[e.name]; dup || needsClean(e.name) {
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
		if err := w.mergeInto(m, add); err != nil {
			return nil, false, err
		}
	}
	return entries, collide, nil
}

// mergeInto adds the entries of a merge value (a mapping or a sequence of
// mappings, possibly through aliases) with add. The aliases followed stay
// on the expanding path while their entries are listed, and are recorded
// in each entry's via so that flatten puts them back while it expands the
// entry's value: the decoder too expands a merged value inside its alias.
func (w *yamlWalker) mergeInto(m *yaml.Node, add func(yamlEntry, bool)) error {
	mt, err := w.enter(m)
	if err != nil {
		return err
	}
	defer w.leave(m)
	if mt.Kind != yaml.SequenceNode {
		return w.mergeSource(mt, aliases(m), add)
	}
	for _, src := range mt.Content {
		st, err := w.enter(src)
		if err != nil {
			return err
		}
		err = w.mergeSource(st, aliases(m, src), add)
		w.leave(src)
		if err != nil {
			return err
		}
	}
	return nil
}

// aliases returns the alias nodes among ns, in order.
func aliases(ns ...*yaml.Node) []*yaml.Node {
	var out []*yaml.Node
	for _, n := range ns {
		if n.Kind == yaml.AliasNode {
			out = append(out, n)
		}
	}
	return out
}

// mergeSource adds the entries of one resolved merge source, reached
// through the aliases via, with add.
func (w *yamlWalker) mergeSource(src *yaml.Node, via []*yaml.Node, add func(yamlEntry, bool)) error {
	if src.Kind != yaml.MappingNode {
		return fmt.Errorf("yaml: line %d: map merge requires map or sequence of maps as the value", src.Line)
	}
	if w.budget -= len(src.Content); w.budget < 0 {
		return errExcessiveAliasing
	}
	sub, _, err := w.mappingEntries(src)
	if err != nil {
		return err
	}
	for _, e := range sub {
		if len(via) > 0 {
			e.via = append(via[:len(via):len(via)], e.via...)
		}
		add(e, false)
	}
	return nil
}

// needsClean reports whether name is not a plain path element, so that
// joinKey cleans it and it may name the same path as another key.
func needsClean(name string) bool {
	return name == "" || name == "." || name == ".." || strings.Contains(name, "/")
}

// joinKey is path.Join(key, name) for a clean key, without the cost of
// cleaning when name is a plain path element (the common case).
func joinKey(key, name string) string {
	if needsClean(name) {
		return joinName(key, name)
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
