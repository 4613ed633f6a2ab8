//go:build !confit_no_etcd

package register

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/backends/etcd"
	"github.com/confit-dev/confit/internal/retry"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func init() { openers["etcd"] = openEtcd }

// etcdSession holds one lease for the whole process, kept alive by the
// client's KeepAlive (a request every TTL/3); every key of the session's
// registrations is attached to it. When the lease is lost (expired during
// an outage longer than the TTL, or unknown to a store that lost its data)
// a new one is granted and every key that should be up is put again.
type etcdSession struct {
	backend *etcd.Client
	cli     *clientv3.Client
	ttl     int64
	log     *slog.Logger
	stop    context.CancelFunc
	done    chan struct{}

	mu      sync.Mutex
	lease   clientv3.LeaseID // 0 while none is granted
	gen     uint64           // bumped at each new lease
	granted chan struct{}    // closed and replaced when a lease is granted
	change  chan struct{}    // closed and replaced when the lease changes
	ours    map[clientv3.LeaseID]bool
	applied map[string]etcdApplied // key -> what the store holds for it
}

// etcdApplied is what set last stored for a key, under lease generation
// gen.
type etcdApplied struct {
	gen   uint64
	up    bool
	value string
}

func openEtcd(ctx context.Context, spec backends.Spec, ttl time.Duration, log *slog.Logger) (session, error) {
	b, err := backends.New(ctx, spec, log)
	if err != nil {
		return nil, err
	}
	ec, ok := b.(*etcd.Client)
	if !ok {
		b.Close()
		return nil, fmt.Errorf("backend %q is not etcd", spec.Backend)
	}
	kctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s := &etcdSession{
		backend: ec, cli: ec.Raw(), ttl: int64(ttl / time.Second), log: log, stop: stop, done: make(chan struct{}),
		granted: make(chan struct{}), change: make(chan struct{}),
		ours: map[clientv3.LeaseID]bool{}, applied: map[string]etcdApplied{},
	}
	go s.keepLease(kctx)
	return s, nil
}

// keepLease grants the lease, keeps it alive, and grants another when it
// is lost, until ctx ends.
func (s *etcdSession) keepLease(ctx context.Context) {
	defer close(s.done)
	failures := 0
	for ctx.Err() == nil {
		gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := s.cli.Grant(gctx, s.ttl)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			if failures == 1 {
				s.log.Warn("register: etcd lease grant failing; retrying", "err", err.Error())
			}
			if !retry.Sleep(ctx, retry.Backoff(250*time.Millisecond, 5*time.Second, failures)) {
				return
			}
			continue
		}
		if failures > 0 {
			s.log.Info("register: etcd lease granted after failures", "lease", fmt.Sprintf("%x", resp.ID), "failures", failures)
		}
		failures = 0
		ch, err := s.cli.KeepAlive(ctx, resp.ID)
		if err != nil {
			continue
		}
		s.setLease(resp.ID)
		for range ch { // consumed promptly: the client drops responses no one reads
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("register: etcd lease lost; granting a new one and registering again", "lease", fmt.Sprintf("%x", resp.ID))
		s.setLease(0)
	}
}

// setLease records the current lease (0: none) and wakes whoever waits.
func (s *etcdSession) setLease(id clientv3.LeaseID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lease = id
	s.gen++
	if id != 0 {
		s.ours[id] = true
		close(s.granted)
		s.granted = make(chan struct{})
	}
	close(s.change)
	s.change = make(chan struct{})
}

func (s *etcdSession) changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.change
}

func (s *etcdSession) refresh(*Registration) time.Duration { return 0 }

// concurrency: gRPC multiplexes requests on the one connection.
func (s *etcdSession) concurrency() int { return 0 }

// current returns the lease and its generation, waiting for one to be
// granted when wait is set (else returning 0).
func (s *etcdSession) current(ctx context.Context, wait bool) (clientv3.LeaseID, uint64, error) {
	for {
		s.mu.Lock()
		id, gen, granted := s.lease, s.gen, s.granted
		s.mu.Unlock()
		if id != 0 || !wait {
			return id, gen, nil
		}
		select {
		case <-ctx.Done():
			return 0, 0, fmt.Errorf("etcd: no lease granted yet: %w", ctx.Err())
		case <-granted:
		}
	}
}

