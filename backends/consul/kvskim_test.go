package consul

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// dirEntry is a KV entry as Consul's HTTP API encodes it, in its order.
type dirEntry struct {
	LockIndex   uint64
	Key         string
	Flags       uint64
	Value       []byte
	CreateIndex uint64
	ModifyIndex uint64
}

// kvModel is a Consul KV store in miniature: the raft index, the entries
// and the highest index of a delete (the tombstones).
type kvModel struct {
	idx, tomb uint64
	kvs       map[string]dirEntry
}

// listing is the answer to a recursive list of prefix and its
// X-Consul-Index.
func (m *kvModel) listing(prefix string, pretty bool) ([]byte, uint64) {
	var ents []dirEntry
	index := m.tomb
	for _, k := range slices.Sorted(maps.Keys(m.kvs)) {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			e := m.kvs[k]
			ents = append(ents, e)
			index = max(index, e.ModifyIndex)
		}
	}
	if ents == nil {
		ents = []dirEntry{}
	}
	var b []byte
	if pretty {
		b, _ = json.MarshalIndent(ents, "", "    ")
	} else {
		b, _ = json.Marshal(ents)
	}
	return b, index
}

// skimKeys are the keys the model writes: clean ones, and every kind the
// full scan treats specially (markers, unclean, dot segments, escapes,
// outside the root).
var skimKeys = []string{
	"app/a", "app/b", "app/c/d", "app/c/e", "app/k1", "app/k2", "app/k3", "app/k4",
	"app", "app/", "app//b", "app/./x", "appx/y", "app/q\"uote", "app/back\\slash", "app/é",
	"app/\"ModifyIndex\": 1", "app/x}{", "app/a/",
}

// skimHub is a hub's state as the run loop keeps it, without a Client.
type skimHub struct {
	h       hub
	noSkim  bool
	skimmed int // answers the skim decided
}

// step compares the answer with the state and installs it, as hub.run and
// publish do; it returns what changed, key → value or "<deleted>".
func (s *skimHub) step(t testing.TB, body []byte, idx uint64) map[string]string {
	t.Helper()
	h := &s.h
	d := h.newDiffer("/app", false)
	if s.noSkim {
		d.since = 0
	}
	tp := &tap{body: body, ok: true}
	var skimmedNow bool
	if d.since > 0 {
		ok, err := d.skim(body)
		if err != nil {
			t.Fatalf("skim: %v", err)
		}
		if ok {
			skimmedNow = true
			s.skimmed++
		} else {
			d.restart()
		}
	}
	if !skimmedNow {
		if err := scanKVList(tp.body, d.pair); err != nil {
			t.Fatalf("scan: %v\n%s", err, body)
		}
	}
	h.noteListing(d, true)
	got := installUpdates(h, d.done())
	h.stateIdx, h.stateRoot = idx, "/app"
	return got
}

func stateValues(h *hub) map[string]string {
	out := map[string]string{}
	for k, e := range h.state {
		out[k] = e.val
	}
	return out
}

