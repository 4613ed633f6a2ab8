package main

// Rows measured against a real ZooKeeper (internal/testserver starts it),
// the same shapes as the etcd watch rows.

import (
	"context"
	"fmt"
	"time"

	"github.com/confit-dev/confit/internal/bench/promtext"
	"github.com/confit-dev/confit/internal/testserver"
	"github.com/go-zookeeper/zk"
)

func init() {
	extraBenches = append(extraBenches, bench{"zookeeper-watch", benchZooKeeperWatch})
}

// zkPut sets key, creating it and its missing parents.
func zkPut(conn *zk.Conn) putFunc {
	return func(ctx context.Context, key, value string) error { return testserver.ZooKeeperPut(conn, key, value) }
}

// benchZooKeeperWatch: change-to-file latency with 1 and 200 resources,
// daemon CPU per change, ZooKeeper requests and re-lists per change, RSS.
func benchZooKeeperWatch() ([]row, error) {
	ctx := context.Background()
	s, err := testserver.StartZooKeeper(ctx, testserver.ZooKeeperOptions{})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	conn, _, err := zk.Connect([]string{s.Addr()}, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(nopLogger{}))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	put := zkPut(conn)
	// The JVM compiles ZooKeeper's request path as it runs: warm it up
	// so that the first row does not measure the JIT.
	for i := range 2000 {
		if err := put(ctx, "/warmup", fmt.Sprint(i)); err != nil {
			return nil, err
		}
	}
	args := []string{"-watch", "-backend", "zookeeper", "-node", s.Addr()}
	var rows []row
	for _, n := range []int{1, 200} {
		rs, err := zkLatency(ctx, s, put, args, n)
		if err != nil {
			return rows, fmt.Errorf("%d resources: %w", n, err)
		}
		rows = append(rows, rs...)
	}
	rs, err := zkSharedPrefix(ctx, s, conn, put, args)
	if err != nil {
		return rows, fmt.Errorf("one prefix: %w", err)
	}
	rows = append(rows, rs...)
	rs, err = rendersPerChange(ctx, put, args, "zookeeper")
	if err != nil {
		return rows, err
	}
	return append(rows, rs...), nil
}

// zkSharedPrefix: 200 resources reading one prefix of about 3,000 znodes
// (the shape of confd #550/#551), each rendering its own key: what a change
// costs when the watched prefix is large.
func zkSharedPrefix(ctx context.Context, s *testserver.ZooKeeperServer, conn *zk.Conn, put putFunc, args []string) ([]row, error) {
	const n, fill, root = 200, 2800, "/big"
	dir, rm, err := tempDir()
	if err != nil {
		return nil, err
	}
	defer rm()
	templates := map[string]string{}
	for i := range n {
		templates[fmt.Sprintf("t%03d.tmpl", i)] = fmt.Sprintf("value = {{getv \"/r%03d/v\"}}\n", i)
	}
	err = writeConfdir(dir, n, func(i int) string {
		return fmt.Sprintf("[template]\nsrc = \"t%03d.tmpl\"\ndest = %q\nprefix = %q\nkeys = [\"/\"]\nmode = \"0644\"\n", i, valueDest(dir, i), root)
	}, templates)
	if err != nil {
		return nil, err
	}
	want, err := seedValues(ctx, put, dir, root, n)
	if err != nil {
		return nil, err
	}
	if err := put(ctx, root+"/fill/k0000", "x"); err != nil {
		return nil, err
	}
	var ops []any
	for k := 1; k < fill; k++ {
		ops = append(ops, &zk.CreateRequest{Path: fmt.Sprintf("%s/fill/k%04d", root, k), Data: []byte("x"), Acl: zk.WorldACL(zk.PermAll)})
		if len(ops) == 100 || k == fill-1 {
			if _, err := conn.Multi(ops...); err != nil {
				return nil, err
			}
			ops = nil
		}
	}
	d, err := startDaemon(dir, "zookeeper-watch-one-prefix", append(args[:len(args):len(args)], "-confdir", dir)...)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	if err := waitInitial(ctx, d, want); err != nil {
		return nil, err
	}
	// The files are rendered from the first read; the watch then loads
	// the prefix, setting a data and a child watch per znode.
	znodes := 2 + 2*n + fill
	if err := zkWaitWatches(ctx, s, 2*znodes, 60*time.Second); err != nil {
		return nil, err
	}
	m0, err := d.counters()
	if err != nil {
		return nil, err
	}
	w0, err := s.Watches(ctx)
	if err != nil {
		return nil, err
	}
	lat, puts, cpuPerChange, err := timedChanges(ctx, d, put, dir, root, n)
	if err != nil {
		return nil, err
	}
	m1, err := d.counters()
	if err != nil {
		return nil, err
	}
	w1, err := s.Watches(ctx)
	if err != nil {
		return nil, err
	}
	reads, relists := counterDelta(m0, m1, "confit_backend_reads_total"), counterDelta(m0, m1, "confit_backend_relists_total")
	label := fmt.Sprintf("zookeeper watch, %d resources on one prefix of %d znodes", n, znodes)
	rss, hwm, _ := procMem(d.pid())
	return []row{
		{label + ": change-to-file p50", fmtDur(pct(lat, 50)), "", fmt.Sprintf("%d changes back to back; set round trip alone p50 %s", len(lat), fmtDur(pct(puts, 50)))},
		{label + ": change-to-file p99", fmtDur(pct(lat, 99)), "", fmt.Sprintf("max %s", fmtDur(pct(lat, 100)))},
		{label + ": daemon CPU per change", fmtDur(cpuPerChange), "", "utime+stime delta / changes"},
		{label + ": ZooKeeper requests per change", fmt.Sprintf("%.2f", reads/float64(len(lat))), "1",
			fmt.Sprintf("confit_backend_reads_total +%.0f; re-lists +%.0f; server watches (mntr) %d before, %d after", reads, relists, w0, w1)},
		{label + ": RSS after the changes", fmtMB(rss), "", rssSplit(d.pid()) + ", VmHWM " + fmtMB(hwm)},
	}, nil
}

