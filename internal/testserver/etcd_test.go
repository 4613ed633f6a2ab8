package testserver_test

import (
	"testing"

	"github.com/confit-dev/confit/internal/testserver"
)

func TestEtcdLifecycle(t *testing.T) {
	files, err := testserver.GenerateTLS(t.TempDir(), "root")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts testserver.EtcdOptions
	}{
		{name: "plain"},
		{name: "mtls", opts: testserver.EtcdOptions{TLS: files, ClientCertAuth: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testserver.Etcd(t, tc.opts)
			pid := s.Process().PID()
			if pid == 0 {
				t.Fatal("PID = 0 after start")
			}
			if err := s.Restart(t.Context()); err != nil {
				t.Fatalf("Restart: %v", err)
			}
			if got := s.Process().PID(); got == pid || got == 0 {
				t.Errorf("PID after restart = %d, old %d", got, pid)
			}
			if err := s.Kill(); err != nil {
				t.Fatalf("Kill: %v", err)
			}
			if err := s.Start(t.Context()); err != nil {
				t.Fatalf("Start after Kill: %v", err)
			}
		})
	}
}
