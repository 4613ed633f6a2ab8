package consul

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/hashicorp/consul/api"
)

// scanned is what scanKVList reports for one pair, decoded.
type scanned struct {
	Key   string
	Mod   uint64
	Value string
	Null  bool
}

func scanAll(t testing.TB, body string) ([]scanned, error) {
	t.Helper()
	var out []scanned
	err := scanKVList([]byte(body), func(p *rawPair) error {
		k, err := p.keyString()
		if err != nil {
			return err
		}
		v, err := p.value()
		if err != nil {
			return err
		}
		out = append(out, scanned{Key: k, Mod: p.mod, Value: v, Null: p.val == nil})
		return nil
	})
	return out, err
}

func TestScanKVList(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    []scanned
		wantErr bool
	}{
		{name: "empty", body: "[]\n"},
		{
			name: "consul answer",
			body: `[{"LockIndex":0,"Key":"app/db","Flags":0,"Value":"aGVsbG8=","CreateIndex":12,"ModifyIndex":15},` +
				`{"LockIndex":0,"Key":"app/","Flags":0,"Value":null,"CreateIndex":13,"ModifyIndex":13}]`,
			want: []scanned{{Key: "app/db", Mod: 15, Value: "hello"}, {Key: "app/", Mod: 13, Null: true}},
		},
		{
			name: "escapes, white space, unknown fields of any type",
			body: " [ {\"Session\":\"x\\\"y\", \"Key\" : \"a\\u0026b\\/c\", \"X\":{\"y\":[1,2.5e3,true,null,{}]}, \"Value\":\"aGk\\u003d\",\"ModifyIndex\":7} ] ",
			want: []scanned{{Key: "a&b/c", Mod: 7, Value: "hi"}},
		},
		{name: "non-ASCII key", body: `[{"Key":"café/ü","Value":"aGk=","ModifyIndex":2}]`, want: []scanned{{Key: "café/ü", Mod: 2, Value: "hi"}}},
		{name: "escaped quote in a key", body: `[{"Key":"a\"b","ModifyIndex":2}]`, want: []scanned{{Key: `a"b`, Mod: 2, Null: true}}},
		{name: "control character in a key", body: "[{\"Key\":\"a\x01\",\"ModifyIndex\":1}]", wantErr: true},
		{name: "field names in other cases", body: `[{"key":"a","modifyindex":3,"VALUE":"aGk="}]`, want: []scanned{{Key: "a", Mod: 3, Value: "hi"}}},
		{name: "a Kelvin sign folds to k", body: "[{\"\u212aey\":\"a\",\"ModifyIndex\":3}]", want: []scanned{{Key: "a", Mod: 3, Null: true}}},
		{name: "empty value", body: `[{"Key":"a","Value":"","ModifyIndex":1}]`, want: []scanned{{Key: "a", Mod: 1}}},
		{name: "not an array", body: `{"Key":"a"}`, wantErr: true},
		{name: "no key", body: `[{"ModifyIndex":1}]`, wantErr: true},
		{name: "truncated", body: `[{"Key":"a","ModifyIndex":1}`, wantErr: true},
		{name: "trailing garbage", body: `[] x`, wantErr: true},
		{name: "bad base64", body: `[{"Key":"a","Value":"!!","ModifyIndex":1}]`, wantErr: true},
		{name: "negative index", body: `[{"Key":"a","ModifyIndex":-1}]`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := scanAll(t, tc.body)
			if (err != nil) != tc.wantErr {
				t.Fatalf("scanKVList err = %v, wantErr %v", err, tc.wantErr)
			}
			if !tc.wantErr && !slices.Equal(got, tc.want) {
				t.Errorf("scanKVList = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// FuzzScanKVList checks that what scanKVList accepts, encoding/json decodes
// the same way.
func FuzzScanKVList(f *testing.F) {
	f.Add(`[{"LockIndex":0,"Key":"app/db","Flags":0,"Value":"aGVsbG8=","CreateIndex":12,"ModifyIndex":15}]`)
	f.Add(`[{"Key":"a\u0026b","Value":null,"ModifyIndex":3,"Session":"s"},{"Key":"b","ModifyIndex":4}]`)
	f.Fuzz(func(t *testing.T, body string) {
		got, err := scanAll(t, body)
		if err != nil {
			return
		}
		var pairs []*api.KVPair
		if err := json.Unmarshal([]byte(body), &pairs); err != nil {
			t.Skip("accepted by scanKVList, not by encoding/json:", err) // e.g. a case-folded field name
		}
		if len(got) != len(pairs) {
			t.Fatalf("scanKVList found %d pairs, encoding/json %d", len(got), len(pairs))
		}
		for i, p := range pairs {
			if p == nil {
				t.Fatalf("pair %d is null for encoding/json", i)
			}
			want := scanned{Key: p.Key, Mod: p.ModifyIndex, Value: string(p.Value), Null: p.Value == nil}
			if got[i] != want {
				t.Errorf("pair %d = %+v, encoding/json %+v", i, got[i], want)
			}
		}
	})
}

func TestCleanRel(t *testing.T) {
	for _, k := range []string{"", "a", "a/b", "app/db.conf", "a/.b", "a/..b"} {
		if !cleanRel([]byte(k)) {
			t.Errorf("cleanRel(%q) = false, want true", k)
		}
	}
	for _, k := range []string{"/a", "a/", "a//b", ".", "a/.", "a/../b", "..", "/"} {
		if cleanRel([]byte(k)) {
			t.Errorf("cleanRel(%q) = true, want false", k)
		}
	}
}

// kvBody encodes pairs the way Consul answers a recursive list.
func kvBody(t *testing.T, pairs ...*api.KVPair) *tap {
	t.Helper()
	b, err := json.Marshal(pairs)
	if err != nil {
		t.Fatal(err)
	}
	return &tap{body: b, ok: true}
}

// installUpdates installs upds in h's state, as publish does, and returns
// what changed: key → value, or "<deleted>". With h nil it only returns it.
func installUpdates(h *hub, upds []update) map[string]string {
	got := map[string]string{}
	for _, u := range upds {
		if u.new == u.old {
			continue
		}
		if u.new == nil {
			if h != nil {
				delete(h.state, u.key()[1:])
			}
			got[u.key()] = "<deleted>"
		} else {
			if h != nil {
				h.state[u.key()[1:]] = u.new
			}
			got[u.key()] = u.new.val
		}
	}
	return got
}

func TestDifferKV(t *testing.T) {
	h := &hub{state: map[string]*entry{}}
	step := func(tp *tap) map[string]string {
		t.Helper()
		d := h.newDiffer("/app", false)
		if err := d.kv(tp, nil); err != nil {
			t.Fatal(err)
		}
		return installUpdates(h, d.done())
	}
	kv := func(k, v string, mod uint64) *api.KVPair {
		return &api.KVPair{Key: k, Value: []byte(v), ModifyIndex: mod}
	}
	tests := []struct {
		name string
		body *tap
		want map[string]string
	}{
		{"first", kvBody(t, kv("app", "r", 1), kv("app/", "", 2), kv("app/a", "1", 3), kv("app//b", "x", 4), kv("app/b", "2", 5), kv("appx", "no", 6)),
			map[string]string{"/app": "r", "/app/a": "1", "/app/b": "2"}},
		{"unchanged", kvBody(t, kv("app", "r", 1), kv("app/", "", 2), kv("app/a", "1", 3), kv("app//b", "x", 4), kv("app/b", "2", 5)),
			map[string]string{}},
		{"one changed, real key deleted behind its marker", kvBody(t, kv("app/", "", 2), kv("app/a", "9", 7), kv("app//b", "x", 4), kv("app/b", "2", 5)),
			map[string]string{"/app": "", "/app/a": "9"}},
		{"set again to the same value", kvBody(t, kv("app/", "", 2), kv("app/a", "9", 8), kv("app//b", "x", 4), kv("app/b", "2", 5)),
			map[string]string{"/app/a": "9"}},
		{"the unclean alias wins when the clean key goes", kvBody(t, kv("app/", "", 2), kv("app/a", "9", 8), kv("app//b", "x", 4)),
			map[string]string{"/app/b": "x"}},
		{"deletes", kvBody(t, kv("app/a", "9", 8)),
			map[string]string{"/app": "<deleted>", "/app/b": "<deleted>"}},
	}
	for _, tc := range tests {
		if got := step(tc.body); !maps.Equal(got, tc.want) {
			t.Errorf("%s: changes %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:8500", true},
		{"localhost:8500", true},
		{"[::1]:8500", true},
		{"http://127.0.0.1:8500", true},
		{"unix:///var/run/consul.sock", true},
		{"consul:8501", false},
		{"10.0.0.5:8500", false},
		{"https://consul.example.com", false},
	}
	for _, tc := range tests {
		if got := isLoopback(tc.addr); got != tc.want {
			t.Errorf("isLoopback(%q) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

// BenchmarkDifferKV200 compares an answer of 200 unchanged keys with the
// state, the hub's work for each change of a watch on 200 prefixes.
func BenchmarkDifferKV200(b *testing.B) {
	pairs := make([]*api.KVPair, 200)
	for i := range pairs {
		pairs[i] = &api.KVPair{Key: fmt.Sprintf("sus/r%03d/v", i), Value: []byte(fmt.Sprintf("value-%d-of-a-typical-length", i)), CreateIndex: 10, ModifyIndex: uint64(100 + i)}
	}
	body, err := json.Marshal(pairs)
	if err != nil {
		b.Fatal(err)
	}
	tp := &tap{body: body, ok: true}
	h := &hub{state: map[string]*entry{}}
	d := h.newDiffer("/sus", false)
	if err := d.kv(tp, nil); err != nil {
		b.Fatal(err)
	}
	for _, u := range d.done() {
		h.state[u.new.key[1:]] = u.new
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		d := h.newDiffer("/sus", false)
		if err := d.kv(tp, nil); err != nil {
			b.Fatal(err)
		}
		if upds := d.done(); len(upds) != 0 {
			b.Fatalf("%d updates, want 0", len(upds))
		}
	}
}

// TestDifferUnchangedNoAlloc: comparing an answer whose keys are all
// unchanged allocates nothing per key (the scanner's field names and
// strings alias the body).
func TestDifferUnchangedNoAlloc(t *testing.T) {
	var pairs []*api.KVPair
	for i := range 50 {
		pairs = append(pairs, &api.KVPair{Key: fmt.Sprintf("app/k%02d", i), Value: []byte("v"), Flags: 1, LockIndex: 2, Session: "s", CreateIndex: 3, ModifyIndex: uint64(10 + i)})
	}
	tp := kvBody(t, pairs...)
	h := &hub{state: map[string]*entry{}}
	d := h.newDiffer("/app", false)
	if err := d.kv(tp, nil); err != nil {
		t.Fatal(err)
	}
	for _, u := range d.done() {
		h.state[u.new.key[1:]] = u.new
	}
	allocs := testing.AllocsPerRun(20, func() {
		d := h.newDiffer("/app", false)
		if err := d.kv(tp, nil); err != nil {
			t.Fatal(err)
		}
		if upds := d.done(); len(upds) != 0 {
			t.Fatalf("%d updates, want 0", len(upds))
		}
	})
	if allocs > 2 {
		t.Errorf("%v allocations per answer of 50 unchanged keys, want <= 2 (none per key)", allocs)
	}
}
