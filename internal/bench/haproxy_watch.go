package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func init() {
	extraBenches = append(extraBenches,
		bench{"oneshot-haproxy-10k-etcd", benchOneshotHAProxyEtcd},
		bench{"etcd-watch-haproxy", benchEtcdWatchHAProxy})
}

// putHAProxy puts the 10,000 servers of the haproxy rows (20,000 keys under
// /hap/upstreams) into etcd, in transactions of 100 puts.
func putHAProxy(ctx context.Context, cli *clientv3.Client, servers int) error {
	for i := 0; i < servers; i += 50 {
		var ops []clientv3.Op
		for j := i; j < i+50; j++ {
			ops = append(ops,
				clientv3.OpPut(fmt.Sprintf("/hap/upstreams/srv%05d/addr", j), haproxyAddr(j)),
				clientv3.OpPut(fmt.Sprintf("/hap/upstreams/srv%05d/weight", j), fmt.Sprint(j%100+1)))
		}
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			return err
		}
	}
	return nil
}

// haproxyConfdir writes the one haproxy resource (prefix /hap) into a new
// temporary directory; rm removes it and is set even when err is not nil.
func haproxyConfdir() (dir, dest string, rm func(), err error) {
	dir, rm, err = tempDir()
	if err != nil {
		return "", "", func() {}, err
	}
	dest = filepath.Join(dir, "out", "haproxy.cfg")
	err = writeConfdir(dir, 1, func(int) string {
		return fmt.Sprintf("[template]\nsrc = \"haproxy.tmpl\"\ndest = %q\nprefix = \"/hap\"\nkeys = [\"/upstreams\"]\n", dest)
	}, map[string]string{"haproxy.tmpl": haproxyTemplate})
	return dir, dest, rm, err
}

// benchOneshotHAProxyEtcd: one-shot of haproxy.cfg for 10,000 servers read
// from etcd, where a list of that size lives in practice (the file row
// stays as oneshot-haproxy-10k).
func benchOneshotHAProxyEtcd() ([]row, error) {
	ctx := context.Background()
	s, cli, stop, err := startEtcd(ctx)
	if err != nil {
		return nil, err
	}
	defer stop()
	if err := putHAProxy(ctx, cli, 10000); err != nil {
		return nil, err
	}
	dir, _, rm, err := haproxyConfdir()
	defer rm()
	if err != nil {
		return nil, err
	}
	st, err := oneshot(*runsFlag, filepath.Join(dir, "out"), "-onetime", "-backend", "etcd", "-node", s.Endpoint(), "-confdir", dir, "-log-level", "warn")
	if err != nil {
		return nil, err
	}
	return oneshotRows("one-shot, haproxy.cfg with 10k servers, 20k keys (etcd)", "", "", "", "", st), nil
}

// benchEtcdWatchHAProxy: in watch mode, one haproxy.cfg of 10,000 servers
// (20k keys in etcd, the one-shot row's template); each change sets one
// server's weight, and the row is the time until the file shows it. It runs
// with confit's template executor and with text/template alone
// (-template-executor text), the same binary.
func benchEtcdWatchHAProxy() ([]row, error) {
	ctx := context.Background()
	s, cli, stop, err := startEtcd(ctx)
	if err != nil {
		return nil, err
	}
	defer stop()
	const servers = 10000
	if err := putHAProxy(ctx, cli, servers); err != nil {
		return nil, err
	}
	put := etcdPut(cli)
	changes := min(*changesFlag, 100)
	var rows []row
	for round, executor := range []string{"auto", "text"} {
		dir, dest, rm, err := haproxyConfdir()
		if err != nil {
			rm()
			return rows, err
		}
		rs, err := haproxyLatency(ctx, s.Endpoint(), put, dir, dest, executor, round, changes)
		rm()
		if err != nil {
			return rows, fmt.Errorf("-template-executor %s: %w", executor, err)
		}
		rows = append(rows, rs...)
	}
	return rows, nil
}

func haproxyAddr(i int) string {
	return fmt.Sprintf("10.%d.%d.%d:8080", i/65536, (i/256)%256, i%256)
}

// haproxyLatency starts a daemon on the confdir dir and times changes
// weight changes; round makes this run's weights differ from the last's.
func haproxyLatency(ctx context.Context, endpoint string, put putFunc, dir, dest, executor string, round, changes int) ([]row, error) {
	d, err := startDaemon(dir, "etcd-watch-haproxy-"+executor,
		"-watch", "-backend", "etcd", "-node", endpoint, "-confdir", dir, "-template-executor", executor)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	w, err := newDirWatch(filepath.Dir(dest))
	if err != nil {
		return nil, err
	}
	defer w.Close()
	last := []byte(fmt.Sprintf("server srv%05d %s ", 9999, haproxyAddr(9999)))
	if err := w.waitMatch(dest, func(b []byte) bool { return bytes.Contains(b, last) }, "every server", time.Now().Add(60*time.Second)); err != nil {
		return nil, fmt.Errorf("initial render: %w; log: %s", err, d.logTail())
	}
	cpu0, _ := procCPU(d.pid())
	lat := make([]time.Duration, 0, changes)
	for c := range changes {
		i := (c * 997) % 10000
		weight := fmt.Sprint(1000 + round*changes + c) // never set before
		want := []byte(fmt.Sprintf("server srv%05d %s weight %s check\n", i, haproxyAddr(i), weight))
		start := time.Now()
		if err := put(ctx, fmt.Sprintf("/hap/upstreams/srv%05d/weight", i), weight); err != nil {
			return nil, err
		}
		if err := w.waitMatch(dest, func(b []byte) bool { return bytes.Contains(b, want) }, fmt.Sprintf("%q", want), time.Now().Add(10*time.Second)); err != nil {
			return nil, fmt.Errorf("change %d: %w", c, err)
		}
		lat = append(lat, time.Since(start))
	}
	cpu1, _ := procCPU(d.pid())
	st, _ := os.Stat(dest)
	label := "etcd watch, haproxy.cfg with 10k servers (20k keys), -template-executor " + executor
	return []row{
		{label + ": change-to-file p50 / p99", fmtDur(pct(lat, 50)) + " / " + fmtDur(pct(lat, 99)), "",
			fmt.Sprintf("%d weight changes back to back; put → the file shows the new weight (inotify; each check reads the %d KB file)", len(lat), st.Size()/1024)},
		{label + ": daemon CPU per change", fmtDur((cpu1 - cpu0) / time.Duration(len(lat))), "", "utime+stime delta / changes"},
	}, nil
}
