package main

// Rows measured against a real etcd (internal/testserver starts it).

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confit-dev/confit/internal/bench/promtext"
	"github.com/confit-dev/confit/internal/testserver"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// startEtcd starts a fresh etcd and a client to it; stop undoes both.
func startEtcd(ctx context.Context) (*testserver.EtcdServer, *clientv3.Client, func(), error) {
	s, err := testserver.StartEtcd(ctx, testserver.EtcdOptions{})
	if err != nil {
		return nil, nil, nil, err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		s.Close()
		return nil, nil, nil, err
	}
	return s, cli, func() { cli.Close(); s.Close() }, nil
}

func etcdPut(cli *clientv3.Client) putFunc {
	return func(ctx context.Context, key, value string) error {
		_, err := cli.Put(ctx, key, value)
		return err
	}
}

// etcdRanges returns the range requests etcd served so far: the gRPC
// counter for Range if etcd exports it, else etcd_mvcc_range_total.
func etcdRanges(s *testserver.EtcdServer) (float64, string, error) {
	m, err := scrape(s.Endpoint() + "/metrics")
	if err != nil {
		return 0, "", err
	}
	if v, ok := promtext.Sum(m, "grpc_server_handled_total", `grpc_method="Range"`); ok {
		return v, `grpc_server_handled_total{grpc_method="Range"}`, nil
	}
	if v, ok := promtext.Sum(m, "etcd_mvcc_range_total"); ok {
		return v, "etcd_mvcc_range_total", nil
	}
	return 0, "", fmt.Errorf("etcd /metrics: no range counter")
}

func etcdArgs(s *testserver.EtcdServer, dir string) []string {
	args := []string{"-watch", "-backend", "etcd", "-node", s.Endpoint()}
	if dir != "" {
		args = append(args, "-confdir", dir)
	}
	return args
}

// benchEtcdWatch: change-to-file latency with 1 and 200 resources, range
// requests during 100 changes, and renders and reloads per change.
func benchEtcdWatch() ([]row, error) {
	ctx := context.Background()
	s, cli, stop, err := startEtcd(ctx)
	if err != nil {
		return nil, err
	}
	defer stop()
	put := etcdPut(cli)
	var rows []row
	for _, n := range []int{1, 200} {
		rs, err := etcdLatency(ctx, s, put, n)
		if err != nil {
			return rows, fmt.Errorf("%d resources: %w", n, err)
		}
		rows = append(rows, rs...)
	}
	rs, err := rendersPerChange(ctx, put, etcdArgs(s, ""), "etcd")
	if err != nil {
		return rows, err
	}
	return append(rows, rs...), nil
}

func etcdLatency(ctx context.Context, s *testserver.EtcdServer, put putFunc, n int) ([]row, error) {
	run, err := watchLatency(ctx, put, "etcd", etcdArgs(s, ""), n, [2]string{"<= 1 ms", "<= 3 ms"}, [2]string{"; confd 2.0 ms", "; confd 3.2 ms"})
	defer run.done()
	if err != nil {
		return nil, err
	}
	d, dir, root, label, rows := run.d, run.dir, run.root, run.label, run.rows
	if n < 200 {
		return rows, nil
	}
	// Store reads during 100 changes, after the initial snapshot.
	m0, _ := d.counters()
	r0, metric, err := etcdRanges(s)
	if err != nil {
		return rows, err
	}
	if _, _, err := latencyLoop(ctx, put, dir, root, n, 100, 0, "r"); err != nil {
		return rows, err
	}
	r1, _, err := etcdRanges(s)
	if err != nil {
		return rows, err
	}
	m1, _ := d.counters()
	gets := m1["confit_store_gets_total"] - m0["confit_store_gets_total"]
	rows = append(rows, row{label + ": etcd range requests during 100 changes", fmt.Sprintf("%.0f", r1-r0), "0",
		fmt.Sprintf("etcd %s delta; confit_store_gets_total +%.0f; confd re-reads every key per event", metric, gets)})
	rss, hwm, _ := procMem(d.pid())
	rows = append(rows, row{label + ": RSS after the changes", fmtMB(rss), "<= 15 MB", rssSplit(d.pid()) + ", VmHWM " + fmtMB(hwm)})
	return rows, nil
}

