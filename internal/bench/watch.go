package main

// Watch-mode measurements shared by the etcd and Consul rows: fixtures of n
// resources each reading one key, the change-to-file latency loop, and the
// idle and storm measurements.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

func init() {
	extraBenches = append(extraBenches,
		bench{"etcd-watch", benchEtcdWatch},
		bench{"etcd-oneshot-10k", benchEtcdOneshot},
		bench{"etcd-idle", benchEtcdIdle},
		bench{"etcd-storm", benchEtcdStorm},
		bench{"consul-watch", benchConsulWatch},
	)
}

// putFunc writes one key (absolute, "/a/b") to the store under test.
type putFunc func(ctx context.Context, key, value string) error

// valueFixture writes n resources into dir: resource i has prefix
// root/rNNN, reads its one key "/v" and renders "value = V\n" to
// dir/out/rNNN.conf. extra is appended to each resource's [template] table.
func valueFixture(dir, root string, n int, extra string) error {
	return writeConfdir(dir, n, func(i int) string {
		return fmt.Sprintf("[template]\nsrc = \"v.tmpl\"\ndest = %q\nprefix = %q\nkeys = [\"/\"]\nmode = \"0644\"\n%s",
			valueDest(dir, i), valueKeyPrefix(root, i), extra)
	}, map[string]string{"v.tmpl": "value = {{getv \"/v\"}}\n"})
}

func valueKeyPrefix(root string, i int) string { return fmt.Sprintf("%s/r%03d", root, i) }
func valueKey(root string, i int) string       { return valueKeyPrefix(root, i) + "/v" }
func valueDest(dir string, i int) string {
	return filepath.Join(dir, "out", fmt.Sprintf("r%03d.conf", i))
}
func valueContent(v string) []byte { return []byte("value = " + v + "\n") }

// seedValues puts the initial value of every resource's key and returns
// the files the daemon must render from them.
func seedValues(ctx context.Context, put putFunc, dir, root string, n int) (map[string][]byte, error) {
	want := map[string][]byte{}
	for i := range n {
		v := fmt.Sprintf("init-%d", i)
		if err := put(ctx, valueKey(root, i), v); err != nil {
			return nil, err
		}
		want[valueDest(dir, i)] = valueContent(v)
	}
	return want, nil
}

// waitInitial waits until the daemon rendered every seeded file.
func waitInitial(ctx context.Context, d *daemon, want map[string][]byte) error {
	if differ, took := waitFiles(ctx, want, 60*time.Second); differ > 0 {
		return fmt.Errorf("initial render: %d of %d files missing after %v; log: %s", differ, len(want), took, d.logTail())
	}
	return nil
}

// valueDaemon is the setup of a watch-mode measurement: n value resources
// (with the extra [template] lines) under root in a new directory, their keys seeded through put, a daemon
// named name started with args plus -confdir, and its first renders
// awaited. done stops the daemon and removes the directory; it is set
// even when err is not nil.
func valueDaemon(ctx context.Context, put putFunc, name, root string, n int, extra string, args []string) (d *daemon, dir string, done func(), err error) {
	dir, rm, err := tempDir()
	if err != nil {
		return nil, "", func() {}, err
	}
	done = rm
	if err := valueFixture(dir, root, n, extra); err != nil {
		return nil, dir, done, err
	}
	want, err := seedValues(ctx, put, dir, root, n)
	if err != nil {
		return nil, dir, done, err
	}
	d, err = startDaemon(dir, name, append(args[:len(args):len(args)], "-confdir", dir)...)
	if err != nil {
		return nil, dir, done, err
	}
	done = func() { d.stop(); rm() }
	return d, dir, done, waitInitial(ctx, d, want)
}

// timedChanges runs -changes back-to-back changes through latencyLoop and
// also measures the daemon's CPU (user+system) per change over them.
func timedChanges(ctx context.Context, d *daemon, put putFunc, dir, root string, n int) (lat, puts []time.Duration, cpuPerChange time.Duration, err error) {
	cpu0, _ := procCPUPrecise(d.pid())
	lat, puts, err = latencyLoop(ctx, put, dir, root, n, *changesFlag, 0, "c")
	if err != nil {
		return nil, nil, 0, err
	}
	cpu1, _ := procCPUPrecise(d.pid())
	return lat, puts, (cpu1 - cpu0) / time.Duration(len(lat)), nil
}

// latencyRun is a latency measurement of n value resources whose daemon
// still runs, for the rows a store adds after the common ones; done stops
// the daemon and removes its directory.
type latencyRun struct {
	d         *daemon
	dir, root string
	label     string
	rows      []row
	done      func()
}

