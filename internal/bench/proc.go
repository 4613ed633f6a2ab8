package main

// Helpers for the watch-mode benchmarks: a confit daemon driven from
// outside, its Prometheus counters, its CPU and memory from /proc, its TCP
// connections, and an inotify watcher that sees a destination change.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/confit-dev/confit/internal/bench/promtext"
	"github.com/confit-dev/confit/internal/testserver"
)

var (
	quickFlag   = flag.Bool("quick", false, "shorter windows and fewer changes (a few minutes in all)")
	idleFlag    = flag.Duration("idle", 60*time.Second, "idle measurement window (-quick: 10s)")
	changesFlag = flag.Int("changes", 300, "changes per latency measurement (-quick: 200)")
	stormRate   = flag.Int("storm-rate", 10000, "storm: updates per second (-quick: 3000)")
	stormFor    = flag.Duration("storm-for", 30*time.Second, "storm: duration (-quick: 5s)")
	stormKeys   = flag.Int("storm-keys", 1000, "storm: distinct keys (200 resources share them)")
	dirFlag     = flag.String("dir", "", "parent directory of the watch-mode fixtures and destinations (default $TMPDIR; e.g. /dev/shm to take the disk out of the figures)")
	profileDir  = flag.String("profile", "", "write CPU and allocation profiles of each daemon to this directory")
)

// quick applies -quick to the flags the user did not set.
func quick() {
	if !*quickFlag {
		return
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	def := func(name string, apply func()) {
		if !set[name] {
			apply()
		}
	}
	def("idle", func() { *idleFlag = 10 * time.Second })
	def("changes", func() { *changesFlag = 200 })
	def("storm-rate", func() { *stormRate = 3000 })
	def("storm-for", func() { *stormFor = 5 * time.Second })
	def("runs", func() { *runsFlag = 5 })
}

// daemon is a confit -watch process.
type daemon struct {
	p       *testserver.Process
	metrics string // "http://127.0.0.1:PORT"
}

// startDaemon runs confit with args plus -metrics-addr and -log-level warn,
// and returns once its metrics endpoint answers; its log goes to
// dir/confit.log. With -profile, name names its profiles.
func startDaemon(dir, name string, args ...string) (*daemon, error) {
	port, err := testserver.FreePort()
	if err != nil {
		return nil, err
	}
	d := &daemon{metrics: fmt.Sprintf("http://127.0.0.1:%d", port)}
	env := []string{"CONFIT_CONFIG_FILE=" + os.DevNull}
	if *profileDir != "" {
		env = append(env,
			"CONFIT_CPUPROFILE="+filepath.Join(*profileDir, name+".cpu.pprof"),
			"CONFIT_MEMPROFILE="+filepath.Join(*profileDir, name+".mem.pprof"))
	}
	d.p = &testserver.Process{
		Name:    "confit",
		Path:    *binFlag,
		Args:    append(args, "-metrics-addr", fmt.Sprintf("127.0.0.1:%d", port), "-log-level", "warn"),
		Env:     env,
		LogPath: filepath.Join(dir, "confit.log"),
		Ready: func(context.Context) error {
			_, err := d.counters()
			return err
		},
		ReadyTimeout: 10 * time.Second,
		StopTimeout:  10 * time.Second, // SIGTERM writes the profiles
	}
	if err := d.p.Start(context.Background()); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *daemon) pid() int { return d.p.PID() }

func (d *daemon) logTail() string { return d.p.LogTail(40) }

// stop sends SIGTERM (which writes the profiles), then SIGKILL after 10 s.
func (d *daemon) stop() { d.p.Stop() }

// counters scrapes /metrics into name -> value (labels kept in the name).
func (d *daemon) counters() (map[string]float64, error) {
	return scrape(d.metrics + "/metrics")
}

// scrape reads a Prometheus text exposition into series -> value.
func scrape(url string) (map[string]float64, error) {
	return promtext.Scrape(context.Background(), url)
}

// procCPU returns the process's user+system CPU time (all threads).
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after "(comm)": state is field 3; utime 14, stime 15.
	i := bytes.LastIndexByte(data, ')')
	f := strings.Fields(string(data[i+2:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz, nil
}

// procCPUPrecise is procCPU to the nanosecond: the sum over the process's
// threads of the time they ran (/proc/PID/task/*/schedstat), where procCPU
// counts 10 ms clock ticks (50 µs per change over 200 changes). A thread
// that ends in between takes its time with it (the Go runtime keeps its
// threads). It falls back to procCPU.
func procCPUPrecise(pid int) (time.Duration, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return procCPU(pid)
	}
	var sum time.Duration
	for _, t := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue // ended meanwhile
		}
		f := strings.Fields(string(data))
		if len(f) < 1 {
			return procCPU(pid)
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return procCPU(pid)
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}

// procStatus returns the memory sizes of /proc/PID/status (the fields in
// kB: VmRSS, VmHWM, RssAnon, RssFile, ...), in bytes.
func procStatus(pid int) (map[string]int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	sizes := map[string]int64{}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if n, found := strings.CutSuffix(strings.TrimSpace(v), " kB"); ok && found {
			kb, _ := strconv.ParseInt(n, 10, 64)
			sizes[k] = kb * 1024
		}
	}
	return sizes, nil
}

// procMem returns VmRSS and VmHWM in bytes.
func procMem(pid int) (rss, hwm int64, err error) {
	sizes, err := procStatus(pid)
	return sizes["VmRSS"], sizes["VmHWM"], err
}

// rssSplit describes VmRSS as anonymous (heap, stacks) + file-backed
// (binary pages) memory, e.g. "anon 30.1 MB + file 16.2 MB".
func rssSplit(pid int) string {
	sizes, err := procStatus(pid)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("anon %s + file %s", fmtMB(sizes["RssAnon"]), fmtMB(sizes["RssFile"]))
}

// connsTo counts pid's ESTABLISHED TCP connections to 127.0.0.1:port: the
// socket inodes of /proc/PID/fd matched against /proc/PID/net/tcp{,6}.
func connsTo(pid, port int) (int, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	n := 0
	wantPort := fmt.Sprintf(":%04X", port)
	for _, file := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, file))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
			if len(f) < 10 || f[3] != "01" { // 01 = ESTABLISHED
				continue
			}
			if strings.HasSuffix(f[2], wantPort) && inodes[f[9]] {
				n++
			}
		}
	}
	return n, nil
}

