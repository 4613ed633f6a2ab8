package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestStormJitters(t *testing.T) {
	tests := []struct {
		name, flag string
		n          int
		want       []time.Duration
		wantErr    bool
	}{
		{name: "auto grows with the fleet", flag: "0,auto", n: 1000, want: []time.Duration{0, 5 * time.Second}},
		{name: "auto is at least 1s", flag: "auto", n: 10, want: []time.Duration{time.Second}},
		{name: "durations as given", flag: "0, 2.5s", n: 10, want: []time.Duration{0, 2500 * time.Millisecond}},
		{name: "empty runs none", flag: "", n: 10},
		{name: "bad duration", flag: "5", n: 10, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old := *jitterFlag
			defer func() { *jitterFlag = old }()
			*jitterFlag = tc.flag
			got, err := stormJitters(tc.n)
			if (err != nil) != tc.wantErr {
				t.Fatalf("stormJitters(%q, %d) err = %v, want error %v", tc.flag, tc.n, err, tc.wantErr)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("stormJitters(%q, %d) = %v, want %v", tc.flag, tc.n, got, tc.want)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `# HELP x
grpc_server_started_total{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 7
grpc_server_started_total{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"} 100
grpc_server_msg_received_total{grpc_method="Watch",grpc_type="bidi_stream"} 3
etcd_debugging_mvcc_watcher_total 12
`)
	}))
	defer srv.Close()
	got, err := metrics(t.Context(), srv.URL, map[string][]string{
		"grpc_server_started_total":         {`grpc_method="Range"`},
		"grpc_server_msg_received_total":    {`grpc_method="Watch"`},
		"etcd_debugging_mvcc_watcher_total": nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"grpc_server_started_total": 7, "grpc_server_msg_received_total": 3, "etcd_debugging_mvcc_watcher_total": 12}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("metrics[%s] = %v, want %v", k, got[k], v)
		}
	}
}

func TestIndexOf(t *testing.T) {
	for name, want := range map[string]int{"app-0000.conf": 0, "app-0999.conf": 999} {
		if got, ok := indexOf(name); !ok || got != want {
			t.Errorf("indexOf(%q) = %d, %v; want %d", name, got, ok, want)
		}
	}
	for _, name := range []string{".app-0001.conf.stage123", "app-x.conf", "other"} {
		if _, ok := indexOf(name); ok {
			t.Errorf("indexOf(%q) ok, want not a destination", name)
		}
	}
}

// TestBinBuild: a cell records the build it measured. The binary is a
// stand-in script printing what confit -version prints.
func TestBinBuild(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "confit")
	script := "#!/bin/sh\necho 'confit 5f7c692 (go1.26.8, linux/amd64; backends: env, file)'\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	build, size, err := binBuild(t.Context(), bin)
	if err != nil {
		t.Fatal(err)
	}
	if want := "confit 5f7c692 (go1.26.8, linux/amd64; backends: env, file)"; build != want || size != int64(len(script)) {
		t.Errorf("binBuild = %q, %d; want %q, %d", build, size, want, len(script))
	}
	if _, _, err := binBuild(t.Context(), filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("binBuild of a missing binary: no error")
	}
}
