package main

// Register mode's load on etcd: N instances, each with its own register
// runner (its own etcd client, connection and lease, as N sidecars would
// have), simulated in this one process.

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confit-dev/confit/backends"
	_ "github.com/confit-dev/confit/backends/consul"
	_ "github.com/confit-dev/confit/backends/etcd"
	"github.com/confit-dev/confit/internal/bench/promtext"
	"github.com/confit-dev/confit/internal/testserver"
	"github.com/confit-dev/confit/register"
	"github.com/hashicorp/consul/api"
	clientv3 "go.etcd.io/etcd/client/v3"
)

var registerWindow = flag.Duration("register-window", 30*time.Second, "register: steady-state window per N (-quick: 12s)")

func init() {
	extraBenches = append(extraBenches, bench{"register-etcd", benchRegisterEtcd}, bench{"register-consul", benchRegisterConsul})
}

// benchRegisterEtcd: for N = 1, 100 and 1,000 registered instances, the
// keepalives per second etcd receives, the other requests in steady state,
// the client connections, and how long registering and deregistering all
// of them takes.
func benchRegisterEtcd() ([]row, error) {
	if *quickFlag {
		set := false
		flag.Visit(func(f *flag.Flag) { set = set || f.Name == "register-window" })
		if !set {
			*registerWindow = 12 * time.Second
		}
	}
	ctx := context.Background()
	s, cli, stop, err := startEtcd(ctx)
	if err != nil {
		return nil, err
	}
	defer stop()
	// The checked service: one TCP listener every instance checks.
	l, err := testserver.TCPService()
	if err != nil {
		return nil, err
	}
	defer l.Close()
	port, err := strconv.Atoi(s.Endpoint()[len("http://127.0.0.1:"):])
	if err != nil {
		return nil, err
	}
	var rows []row
	for _, n := range []int{1, 100, 1000} {
		r, err := registerLoad(ctx, s, cli, port, l.Addr().String(), n)
		if err != nil {
			return rows, fmt.Errorf("n=%d: %w", n, err)
		}
		rows = append(rows, r...)
	}
	return rows, nil
}

func registerLoad(ctx context.Context, s *testserver.EtcdServer, cli *clientv3.Client, port int, target string, n int) ([]row, error) {
	const ttl = register.DefaultTTL
	spec := backends.Spec{Backend: "etcd", Settings: backends.Settings{"node": {s.Endpoint()}}}
	warns := &countingHandler{}
	log := slog.New(warns)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	if _, err := cli.Get(ctx, "/bench/register/", clientv3.WithCountOnly()); err != nil {
		return nil, err // the bench's own client, connected before base
	}
	base, err := connsTo(os.Getpid(), port)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	for i := range n {
		r, err := register.New([]*register.Registration{{
			Name: "bench", Key: fmt.Sprintf("/bench/register/%d", i), Value: target,
			Check: register.Check{TCP: target, Interval: 5 * time.Second, Timeout: time.Second, Rise: 1, Fall: 2},
			TTL:   ttl, Drain: -1,
		}}, register.Options{Backend: spec, Logger: log})
		if err != nil {
			return nil, err
		}
		wg.Go(func() { _ = r.Run(rctx) })
	}
	count := func() (int64, error) {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		resp, err := cli.Get(cctx, "/bench/register/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return 0, err
		}
		return resp.Count, nil
	}
	if err := waitKeys(count, int64(n), 2*time.Minute); err != nil {
		return nil, fmt.Errorf("registering: %w", err)
	}
	registered := time.Since(start)

	// Steady state: keepalives and other requests over the window.
	warns0 := warns.n.Load()
	before, err := etcdRequests(s)
	if err != nil {
		return nil, err
	}
	cpu0, err := procCPU(s.Process().PID())
	if err != nil {
		return nil, err
	}
	time.Sleep(*registerWindow)
	after, err := etcdRequests(s)
	if err != nil {
		return nil, err
	}
	cpu1, err := procCPU(s.Process().PID())
	if err != nil {
		return nil, err
	}
	conns, err := connsTo(os.Getpid(), port)
	if err != nil {
		return nil, err
	}
	conns -= base
	warned := warns.n.Load() - warns0
	secs := registerWindow.Seconds()
	kaRate := (after.keepalives - before.keepalives) / secs
	other := (after.txns + after.puts + after.deletes) - (before.txns + before.puts + before.deletes)

	start = time.Now()
	cancel()
	wg.Wait()
	if err := waitKeys(count, 0, time.Minute); err != nil {
		return nil, fmt.Errorf("deregistering: %w", err)
	}
	gone := time.Since(start)
	what := fmt.Sprintf("register, N=%d etcd instances (TTL %v)", n, ttl)
	return []row{
		{what + ": keepalives/s at etcd", fmt.Sprintf("%.1f", kaRate), fmt.Sprintf("≈ N/(TTL/3) = %.1f", float64(n)/(ttl.Seconds()/3)),
			fmt.Sprintf("%s over %v; one lease per process", before.source, *registerWindow)},
		{what + ": etcd CPU", fmt.Sprintf("%.1f %%", 100*(cpu1-cpu0).Seconds()/secs), "", "etcd's user+sys CPU over the window, of one core"},
		{what + ": other writes in steady state", fmt.Sprintf("%.0f", other), "0", fmt.Sprintf("txn/put/delete requests in the window: nothing re-written while healthy (%d store warnings logged in the window: lost leases, failed requests)", warned)},
		{what + ": client connections", strconv.Itoa(conns), "N", "one per simulated process (established TCP to etcd)"},
		{what + ": all registered", fmtDur(registered), "", "from start to N keys present (first check, rise 1, lease grant, txn)"},
		{what + ": all deregistered", fmtDur(gone), "", "from SIGTERM-equivalent to 0 keys (delete, lease revoke; drain 0)"},
	}, nil
}