// runSkimProgram plays a random sequence of writes, driven by seed, into
// the model and hands each answer to a hub that skims and to one that does
// not: every answer must change the same keys the same way. It returns how
// many answers the skim decided.
func runSkimProgram(t testing.TB, seed uint64, steps int, pretty, cleanOnly bool) int {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	m := &kvModel{idx: 10, kvs: map[string]dirEntry{}}
	a := &skimHub{h: hub{state: map[string]*entry{}}}
	b := &skimHub{h: hub{state: map[string]*entry{}}, noSkim: true}
	keys := skimKeys
	if cleanOnly {
		keys = skimKeys[:8]
	}
	for step := range steps {
		for range 1 + r.IntN(3) {
			m.idx += uint64(1 + r.IntN(3)) // other raft entries in between
			k := keys[r.IntN(len(keys))]
			switch op := r.IntN(40); {
			case op == 0:
				// A snapshot restored from a store further ahead, or a
				// token shown other keys: old entries the state never
				// held, at indexes at or below the state's, and the
				// index does not go backwards.
				m.kvs = map[string]dirEntry{}
				for range r.IntN(len(keys) + 1) {
					k := keys[r.IntN(len(keys))]
					mod := uint64(1 + r.IntN(int(m.idx)))
					m.kvs[k] = dirEntry{Key: k, Value: fmt.Appendf(nil, "r%d", r.IntN(4)), CreateIndex: mod, ModifyIndex: mod}
				}
				m.tomb = m.idx
			case op < 28:
				e, had := m.kvs[k]
				if !had {
					e.CreateIndex = m.idx
				}
				e.Key, e.Value, e.ModifyIndex = k, fmt.Appendf(nil, "v%d", r.IntN(4)), m.idx
				e.Flags = uint64(r.IntN(2))
				m.kvs[k] = e
			default:
				if _, had := m.kvs[k]; had {
					delete(m.kvs, k)
					m.tomb = m.idx
				}
			}
		}
		body, idx := m.listing("app", pretty)
		ga, gb := a.step(t, body, idx), b.step(t, body, idx)
		if !maps.Equal(ga, gb) {
			t.Fatalf("seed %d step %d: skim changed %v, the full scan %v\nanswer:\n%s", seed, step, ga, gb, body)
		}
		if sa, sb := stateValues(&a.h), stateValues(&b.h); !maps.Equal(sa, sb) {
			t.Fatalf("seed %d step %d: state %v, the full scan's %v", seed, step, sa, sb)
		}
	}
	return a.skimmed
}

// TestSkimKV: the skim gives the full scan's result on every answer of
// random write sequences, and decides most answers of a store of clean
// keys (it gives up on deletes and on the special keys).
func TestSkimKV(t *testing.T) {
	for seed := range uint64(200) {
		runSkimProgram(t, seed, 40, seed%2 == 0, false)
	}
	skimmed := 0
	for seed := range uint64(20) {
		skimmed += runSkimProgram(t, seed, 40, seed%2 == 0, true)
	}
	if skimmed < 20*40/2 {
		t.Errorf("the skim decided %d of %d answers of clean keys, want most", skimmed, 20*40)
	}
}

// TestSkimKVRestored: an answer that lists, at indexes at or below the
// state's, as many entries as the state holds but not the same ones (a
// snapshot restored, an ACL change) is not skimmed, and the full scan
// finds what changed.
func TestSkimKVRestored(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want map[string]string
	}{
		{"another key at the same index", `[{"Key":"app/a","ModifyIndex":10,"Value":"YQ=="},{"Key":"app/c","ModifyIndex":11,"Value":"Yw=="}]`,
			map[string]string{"/app/b": "<deleted>", "/app/c": "c"}},
		{"a key at another old index", `[{"Key":"app/a","ModifyIndex":10,"Value":"YQ=="},{"Key":"app/b","ModifyIndex":7,"Value":"eA=="}]`,
			map[string]string{"/app/b": "x"}},
		{"a key listed twice", `[{"Key":"app/a","ModifyIndex":10,"Value":"YQ=="},{"Key":"app/a","ModifyIndex":10,"Value":"YQ=="}]`,
			map[string]string{"/app/b": "<deleted>"}},
		{"an escaped key", `[{"Key":"app/a","ModifyIndex":10,"Value":"YQ=="},{"Key":"app/\u0062","ModifyIndex":11,"Value":"Yg=="}]`,
			map[string]string{"/app/b": "b"}}, // the full scan takes an escaped key as a new entry
		{"the same entries out of order", `[{"Key":"app/b","ModifyIndex":11,"Value":"Yg=="},{"Key":"app/a","ModifyIndex":10,"Value":"YQ=="}]`,
			map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := listedHub(t, []byte(`[{"Key":"app/a","ModifyIndex":10,"Value":"YQ=="},{"Key":"app/b","ModifyIndex":11,"Value":"Yg=="}]`), 20)
			got := s.step(t, []byte(tc.body), 21)
			if s.skimmed != 0 {
				t.Errorf("the skim decided the answer")
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("changed %v, want %v", got, tc.want)
			}
		})
	}
}

