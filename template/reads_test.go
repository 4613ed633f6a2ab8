package template

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

func TestReads(t *testing.T) {
	tests := []struct {
		name         string
		text         string
		wantKeys     []string
		wantPrefixes []string
		wantErr      bool
	}{
		{name: "nothing", text: `static`},
		{name: "getv present and missing with default",
			text:     `{{getv "/app/name"}}{{getv "/app/nope" "d"}}`,
			wantKeys: []string{"/app/name", "/app/nope"}},
		{name: "missing key is recorded on error",
			text:     `{{getv "/app/name"}}{{getv "/database/url"}}`,
			wantKeys: []string{"/app/name", "/database/url"}, wantErr: true},
		{name: "get and exists, unique; keys not clean are not reads (never found)",
			text:     `{{exists "/zz"}}{{exists "zz/"}}{{get "/app/db"}}{{get "/app/db"}}{{exists "app/db"}}{{exists "/a"}}`,
			wantKeys: []string{"/a", "/app/db", "/zz"}},
		{name: "sorted across present and missing",
			text:     `{{exists "/upstreams/c/addr"}}{{exists "/b"}}{{exists "/app/name"}}{{exists "/zzz"}}`,
			wantKeys: []string{"/app/name", "/b", "/upstreams/c/addr", "/zzz"}},
		{name: "gets literal directory",
			text:         `{{gets "/upstreams/*/addr"}}{{getvs "/app/db/p*"}}{{gets "/nothing/*"}}`,
			wantPrefixes: []string{"/app/db", "/nothing", "/upstreams"}},
		{name: "gets partial name uses its directory",
			text:         `{{gets "/upstreams/a*"}}`,
			wantPrefixes: []string{"/upstreams"}},
		{name: "gets without meta is the key itself",
			text:         `{{gets "/app/name"}}`,
			wantPrefixes: []string{"/app/name"}},
		{name: "gets leading meta is everything",
			text:         `{{gets "*"}}{{gets "/*/x"}}`,
			wantPrefixes: []string{"/"}},
		{name: "bad pattern records nothing",
			text:    `{{gets "/a/["}}`,
			wantErr: true},
		{name: "ls and lsdir paths, cleaned",
			text:         `{{ls "/app/"}}{{lsdir "/upstreams"}}{{ls "/missing"}}{{ls "/"}}`,
			wantPrefixes: []string{"/", "/app", "/missing", "/upstreams"}},
		{name: "mixed in a loop",
			text:         `{{range lsdir "/upstreams"}}{{getv (printf "/upstreams/%s/addr" .)}}{{getv (printf "/upstreams/%s/weight" .) "1"}}{{end}}`,
			wantKeys:     []string{"/upstreams/a/addr", "/upstreams/a/weight", "/upstreams/b/addr", "/upstreams/b/weight", "/upstreams/c/addr", "/upstreams/c/weight"},
			wantPrefixes: []string{"/upstreams"}},
		{name: "getenv and others are not reads",
			text: `{{getenv "HOME"}}{{base "/x"}}`},
	}
	store := NewStore(testStore)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tm, err := Parse("reads.tmpl", tc.text, Options{})
			if err != nil {
				t.Fatal(err)
			}
			// Twice: the second render reuses the pooled binding and must
			// not carry reads over.
			for i := range 2 {
				_, reads, err := tm.Execute(store)
				if (err != nil) != tc.wantErr {
					t.Fatalf("render %d: got error %v, want error: %v", i, err, tc.wantErr)
				}
				if !slices.Equal(reads.Keys, tc.wantKeys) {
					t.Errorf("render %d: got Keys %q, want %q", i, reads.Keys, tc.wantKeys)
				}
				if !slices.Equal(reads.Prefixes, tc.wantPrefixes) {
					t.Errorf("render %d: got Prefixes %q, want %q", i, reads.Prefixes, tc.wantPrefixes)
				}
			}
		})
	}
}

// TestExecuteConcurrent renders one Template from many goroutines with
// different stores; each render must see only its own store and reads.
func TestExecuteConcurrent(t *testing.T) {
	tm, err := Parse("c.tmpl", `{{getv "/id"}}:{{range gets "/k/*"}}{{.Value}}{{end}}:{{getv (printf "/only/%s" (getv "/id")) "none"}}`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const workers, renders = 8, 200
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			id := fmt.Sprint(w)
			s := NewStore(map[string]string{"/id": id, "/k/a": id, "/k/b": id, "/only/" + id: "mine"})
			want := id + ":" + id + id + ":mine"
			wantKeys := []string{"/id", "/only/" + id}
			for range renders {
				got, reads, err := tm.Execute(s)
				if err != nil {
					errs <- err
					return
				}
				if string(got) != want {
					errs <- fmt.Errorf("worker %d: got %q, want %q", w, got, want)
					return
				}
				if !slices.Equal(reads.Keys, wantKeys) || !slices.Equal(reads.Prefixes, []string{"/k"}) {
					errs <- fmt.Errorf("worker %d: got reads %+v", w, reads)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestNewStore(t *testing.T) {
	s := NewStore(map[string]string{"a/b": "1", "/c//d/": "2", "/x": "clean", "x": "unclean", "/": "root"})
	wantKeys := []string{"/", "/a/b", "/c/d", "/x"}
	if !slices.Equal(s.keys, wantKeys) {
		t.Errorf("got keys %q, want %q", s.keys, wantKeys)
	}
	if i, _ := s.find("/x"); s.vals[i] != "clean" {
		got := s.vals[i]
		t.Errorf("got /x = %q, want the already-clean key's value %q", got, "clean")
	}
	tm, err := Parse("nil.tmpl", `{{getv "/a" "d"}}{{ls "/"}}`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := tm.Execute(nil)
	if err != nil || string(got) != "d[]" {
		t.Errorf("nil store: got %q, %v; want %q", got, err, "d[]")
	}
}
