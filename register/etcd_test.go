//go:build !confit_no_etcd

package register

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/internal/testserver"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func etcdAdmin(t *testing.T, s *testserver.EtcdServer) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func etcdSpec(s *testserver.EtcdServer) backends.Spec {
	return backends.Spec{Backend: "etcd", Settings: backends.Settings{"node": {s.Endpoint()}}}
}

// waitKey waits until key's presence is present and returns its value and
// lease, and how long it took.
func waitKey(t *testing.T, adm *clientv3.Client, key string, present bool) (string, int64, time.Duration) {
	t.Helper()
	start := time.Now()
	for time.Since(start) < waitFor {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		resp, err := adm.Get(ctx, key)
		cancel()
		if err == nil && (len(resp.Kvs) > 0) == present {
			if present {
				return string(resp.Kvs[0].Value), resp.Kvs[0].Lease, time.Since(start)
			}
			return "", 0, time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("key %s present=%v: not within %v", key, present, waitFor)
	return "", 0, 0
}

// TestEtcdUpDownDrain: the key appears once the check passes rise times,
// goes when it fails fall times, comes back, and on shutdown is deleted at
// once, the process waits the drain and then revokes the lease.
func TestEtcdUpDownDrain(t *testing.T) {
	s := testserver.Etcd(t, testserver.EtcdOptions{})
	adm := etcdAdmin(t, s)
	h := newHealthServer(t)
	reg := &Registration{Name: "web.toml", Key: "/services/web/a", Value: "127.0.0.1:8080",
		Check: fastCheck(h.srv.URL), TTL: 5 * time.Second, Drain: time.Second}
	var log logLines
	r, stop, done := startRunnerLog(t, log.logger(), etcdSpec(s), reg)

	v, lease, took := waitKey(t, adm, reg.Key, true)
	t.Logf("registered after %v", took)
	if v != reg.Value || lease == 0 {
		t.Fatalf("key = %q lease %x, want %q with a lease", v, lease, reg.Value)
	}
	ttl, err := adm.TimeToLive(t.Context(), clientv3.LeaseID(lease))
	if err != nil || ttl.GrantedTTL != 5 {
		t.Fatalf("lease TTL = %+v, %v; want granted 5", ttl, err)
	}

	h.ok.Store(false)
	_, _, took = waitKey(t, adm, reg.Key, false)
	t.Logf("down after %v (fall 3 x interval 100ms)", took)
	within(t, "down", took, downBound(reg.Check))
	if st := r.Status()[0]; st.State != Down || st.CheckErr == nil || !strings.Contains(st.CheckErr.Error(), "status 503") {
		t.Errorf("status = %+v, want down with the check's 503", st)
	}
	h.ok.Store(true)
	_, lease2, took := waitKey(t, adm, reg.Key, true)
	t.Logf("up again after %v", took)
	within(t, "up again", took, upBound(reg.Check))
	if lease2 != lease {
		t.Errorf("lease changed from %x to %x: one lease per process", lease, lease2)
	}

	// Shutdown: the delete comes first, the lease goes after the drain.
	wch := adm.Watch(t.Context(), reg.Key)
	start := time.Now()
	go stop()
	select {
	case wr := <-wch:
		if len(wr.Events) == 0 || wr.Events[0].Type != clientv3.EventTypeDelete {
			t.Fatalf("first event at shutdown = %+v, want a delete", wr.Events)
		}
	case <-time.After(waitFor):
		t.Fatal("no delete at shutdown")
	}
	deleted := time.Since(start)
	for time.Since(start) < waitFor {
		ttl, err = adm.TimeToLive(t.Context(), clientv3.LeaseID(lease))
		if err == nil && ttl.TTL == -1 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	revoked := time.Since(start)
	if ttl.TTL != -1 {
		t.Fatalf("lease not revoked at shutdown: %+v", ttl)
	}
	t.Logf("shutdown: key deleted after %v, lease revoked after %v (drain 1s)", deleted, revoked)
	if revoked-deleted < 900*time.Millisecond {
		t.Errorf("lease revoked %v after the delete, want at least the drain (1s)", revoked-deleted)
	}
	<-done
	checkTransitionsLogged(t, &log)
}

// TestEtcdConflict: a key owned by another lease is never overwritten; the
// registration reports the conflict, and takes the key once it is free.
func TestEtcdConflict(t *testing.T) {
	s := testserver.Etcd(t, testserver.EtcdOptions{})
	adm := etcdAdmin(t, s)
	h := newHealthServer(t)
	other, err := adm.Grant(t.Context(), 30)
	if err != nil {
		t.Fatal(err)
	}
	key := "/services/web/dup"
	if _, err := adm.Put(t.Context(), key, "theirs", clientv3.WithLease(other.ID)); err != nil {
		t.Fatal(err)
	}
	r, _, _ := startRunner(t, etcdSpec(s), &Registration{Name: "dup", Key: key, Value: "ours",
		Check: fastCheck(h.srv.URL), TTL: 5 * time.Second, Drain: 0})
	deadline := time.Now().Add(waitFor)
	for {
		st := r.Status()[0]
		if st.StoreErr != nil && errors.Is(st.StoreErr, ErrConflict) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status = %+v, want a conflict", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v, _, _ := waitKey(t, adm, key, true); v != "theirs" {
		t.Fatalf("value = %q: the other owner's key was overwritten", v)
	}
	if _, err := adm.Revoke(t.Context(), other.ID); err != nil {
		t.Fatal(err)
	}
	for time.Now().Before(deadline.Add(waitFor)) {
		if v, _, _ := waitKey(t, adm, key, true); v == "ours" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("key not taken over after the other owner's lease ended")
}

// TestEtcdLeaseLost: the lease revoked behind confit's back (as a store
// that lost its data, or an outage longer than the TTL) deletes the key;
// confit grants a new lease and registers again.
func TestEtcdLeaseLost(t *testing.T) {
	s := testserver.Etcd(t, testserver.EtcdOptions{})
	adm := etcdAdmin(t, s)
	h := newHealthServer(t)
	reg := &Registration{Name: "web", Key: "/services/web/b", Check: fastCheck(h.srv.URL), TTL: 5 * time.Second, Drain: 0}
	startRunner(t, etcdSpec(s), reg)
	_, lease, _ := waitKey(t, adm, reg.Key, true)
	if _, err := adm.Revoke(t.Context(), clientv3.LeaseID(lease)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for time.Since(start) < waitFor {
		resp, err := adm.Get(t.Context(), reg.Key)
		if err == nil && len(resp.Kvs) == 1 && resp.Kvs[0].Lease != lease {
			t.Logf("registered again with a new lease after %v", time.Since(start))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("not registered again after the lease was revoked")
}

// TestEtcdRestart: etcd killed (SIGKILL) for longer than the TTL and
// started again: the registration is back, on a live lease, and stays.
// While etcd is down nothing is deleted by confit.
func TestEtcdRestart(t *testing.T) {
	s := testserver.Etcd(t, testserver.EtcdOptions{})
	adm := etcdAdmin(t, s)
	h := newHealthServer(t)
	reg := &Registration{Name: "web", Key: "/services/web/c", Check: fastCheck(h.srv.URL), TTL: 3 * time.Second, Drain: 0}
	r, _, _ := startRunner(t, etcdSpec(s), reg)
	waitKey(t, adm, reg.Key, true)
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second) // past the TTL: the client gives the lease up
	if st := r.Status()[0]; st.State != Up {
		t.Errorf("state during the outage = %v, want up (the check still passes)", st.State)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, _, _ = waitKey(t, adm, reg.Key, true)
	// Past the old lease's TTL: the key must be on a live lease.
	time.Sleep(5 * time.Second)
	_, lease, _ := waitKey(t, adm, reg.Key, true)
	ttl, err := adm.TimeToLive(t.Context(), clientv3.LeaseID(lease))
	if err != nil || ttl.TTL <= 0 {
		t.Fatalf("lease after restart: %+v, %v; want live", ttl, err)
	}
	t.Logf("registered after the restart, checked %v later", time.Since(start))
}

// TestEtcdKill9 runs the registration in a child process and kills it
// with SIGKILL: the key disappears within the TTL (plus the lessor's
// expiry tick).
func TestEtcdKill9(t *testing.T) {
	s := testserver.Etcd(t, testserver.EtcdOptions{})
	adm := etcdAdmin(t, s)
	h := newHealthServer(t)
	key := "/services/web/k9"
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRegister$")
	cmd.Env = append(os.Environ(), "CONFIT_REGISTER_HELPER=1", "HELPER_ETCD="+s.Endpoint(), "HELPER_KEY="+key, "HELPER_URL="+h.srv.URL)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitKey(t, adm, key, true)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _, took := waitKey(t, adm, key, false)
	t.Logf("key gone %v after kill -9 (TTL 3s)", took)
	if took > 3*time.Second+10*time.Second {
		t.Errorf("key gone after %v, want within the TTL (3s; bound 13s on a busy machine)", took)
	}
}

// TestHelperRegister is the child process of TestEtcdKill9.
func TestHelperRegister(t *testing.T) {
	if os.Getenv("CONFIT_REGISTER_HELPER") != "1" {
		t.Skip("helper process")
	}
	spec := backends.Spec{Backend: "etcd", Settings: backends.Settings{"node": {os.Getenv("HELPER_ETCD")}}}
	r, err := New([]*Registration{{Name: "helper", Key: os.Getenv("HELPER_KEY"),
		Check: fastCheck(os.Getenv("HELPER_URL")), TTL: 3 * time.Second}}, Options{Backend: spec})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = r.Run(ctx)
}