// set puts r's key with the lease if it is missing or already ours (in one
// transaction: a key attached to another process's lease is a conflict,
// never overwritten), or deletes it if it carries our lease.
func (s *etcdSession) set(ctx context.Context, r *Registration, up bool) error {
	value := r.etcdValue()
	lease, gen, err := s.current(ctx, up)
	if err != nil {
		return err
	}
	s.mu.Lock()
	a, known := s.applied[r.Key]
	s.mu.Unlock()
	if known && a.gen == gen && a.up == up && (!up || a.value == value) {
		return nil
	}
	if !up && lease == 0 {
		return nil // no lease: no key of ours exists
	}
	if up {
		err = s.put(ctx, r.Key, value, lease)
	} else {
		_, err = s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.LeaseValue(r.Key), "=", lease)).
			Then(clientv3.OpDelete(r.Key)).Commit()
		if err != nil {
			err = fmt.Errorf("etcd: delete %q: %w", r.Key, err)
		}
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.applied[r.Key] = etcdApplied{gen: gen, up: up, value: value}
	s.mu.Unlock()
	return nil
}

// put writes key=value with lease when the key is missing or carries a
// lease of this process (the current one, or one lost earlier whose key
// the store still holds); otherwise it reports ErrConflict.
func (s *etcdSession) put(ctx context.Context, key, value string, lease clientv3.LeaseID) error {
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, value, clientv3.WithLease(lease))).
		Else(clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.LeaseValue(key), "=", lease)},
			[]clientv3.Op{clientv3.OpPut(key, value, clientv3.WithLease(lease))},
			[]clientv3.Op{clientv3.OpGet(key, clientv3.WithKeysOnly())})).
		Commit()
	if err != nil {
		return fmt.Errorf("etcd: put %q: %w", key, err)
	}
	if resp.Succeeded {
		return nil
	}
	inner := resp.Responses[0].GetResponseTxn()
	if inner.Succeeded {
		return nil
	}
	kvs := inner.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return fmt.Errorf("etcd: put %q: deleted meanwhile; trying again", key)
	}
	owner := clientv3.LeaseID(kvs[0].Lease)
	s.mu.Lock()
	mine := s.ours[owner]
	s.mu.Unlock()
	if !mine {
		return fmt.Errorf("etcd: put %q: %w (lease %x, ours %x)", key, ErrConflict, owner, lease)
	}
	// Our earlier lease: move the key to the current one.
	resp, err = s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(key), "=", owner)).
		Then(clientv3.OpPut(key, value, clientv3.WithLease(lease))).Commit()
	if err != nil {
		return fmt.Errorf("etcd: put %q: %w", key, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("etcd: put %q: changed meanwhile; trying again", key)
	}
	return nil
}

// deregister deletes r's key if it carries the lease; the lease itself is
// revoked by close.
func (s *etcdSession) deregister(ctx context.Context, r *Registration) error {
	return s.set(ctx, r, false)
}

// close stops the keepalives, revokes the lease (deleting any key still
// attached to it) and closes the client.
func (s *etcdSession) close(ctx context.Context) error {
	s.stop()
	<-s.done
	s.mu.Lock()
	lease := s.lease
	s.mu.Unlock()
	var err error
	if lease != 0 {
		if _, err = s.cli.Revoke(ctx, lease); err != nil {
			err = fmt.Errorf("etcd: revoke lease %x: %w", lease, err)
		}
	}
	s.backend.Close()
	return err
}

// etcdValue is the value stored under r.Key: Value, or the JSON of the
// instance.
func (r *Registration) etcdValue() string {
	if r.Value != "" {
		return r.Value
	}
	v := struct {
		ID      string            `json:"id,omitempty"`
		Service string            `json:"service,omitempty"`
		Address string            `json:"address,omitempty"`
		Port    int               `json:"port,omitempty"`
		Tags    []string          `json:"tags,omitempty"`
		Meta    map[string]string `json:"meta,omitempty"`
	}{r.ID, r.Service, r.Address, r.Port, r.Tags, r.Meta}
	b, _ := json.Marshal(v)
	return string(b)
}

// forget makes the next set write r's key again.
func (s *etcdSession) forget(r *Registration) {
	s.mu.Lock()
	delete(s.applied, r.Key)
	s.mu.Unlock()
}