// watchLatency starts n value resources under /latN (args are the daemon's
// backend arguments), makes -changes changes and returns the rows
// "<store> watch, N resource(s): change-to-file p50, p99, daemon CPU per
// change". goals are the p50 and p99 goals; peers, appended to the p50
// and p99 notes, what a peer measured ("; confd 2.0 ms"). run.done is set
// even when err is not nil.
func watchLatency(ctx context.Context, put putFunc, store string, args []string, n int, goals, peers [2]string) (*latencyRun, error) {
	run := &latencyRun{root: fmt.Sprintf("/lat%d", n), label: fmt.Sprintf("%s watch, %d resource(s)", store, n)}
	d, dir, done, err := valueDaemon(ctx, put, fmt.Sprintf("%s-watch-%d", store, n), run.root, n, "", args)
	run.d, run.dir, run.done = d, dir, done
	if err != nil {
		return run, err
	}
	lat, puts, cpuPerChange, err := timedChanges(ctx, d, put, dir, run.root, n)
	if err != nil {
		return run, err
	}
	run.rows = []row{
		{run.label + ": change-to-file p50", fmtDur(pct(lat, 50)), goals[0], fmt.Sprintf("put → destination seen (inotify), %d changes back to back; put round trip alone p50 %s%s", len(lat), fmtDur(pct(puts, 50)), peers[0])},
		{run.label + ": change-to-file p99", fmtDur(pct(lat, 99)), goals[1], fmt.Sprintf("max %s%s", fmtDur(pct(lat, 100)), peers[1])},
		{run.label + ": daemon CPU per change", fmtDur(cpuPerChange), "", "utime+stime delta / changes"},
	}
	return run, nil
}

// latencyLoop makes changes changes, cycling over the n resources, each a
// put followed by a wait until the destination holds the new value, then a
// pause of gap. It returns the time from just before each put to the file
// seen, and the put round trips alone (the floor).
func latencyLoop(ctx context.Context, put putFunc, dir, root string, n, changes int, gap time.Duration, tag string) (lat, puts []time.Duration, err error) {
	w, err := newDirWatch(filepath.Join(dir, "out"))
	if err != nil {
		return nil, nil, err
	}
	defer w.Close()
	lat = make([]time.Duration, 0, changes)
	for c := range changes {
		i := (c * 7) % n // spread over the resources
		v := fmt.Sprintf("%s-%d", tag, c)
		start := time.Now()
		if err := put(ctx, valueKey(root, i), v); err != nil {
			return nil, nil, err
		}
		puts = append(puts, time.Since(start))
		if err := w.waitContent(valueDest(dir, i), valueContent(v), time.Now().Add(10*time.Second)); err != nil {
			return nil, nil, fmt.Errorf("change %d: %w", c, err)
		}
		lat = append(lat, time.Since(start))
		if gap > 0 {
			time.Sleep(gap)
		}
	}
	return lat, puts, nil
}

// idleRows measures a daemon that has rendered and then sees no change for
// the -idle window.
func idleRows(label string, d *daemon) ([]row, error) {
	time.Sleep(time.Second) // let start-up work settle
	cpu0, err := procCPU(d.pid())
	if err != nil {
		return nil, err
	}
	var maxRSS int64
	end := time.Now().Add(*idleFlag)
	for time.Now().Before(end) {
		time.Sleep(min(time.Second, time.Until(end)))
		rss, _, err := procMem(d.pid())
		if err != nil {
			return nil, err
		}
		maxRSS = max(maxRSS, rss)
	}
	cpu1, err := procCPU(d.pid())
	if err != nil {
		return nil, err
	}
	rss, hwm, err := procMem(d.pid())
	if err != nil {
		return nil, err
	}
	cpu := cpu1 - cpu0
	return []row{
		{label + ": idle CPU", fmt.Sprintf("%s in %v (%.2f%%)", fmtDur(cpu), *idleFlag, 100*cpu.Seconds()/idleFlag.Seconds()),
			"~0", "utime+stime delta from /proc/PID/stat (10 ms ticks)"},
		{label + ": idle RSS", fmtMB(rss), "<= 15 MB", fmt.Sprintf("VmRSS at end (%s; max in window %s), VmHWM %s; confd 39 MB", rssSplit(d.pid()), fmtMB(maxRSS), fmtMB(hwm))},
	}, nil
}

// rssNow returns VmRSS, or 0.
func rssNow(pid int) int64 {
	rss, _, _ := procMem(pid)
	return rss
}

// tempDir makes a fixture directory; the returned func removes it.
func tempDir() (string, func(), error) {
	dir, err := os.MkdirTemp(*dirFlag, "confit-bench-")
	if err != nil {
		return "", nil, err
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}