// listedHub is a skimHub whose state is the listing body, read at idx.
func listedHub(t testing.TB, body []byte, idx uint64) *skimHub {
	t.Helper()
	s := &skimHub{h: hub{state: map[string]*entry{}}}
	s.step(t, body, idx)
	if !s.h.listing {
		t.Fatalf("the state is not the listing of %s", body)
	}
	return s
}

// FuzzSkimKV: the same comparison for seeds the fuzzer picks, and the skim
// of any bytes against a state neither panics nor, when it decides,
// disagrees with a full scan that succeeds on the same bytes.
func FuzzSkimKV(f *testing.F) {
	f.Add(uint64(1), true, []byte(`[{"Key":"app/a","ModifyIndex":30,"Value":"dg=="}]`))
	f.Add(uint64(2), false, []byte(`[]`))
	f.Add(uint64(3), true, []byte(`[{"Key":"app/a","ModifyIndex":5},{"Key":"app/b","ModifyIndex":"x"}]`))
	f.Fuzz(func(t *testing.T, seed uint64, pretty bool, body []byte) {
		runSkimProgram(t, seed, 12, pretty, seed%3 == 0)

		// Any bytes against the state of a clean listing at index 20.
		mk := func() *hub {
			return &listedHub(t, []byte(`[{"Key":"app/a","ModifyIndex":10,"Value":"dg=="},{"Key":"app/b","ModifyIndex":11,"Value":"dg=="},{"Key":"app/c","ModifyIndex":12,"Value":"dg=="}]`), 20).h
		}
		hs := mk()
		d := hs.newDiffer("/app", false)
		ok, err := d.skim(body)
		if !ok || err != nil {
			return
		}
		hf := mk()
		df := hf.newDiffer("/app", false)
		if scanKVList(body, df.pair) != nil {
			return // not an answer; the skim's reading of it is not compared
		}
		if g, w := installUpdates(nil, d.done()), installUpdates(nil, df.done()); !maps.Equal(g, w) {
			t.Fatalf("skim %v, full scan %v\nanswer: %s", g, w, body)
		}
	})
}

// BenchmarkSkimKV200 is BenchmarkDifferKV200 for the answer to a change:
// 200 keys, one of them changed since the state's answer, skimmed.
func BenchmarkSkimKV200(b *testing.B) {
	m := &kvModel{idx: 10, kvs: map[string]dirEntry{}}
	for i := range 200 {
		m.idx++
		k := fmt.Sprintf("sus/r%03d/v", i)
		m.kvs[k] = dirEntry{Key: k, Value: fmt.Appendf(nil, "value-%d-of-a-typical-length", i), CreateIndex: m.idx, ModifyIndex: m.idx}
	}
	before, idx := m.listing("sus", true)
	m.idx++
	e := m.kvs["sus/r000/v"]
	e.Value, e.ModifyIndex = []byte("changed"), m.idx
	m.kvs["sus/r000/v"] = e
	after, _ := m.listing("sus", true)
	h := &hub{state: map[string]*entry{}}
	d := h.newDiffer("/sus", false)
	if err := scanKVList(before, d.pair); err != nil {
		b.Fatal(err)
	}
	for _, u := range d.done() {
		h.state[u.new.key[1:]] = u.new
	}
	h.noteListing(d, true)
	h.stateIdx, h.stateRoot = idx, "/sus"
	tp := &tap{body: after, ok: true}
	b.SetBytes(int64(len(after)))
	b.ReportAllocs()
	for b.Loop() {
		d := h.newDiffer("/sus", false)
		if err := d.kv(tp, nil); err != nil {
			b.Fatal(err)
		}
		if upds := d.done(); len(upds) != 1 || d.since == 0 {
			b.Fatalf("%d updates (skim %v), want 1", len(upds), d.since > 0)
		}
	}
}
