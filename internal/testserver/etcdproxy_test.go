package testserver_test

import (
	"testing"
	"time"

	"github.com/confit-dev/confit/internal/testserver"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TestEtcdProxy starts a gRPC proxy in front of etcd: a value put through
// the server is read and watched through the proxy.
func TestEtcdProxy(t *testing.T) {
	s := testserver.Etcd(t, testserver.EtcdOptions{})
	p := testserver.EtcdProxyFor(t, s)
	if p.Endpoint() == s.Endpoint() {
		t.Fatalf("proxy endpoint %s is the server's", p.Endpoint())
	}
	dial := func(ep string) *clientv3.Client {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatalf("client for %s: %v", ep, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	direct, viaProxy := dial(s.Endpoint()), dial(p.Endpoint())
	wch := viaProxy.Watch(clientv3.WithRequireLeader(t.Context()), "/proxy/k", clientv3.WithCreatedNotify())
	select {
	case <-wch: // created
	case <-time.After(10 * time.Second):
		t.Fatal("watch through the proxy not created within 10s")
	}
	if _, err := direct.Put(t.Context(), "/proxy/k", "v1"); err != nil {
		t.Fatalf("put: %v", err)
	}
	select {
	case resp := <-wch:
		if len(resp.Events) != 1 || string(resp.Events[0].Kv.Value) != "v1" {
			t.Fatalf("watch through the proxy got %+v, want the put of v1", resp)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event through the proxy within 10s")
	}
	resp, err := viaProxy.Get(t.Context(), "/proxy/k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
		t.Fatalf("get through the proxy = %v, %v; want v1", resp, err)
	}
}