// zkWaitWatches waits until the server holds want watches.
func zkWaitWatches(ctx context.Context, s *testserver.ZooKeeperServer, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n, err := s.Watches(ctx)
		if err == nil && n == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server watches: %d, want %d after %v (err %v)", n, want, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// counterDelta is the increase of metric (summed over its series) from m0
// to m1.
func counterDelta(m0, m1 map[string]float64, metric string) float64 {
	a, _ := promtext.Sum(m0, metric)
	b, _ := promtext.Sum(m1, metric)
	return b - a
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}

func zkLatency(ctx context.Context, s *testserver.ZooKeeperServer, put putFunc, args []string, n int) ([]row, error) {
	run, err := watchLatency(ctx, put, "zookeeper", args, n, [2]string{"<= 1.5x etcd's", ""}, [2]string{})
	defer run.done()
	if err != nil {
		return nil, err
	}
	d, dir, root, label, rows := run.d, run.dir, run.root, run.label, run.rows
	if n < 200 {
		return rows, nil
	}
	// Requests to ZooKeeper during 100 changes, after the initial load.
	const changes = 100
	m0, err := d.counters()
	if err != nil {
		return rows, err
	}
	w0, err := s.Watches(ctx)
	if err != nil {
		return rows, err
	}
	if _, _, err := latencyLoop(ctx, put, dir, root, n, changes, 0, "r"); err != nil {
		return rows, err
	}
	m1, err := d.counters()
	if err != nil {
		return rows, err
	}
	w1, err := s.Watches(ctx)
	if err != nil {
		return rows, err
	}
	delta := func(name string) float64 { return counterDelta(m0, m1, name) }
	reads, relists := delta("confit_backend_reads_total"), delta("confit_backend_relists_total")
	rows = append(rows,
		row{label + ": ZooKeeper requests per change", fmt.Sprintf("%.2f", reads/changes), "1",
			fmt.Sprintf("confit_backend_reads_total +%.0f over %d changes (a GetW of the changed znode, re-arming its watch); confit_store_gets_total +%.0f", reads, changes, delta("confit_store_gets_total"))},
		row{label + ": re-lists during the changes", fmt.Sprintf("%.0f", relists), "0",
			fmt.Sprintf("confit_backend_relists_total; server watches (mntr zk_watch_count) %d before, %d after", w0, w1)})
	rss, hwm, _ := procMem(d.pid())
	rows = append(rows, row{label + ": RSS after the changes", fmtMB(rss), "<= 15 MB", rssSplit(d.pid()) + ", VmHWM " + fmtMB(hwm)})
	return rows, nil
}