// rendersPerChange runs 200 resources with a reload_cmd each and counts, per
// single-key change, the renders and reload commands confit reports.
// args are the daemon's backend arguments; -confdir is appended.
func rendersPerChange(ctx context.Context, put putFunc, args []string, store string) ([]row, error) {
	const n, changes = 200, 50
	root := "/rpc"
	d, dir, done, err := valueDaemon(ctx, put, store+"-renders", root, n, "reload_cmd = \"true\"\n", args)
	defer done()
	if err != nil {
		return nil, err
	}
	// The initial batch's reload commands finish after the files appear.
	if err := waitCounter(d, "confit_reloads_total", 1, 30*time.Second); err != nil {
		return nil, err
	}
	time.Sleep(500 * time.Millisecond)
	m0, err := d.counters()
	if err != nil {
		return nil, err
	}
	if _, _, err := latencyLoop(ctx, put, dir, root, n, changes, 0, "p"); err != nil {
		return nil, err
	}
	if err := waitCounter(d, "confit_writes_total", m0["confit_writes_total"]+changes, 10*time.Second); err != nil {
		return nil, err
	}
	time.Sleep(500 * time.Millisecond) // any extra render would show now
	m1, err := d.counters()
	if err != nil {
		return nil, err
	}
	per := func(name string) float64 { return (m1[name] - m0[name]) / changes }
	label := fmt.Sprintf("%s watch, 200 resources", store)
	return []row{
		{label + ": renders per single-key change", fmt.Sprintf("%.2f", per("confit_renders_total")), "1",
			fmt.Sprintf("confit_renders_total over %d changes; consul-template 200", changes)},
		{label + ": reload commands per single-key change", fmt.Sprintf("%.2f", per("confit_reloads_total")), "1",
			fmt.Sprintf("confit_reloads_total; writes %.2f", per("confit_writes_total"))},
	}, nil
}

// waitCounter waits until counter >= want.
func waitCounter(d *daemon, counter string, want float64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		m, err := d.counters()
		if err == nil && m[counter] >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s = %v, want >= %v after %v", counter, m[counter], want, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// getsConfdir writes n resources into a new directory: resource i renders
// tmpl (which lists its keys with gets) over the keys under prefix(i) to
// out/<last element of prefix(i)>.conf. rm removes the directory; it is
// set even when err is not nil.
func getsConfdir(n int, prefix func(i int) string, tmpl string) (dir string, rm func(), err error) {
	dir, rm, err = tempDir()
	if err != nil {
		return "", func() {}, err
	}
	err = writeConfdir(dir, n, func(i int) string {
		return fmt.Sprintf("[template]\nsrc = \"gets.tmpl\"\ndest = %q\nprefix = %q\nkeys = [\"/\"]\nmode = \"0644\"\n",
			filepath.Join(dir, "out", path.Base(prefix(i))+".conf"), prefix(i))
	}, map[string]string{"gets.tmpl": tmpl})
	return dir, rm, err
}

// benchEtcdOneshot: one-shot of 200 resources over 10k keys in etcd.
func benchEtcdOneshot() ([]row, error) {
	ctx := context.Background()
	s, cli, stop, err := startEtcd(ctx)
	if err != nil {
		return nil, err
	}
	defer stop()
	const n, perRes = 200, 50
	dir, rm, err := getsConfdir(n, func(i int) string { return fmt.Sprintf("/apps/app%03d", i) },
		"# app\n{{range gets \"/*\"}}{{base .Key}} = \"{{.Value}}\"\n{{end}}")
	defer rm()
	if err != nil {
		return nil, err
	}
	// 10,000 keys in transactions of 100 puts.
	for i := range n {
		for half := range 2 {
			var ops []clientv3.Op
			for j := half * perRes / 2; j < (half+1)*perRes/2; j++ {
				ops = append(ops, clientv3.OpPut(fmt.Sprintf("/apps/app%03d/key%02d", i, j), fmt.Sprintf("value-%d-%d-%s", i, j, strings.Repeat("x", 20))))
			}
			if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
				return nil, err
			}
		}
	}
	st, err := oneshot(*runsFlag, filepath.Join(dir, "out"), "-onetime", "-backend", "etcd", "-node", s.Endpoint(), "-confdir", dir, "-log-level", "warn")
	if err != nil {
		return nil, err
	}
	return oneshotRows("one-shot from etcd, 200 resources, 10k keys", "", "<= 15 MB", "", "rusage maxrss of the child", st), nil
}

// benchEtcdIdle: 200 resources in watch mode doing nothing.
func benchEtcdIdle() ([]row, error) {
	ctx := context.Background()
	s, cli, stop, err := startEtcd(ctx)
	if err != nil {
		return nil, err
	}
	defer stop()
	d, _, done, err := valueDaemon(ctx, etcdPut(cli), "etcd-idle", "/idle", 200, "", etcdArgs(s, ""))
	defer done()
	if err != nil {
		return nil, err
	}
	return idleRows("etcd watch, 200 resources", d)
}

