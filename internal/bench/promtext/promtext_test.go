package promtext

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestScrapeSum(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `# HELP grpc_server_handled_total x
grpc_server_handled_total{grpc_code="OK",grpc_method="Range"} 7
grpc_server_handled_total{grpc_code="Unavailable",grpc_method="Range"} 2
grpc_server_handled_total{grpc_code="OK",grpc_method="Put"} 100
etcd_mvcc_range_total 12
broken_line NaNx
`)
	}))
	defer srv.Close()
	m, err := Scrape(t.Context(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 4 {
		t.Errorf("%d series, want 4: %v", len(m), m)
	}
	for _, tc := range []struct {
		name, metric string
		labels       []string
		want         float64
		found        bool
	}{
		{name: "one label", metric: "grpc_server_handled_total", labels: []string{`grpc_method="Range"`}, want: 9, found: true},
		{name: "two labels", metric: "grpc_server_handled_total", labels: []string{`grpc_method="Range"`, `grpc_code="OK"`}, want: 7, found: true},
		{name: "every series", metric: "grpc_server_handled_total", want: 109, found: true},
		{name: "no labels", metric: "etcd_mvcc_range_total", want: 12, found: true},
		{name: "no such label", metric: "grpc_server_handled_total", labels: []string{`grpc_method="Txn"`}},
		{name: "no such metric", metric: "grpc_server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, found := Sum(m, tc.metric, tc.labels...)
			if got != tc.want || found != tc.found {
				t.Errorf("Sum = %v, %v; want %v, %v", got, found, tc.want, tc.found)
			}
		})
	}
}

func TestScrapeStatus(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	if _, err := Scrape(t.Context(), srv.URL); err == nil {
		t.Error("Scrape of a 404: no error")
	}
}