func waitKeys(count func() (int64, error), want int64, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var got int64
	for time.Now().Before(deadline) {
		c, err := count()
		if err == nil && c == want {
			return nil
		}
		got = c
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%d keys, want %d after %v", got, want, limit)
}

// etcdReqs are request counters scraped from etcd's /metrics.
type etcdReqs struct {
	keepalives, txns, puts, deletes float64
	source                          string
}

func etcdRequests(s *testserver.EtcdServer) (etcdReqs, error) {
	m, err := scrape(s.Endpoint() + "/metrics")
	if err != nil {
		return etcdReqs{}, err
	}
	var r etcdReqs
	ka, ok := promtext.Sum(m, "grpc_server_msg_received_total", `grpc_method="LeaseKeepAlive"`)
	if !ok {
		return r, fmt.Errorf("etcd /metrics: no grpc_server_msg_received_total for LeaseKeepAlive")
	}
	r.keepalives = ka
	r.source = `grpc_server_msg_received_total{grpc_method="LeaseKeepAlive"}`
	r.txns, _ = promtext.Sum(m, "grpc_server_handled_total", `grpc_method="Txn"`)
	r.puts, _ = promtext.Sum(m, "grpc_server_handled_total", `grpc_method="Put"`)
	r.deletes, _ = promtext.Sum(m, "grpc_server_handled_total", `grpc_method="DeleteRange"`)
	return r, nil
}

// benchRegisterConsul: N registrations with the local agent, in one
// confit process (a node's agent sees only its own node's instances; N
// sidecars on one host would also exceed the agent's 200 connections per
// client address). Heartbeats stay on the agent: the raft log of the
// servers should not grow in steady state.
func benchRegisterConsul() ([]row, error) {
	ctx := context.Background()
	s, err := testserver.StartConsul(ctx, testserver.ConsulOptions{Dev: true})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr()
	cli, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	l, err := testserver.TCPService()
	if err != nil {
		return nil, err
	}
	defer l.Close()
	target := l.Addr().String()
	raftIndex := func() (float64, error) {
		self, err := cli.Agent().Self()
		if err != nil {
			return 0, err
		}
		v, _ := self["Stats"]["raft"].(map[string]any)["last_log_index"].(string)
		return strconv.ParseFloat(v, 64)
	}
	spec := backends.Spec{Backend: "consul", Settings: backends.Settings{"node": {s.Addr()}}}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	const ttl = register.DefaultTTL
	var rows []row
	for _, n := range []int{1, 100, 1000} {
		regs := make([]*register.Registration, n)
		for i := range regs {
			regs[i] = &register.Registration{Name: "bench", Service: "bench", ID: fmt.Sprintf("bench-%d", i),
				Address: "127.0.0.1", Port: 1000 + i,
				Check: register.Check{TCP: target, Interval: 5 * time.Second, Timeout: time.Second, Rise: 1, Fall: 2},
				TTL:   ttl, Drain: -1}
		}
		r, err := register.New(regs, register.Options{Backend: spec, Logger: log})
		if err != nil {
			return rows, err
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		start := time.Now()
		go func() { defer close(done); _ = r.Run(rctx) }()
		passing := func() (int64, error) {
			entries, _, err := cli.Health().Service("bench", "", true, nil)
			return int64(len(entries)), err
		}
		if err := waitKeys(passing, int64(n), 5*time.Minute); err != nil {
			cancel()
			<-done
			return rows, fmt.Errorf("n=%d: registering: %w", n, err)
		}
		registered := time.Since(start)
		time.Sleep(2 * time.Second) // the registrations' own catalog syncs
		idx0, err := raftIndex()
		if err != nil {
			cancel()
			<-done
			return rows, err
		}
		cpu0, _ := procCPU(s.Process().PID())
		time.Sleep(*registerWindow)
		idx1, _ := raftIndex()
		cpu1, _ := procCPU(s.Process().PID())
		cancel()
		<-done
		secs := registerWindow.Seconds()
		what := fmt.Sprintf("register, N=%d Consul instances, one agent (TTL %v)", n, ttl)
		rows = append(rows,
			row{what + ": heartbeats/s to the agent", fmt.Sprintf("%.1f", float64(n)/(ttl.Seconds()/3)), "", "N/(TTL/3) TTL-check passes, all local to the agent"},
			row{what + ": raft log entries in steady state", fmt.Sprintf("%.0f", idx1-idx0), "0", fmt.Sprintf("last_log_index over %v: heartbeats with a constant note cost the servers nothing", *registerWindow)},
			row{what + ": agent CPU", fmt.Sprintf("%.1f %%", 100*(cpu1-cpu0).Seconds()/secs), "", "the dev agent (also the server), of one core"},
			row{what + ": all passing", fmtDur(registered), "", "from start to N passing instances (one client: registrations queue on its 2 agent connections)"},
		)
	}
	return rows, nil
}

// countingHandler counts the warnings register mode logs (lost leases,
// failing requests) and discards every record.
type countingHandler struct{ n atomic.Int64 }

func (h *countingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *countingHandler) Handle(context.Context, slog.Record) error    { h.n.Add(1); return nil }
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *countingHandler) WithGroup(string) slog.Handler                { return h }