// benchEtcdStorm: -storm-rate updates/s for -storm-for over -storm-keys keys
// read by 200 resources; then the files must converge to the store.
func benchEtcdStorm() ([]row, error) {
	ctx := context.Background()
	s, cli, stop, err := startEtcd(ctx)
	if err != nil {
		return nil, err
	}
	defer stop()
	const n = 200
	keys := *stormKeys
	key := func(k int) string { return fmt.Sprintf("/storm/r%03d/k%04d", k%n, k) }
	dir, rm, err := getsConfdir(n, func(i int) string { return fmt.Sprintf("/storm/r%03d", i) },
		"{{range gets \"/*\"}}{{base .Key}}={{.Value}}\n{{end}}")
	defer rm()
	if err != nil {
		return nil, err
	}
	for k := range keys {
		if _, err := cli.Put(ctx, key(k), "init"); err != nil {
			return nil, err
		}
	}
	d, err := startDaemon(dir, "etcd-storm", etcdArgs(s, dir)...)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	expect := func() (map[string][]byte, error) {
		resp, err := cli.Get(ctx, "/storm/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
		if err != nil {
			return nil, err
		}
		var b [n]strings.Builder
		for _, kv := range resp.Kvs {
			var r, k int
			fmt.Sscanf(string(kv.Key), "/storm/r%03d/k%04d", &r, &k)
			fmt.Fprintf(&b[r], "k%04d=%s\n", k, kv.Value)
		}
		want := map[string][]byte{}
		for i := range n {
			want[filepath.Join(dir, "out", fmt.Sprintf("r%03d.conf", i))] = []byte(b[i].String())
		}
		return want, nil
	}
	want, err := expect()
	if err != nil {
		return nil, err
	}
	if err := waitInitial(ctx, d, want); err != nil {
		return nil, err
	}
	time.Sleep(500 * time.Millisecond)
	rssStart := rssNow(d.pid())
	m0, _ := d.counters()
	cpu0, _ := procCPU(d.pid())

	// Two storms: memory that grows from the first to the second is a leak;
	// growth during the first alone is the heap sizing itself to the load.
	var (
		sent, failed int64
		rssMax       int64
		elapsed      time.Duration
		rssAfter     []int64
	)
	for round := range 2 {
		st := storm(ctx, cli, d.pid(), key, keys, round)
		sent, failed, elapsed = sent+st.sent, failed+st.failed, elapsed+st.elapsed
		rssMax = max(rssMax, st.rssMax)
		rssAfter = append(rssAfter, rssNow(d.pid()))
	}
	want, err = expect()
	if err != nil {
		return nil, err
	}
	differ, took := waitFiles(ctx, want, 60*time.Second)
	cpu1, _ := procCPU(d.pid())
	m1, _ := d.counters()
	time.Sleep(2 * time.Second) // let the runtime return what the storm used
	rssEnd := rssNow(d.pid())
	_, hwm, _ := procMem(d.pid())
	verdict := fmt.Sprintf("equal (converged %s after the storm)", fmtDur(took))
	if differ > 0 {
		verdict = fmt.Sprintf("DIFFERENT: %d of %d files after %s", differ, n, fmtDur(took))
	}
	label := fmt.Sprintf("etcd storm, %d/s for %v over %d keys, 200 resources", *stormRate, *stormFor, keys)
	return []row{
		{label + ": final files vs final store", verdict, "equal",
			fmt.Sprintf("2 storms: %d puts in %s (%.0f/s achieved, %d failed); renders +%.0f, writes +%.0f, watch updates +%.0f; CPU %s",
				sent, fmtDur(elapsed), float64(sent)/elapsed.Seconds(), failed,
				m1["confit_renders_total"]-m0["confit_renders_total"], m1["confit_writes_total"]-m0["confit_writes_total"],
				m1["confit_watch_updates_total"]-m0["confit_watch_updates_total"], fmtDur(cpu1-cpu0))},
		{label + ": RSS start → storm 1 → storm 2 → 2 s later", fmt.Sprintf("%s → %s → %s → %s", fmtMB(rssStart), fmtMB(rssAfter[0]), fmtMB(rssAfter[1]), fmtMB(rssEnd)), "flat",
			fmt.Sprintf("two storms back to back; max sampled %s, VmHWM %s", fmtMB(rssMax), fmtMB(hwm))},
	}, nil
}

type stormResult struct {
	sent, failed, rssMax int64
	elapsed              time.Duration
}

// storm puts at -storm-rate for -storm-for. Writers own disjoint keys, so
// each key's last put is its final value.
func storm(ctx context.Context, cli *clientv3.Client, pid int, key func(int) string, keys, round int) stormResult {
	const writers = 32
	var (
		sent, failed, rssMax atomic.Int64
		wg                   sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(*stormFor)
	perWriter := time.Duration(float64(time.Second) * writers / float64(*stormRate))
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ; seq++ {
				at := start.Add(time.Duration(seq) * perWriter)
				if at.After(end) {
					return
				}
				if d := time.Until(at); d > 0 {
					time.Sleep(d)
				}
				k := w + writers*(seq%(keys/writers))
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := cli.Put(pctx, key(k), fmt.Sprintf("r%d-w%d-s%d", round, w, seq))
				cancel()
				if err != nil {
					failed.Add(1)
					continue
				}
				sent.Add(1)
			}
		}()
	}
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for time.Now().Before(end) {
			rssMax.Store(max(rssMax.Load(), rssNow(pid)))
			time.Sleep(250 * time.Millisecond)
		}
	}()
	wg.Wait()
	<-sampled
	return stormResult{sent: sent.Load(), failed: failed.Load(), rssMax: rssMax.Load(), elapsed: time.Since(start)}
}
