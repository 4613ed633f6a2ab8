package template

import (
	"fmt"
	"testing"
)

// haproxyTemplate is a haproxy-like template over /upstreams/<id>/{addr,weight}.
const haproxyTemplate = `global
    maxconn {{getv "/global/maxconn" "4096"}}

backend app
    balance roundrobin
{{- range $id := lsdir "/upstreams"}}
    server {{$id}} {{getv (printf "/upstreams/%s/addr" $id)}} weight {{getv (printf "/upstreams/%s/weight" $id) "1"}} check
{{- end}}

# all addresses: {{len (getvs "/upstreams/*/addr")}}
`

// upstreams returns a store of n servers, 2n keys.
func upstreams(n int) *Store {
	kvs := make(map[string]string, 2*n)
	for i := range n {
		id := fmt.Sprintf("srv%05d", i)
		kvs["/upstreams/"+id+"/addr"] = fmt.Sprintf("10.%d.%d.%d:8080", i>>16&255, i>>8&255, i&255)
		kvs["/upstreams/"+id+"/weight"] = fmt.Sprint(i%10 + 1)
	}
	return NewStore(kvs)
}

func BenchmarkExecute20k(b *testing.B) { benchExecute20k(b, true) }

// BenchmarkExecute20kTextTemplate is BenchmarkExecute20k in text/template
// alone, without the fast executor.
func BenchmarkExecute20kTextTemplate(b *testing.B) { benchExecute20k(b, false) }

func benchExecute20k(b *testing.B, fast bool) {
	s := upstreams(10000)
	tm, err := Parse("haproxy.cfg.tmpl", haproxyTemplate, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := tm.execute(s, fast); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExecute20kFloor renders the same template with the store
// functions replaced by stubs that do no work: the cost of the executor
// itself, for comparison with BenchmarkExecute20k.
func BenchmarkExecute20kFloor(b *testing.B) {
	s := upstreams(10000)
	ids := NewStore(nil)
	for i := range 10000 {
		ids.keys = append(ids.keys, fmt.Sprintf("srv%05d", i))
	}
	tm, err := Parse("haproxy.cfg.tmpl", haproxyTemplate, Options{Funcs: map[string]any{
		"lsdir": func(string) []string { return ids.keys },
		"getv":  func(k string, d ...string) (string, error) { return k, nil },
		"getvs": func(string) ([]string, error) { return nil, nil },
	}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := tm.Execute(s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExecuteSmall measures the fixed per-render cost.
func BenchmarkExecuteSmall(b *testing.B) {
	s := NewStore(map[string]string{"/database/url": "db:5432"})
	tm, err := Parse("small.tmpl", `url={{getv "/database/url"}}`, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := tm.Execute(s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClone measures what a new binding costs (acquire with no free
// binding): store functions bound to a new recorder and their fast
// executor adapters; a text/template is built only for a render that
// falls back to it.
func BenchmarkClone(b *testing.B) {
	tm, err := Parse("haproxy.cfg.tmpl", haproxyTemplate, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		tm.free = nil
		if _, err := tm.acquire(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewStore20k(b *testing.B) {
	kvs := make(map[string]string, 20000)
	for i := range 10000 {
		kvs[fmt.Sprintf("/upstreams/srv%05d/addr", i)] = "x"
		kvs[fmt.Sprintf("/upstreams/srv%05d/weight", i)] = "1"
	}
	b.ReportAllocs()
	for b.Loop() {
		NewStore(kvs)
	}
}