// dirWatch reports changes of files in one directory (inotify: a renamed-in
// or closed-after-write file), so a latency loop need not spin on reads.
type dirWatch struct {
	f   *os.File
	buf []byte
}

func newDirWatch(dir string) (*dirWatch, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_MOVED_TO|syscall.IN_CLOSE_WRITE); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("inotify %s: %w", dir, err)
	}
	return &dirWatch{f: os.NewFile(uintptr(fd), "inotify"), buf: make([]byte, 64<<10)}, nil
}

func (w *dirWatch) Close() error { return w.f.Close() }

// waitContent waits until path holds want: it checks the file, then on each
// inotify event naming it checks again. It returns when the content matches
// or the deadline passes.
func (w *dirWatch) waitContent(path string, want []byte, deadline time.Time) error {
	return w.waitMatch(path, func(got []byte) bool { return bytes.Equal(got, want) }, fmt.Sprintf("%q", want), deadline)
}

// waitMatch is waitContent for any content that match accepts; what
// describes it in the error.
func (w *dirWatch) waitMatch(path string, match func([]byte) bool, what string, deadline time.Time) error {
	name := filepath.Base(path)
	check := func() bool {
		got, err := os.ReadFile(path)
		return err == nil && match(got)
	}
	if check() {
		return nil
	}
	for {
		if err := w.f.SetReadDeadline(deadline); err != nil {
			return err
		}
		n, err := w.f.Read(w.buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				got, _ := os.ReadFile(path)
				if len(got) > 200 {
					got = append(got[:200:200], "..."...)
				}
				return fmt.Errorf("%s: still %q, want %s", path, got, what)
			}
			return err
		}
		seen := false
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			ev := (*syscall.InotifyEvent)(unsafe.Pointer(&w.buf[off]))
			nameBytes := w.buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+int(ev.Len)]
			if string(bytes.TrimRight(nameBytes, "\x00")) == name {
				seen = true
			}
			off += syscall.SizeofInotifyEvent + int(ev.Len)
		}
		if seen && check() {
			return nil
		}
	}
}

// waitFiles polls until every path holds its content or the deadline passes;
// it returns how many differ at the end.
func waitFiles(ctx context.Context, want map[string][]byte, timeout time.Duration) (differ int, took time.Duration) {
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		differ = 0
		for p, w := range want {
			got, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(got, w) {
				differ++
			}
		}
		if differ == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return differ, time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pct returns the p-th percentile (0..100) of ds, which it sorts.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(float64(len(ds)-1) * p / 100)
	return ds[i]
}
