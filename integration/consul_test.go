package integration

import (
	"net/http"
	"strings"
	"testing"

	"github.com/confit-dev/confit/backends"
	_ "github.com/confit-dev/confit/backends/consul"
	"github.com/confit-dev/confit/internal/testserver"
	"github.com/hashicorp/consul/api"
)

func consulAdmin(t *testing.T, s *testserver.ConsulServer) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr()
	cfg.Token = s.Token()
	cfg.Transport = &http.Transport{DisableKeepAlives: true}
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newConsulBackend(t *testing.T, cfg backends.Config) backends.Backend {
	t.Helper()
	cfg.Backend = "consul"
	b, err := backends.New(t.Context(), backends.SpecOf(cfg.Backend, cfg), nil)
	if err != nil {
		t.Fatalf("backends.New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestConsulMutualTLS reads and watches over https with a client
// certificate, as -scheme https -client-cert/-client-key/-client-ca-keys do,
// and checks that a client without a certificate is refused.
func TestConsulMutualTLS(t *testing.T) {
	files, err := testserver.GenerateTLS(t.TempDir(), "confit")
	if err != nil {
		t.Fatal(err)
	}
	srv := testserver.Consul(t, testserver.ConsulOptions{Dev: true, TLS: files})
	adm := consulAdmin(t, srv)
	if _, err := adm.KV().Put(&api.KVPair{Key: "tls/app/k", Value: []byte("v1")}, nil); err != nil {
		t.Fatal(err)
	}
	b := newConsulBackend(t, backends.Config{
		Nodes: []string{srv.HTTPSAddr()}, Scheme: "https",
		ClientCert: files.ClientCert, ClientKey: files.ClientKey, ClientCAKeys: files.CA,
	})
	snap, err := b.Get(t.Context(), []string{"/tls/app"})
	if err != nil {
		t.Fatalf("Get over mTLS: %v", err)
	}
	if snap.KVs["/tls/app/k"] != "v1" {
		t.Fatalf("Get over mTLS = %v", snap.KVs)
	}
	ch, err := b.Watch(t.Context(), "/tls/app", snap.Rev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adm.KV().Put(&api.KVPair{Key: "tls/app/k", Value: []byte("v2")}, nil); err != nil {
		t.Fatal(err)
	}
	if c := nextChange(t, ch, "/tls/app/k"); c.Value != "v2" {
		t.Errorf("change over mTLS = %+v, want v2", c)
	}

	noCert := newConsulBackend(t, backends.Config{Nodes: []string{srv.HTTPSAddr()}, Scheme: "https", ClientCAKeys: files.CA})
	if _, err := noCert.Get(t.Context(), []string{"/tls/app"}); err == nil || !strings.Contains(err.Error(), `"/tls/app"`) {
		t.Errorf("Get without a client certificate: err = %v, want a TLS error naming the prefix", err)
	}
}
