package main

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/confit-dev/confit/internal/testserver"
	"github.com/hashicorp/consul/api"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// key is the key the writer changes; every sidecar renders it.
const key = "/fleet/v"

// store is the server under the fleet, with a writer beside it.
type store struct {
	kind   string
	etcd   *testserver.EtcdServer
	proxy  *testserver.EtcdProxy
	consul *testserver.ConsulServer
	acct   *acct
	cli    *clientv3.Client
	kv     *api.KV
	node   string // what the sidecars connect to
	port   int    // the store's client port
	pport  int    // the proxy's port (etcd-proxy), sidecars connect there
}

func portOf(addr string) int {
	addr = strings.TrimPrefix(strings.TrimPrefix(addr, "http://"), "https://")
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

func startStore(ctx context.Context, kind, dir string) (*store, error) {
	s := &store{kind: kind}
	for _, d := range []string{"etcd", "proxy", "consul"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	switch kind {
	case "etcd", "etcd-proxy":
		e, err := testserver.StartEtcd(ctx, testserver.EtcdOptions{Dir: filepath.Join(dir, "etcd")})
		if err != nil {
			return nil, err
		}
		s.etcd, s.node, s.port = e, e.Endpoint(), portOf(e.Endpoint())
		if kind == "etcd-proxy" {
			p, err := testserver.StartEtcdProxy(ctx, e, filepath.Join(dir, "proxy"))
			if err != nil {
				s.close()
				return nil, err
			}
			s.proxy, s.node, s.pport = p, p.Endpoint(), portOf(p.Endpoint())
		}
		s.cli, err = clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			s.close()
			return nil, err
		}
	case "consul":
		c, err := testserver.StartConsul(ctx, testserver.ConsulOptions{Dir: filepath.Join(dir, "consul")})
		if err != nil {
			return nil, err
		}
		s.consul, s.port = c, portOf(c.Addr())
		if s.acct, err = startAcct(c.Addr()); err != nil {
			s.close()
			return nil, err
		}
		s.node = s.acct.Addr()
		cfg := api.DefaultConfig()
		cfg.Address = c.Addr()
		ac, err := api.NewClient(cfg)
		if err != nil {
			s.close()
			return nil, err
		}
		s.kv = ac.KV()
	}
	for i := range 5 {
		if err := s.put(ctx, fmt.Sprintf("/fleet/static/k%d", i), fmt.Sprintf("static value %d", i)); err != nil {
			s.close()
			return nil, err
		}
	}
	return s, nil
}

func (s *store) backend() string {
	if s.consul != nil {
		return "consul"
	}
	return "etcd"
}

func (s *store) pid() int {
	if s.consul != nil {
		return s.consul.Process().PID()
	}
	return s.etcd.Process().PID()
}

func (s *store) put(ctx context.Context, k, v string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if s.kv != nil {
		_, err := s.kv.Put(&api.KVPair{Key: strings.TrimPrefix(k, "/"), Value: []byte(v)}, (&api.WriteOptions{}).WithContext(ctx))
		return err
	}
	_, err := s.cli.Put(ctx, k, v)
	return err
}

// kill stops the store with SIGKILL; back starts it again on the same
// data and returns once it is healthy.
func (s *store) kill() error {
	if s.consul != nil {
		return s.consul.Kill()
	}
	return s.etcd.Kill()
}

func (s *store) back(ctx context.Context) error {
	if s.consul != nil {
		return s.consul.Start(ctx)
	}
	return s.etcd.Start(ctx)
}

func (s *store) close() {
	if s.cli != nil {
		s.cli.Close()
	}
	if s.acct != nil {
		s.acct.Close()
	}
	if s.proxy != nil {
		s.proxy.Close()
	}
	if s.etcd != nil {
		s.etcd.Close()
	}
	if s.consul != nil {
		s.consul.Close()
	}
}

// etcdRequests is what a sidecar fleet asks of etcd: ranges (reads and
// re-lists) and watch-stream messages (creates and cancels).
func (s *store) etcdRequests(ctx context.Context) (ranges, watch float64, err error) {
	m, err := metrics(ctx, s.etcd.Endpoint()+"/metrics", map[string][]string{
		"grpc_server_started_total":      {`grpc_method="Range"`},
		"grpc_server_msg_received_total": {`grpc_method="Watch"`},
	})
	return m["grpc_server_started_total"], m["grpc_server_msg_received_total"], err
}

// sidecar is one confit -watch process.
type sidecar struct {
	cmd    *exec.Cmd
	pid    int
	exited chan struct{}
}

// fleet is N sidecars and the watcher of their destinations.
type fleet struct {
	root     string
	sidecars []*sidecar
	seen     *seen
}

// writeConfdirs makes N confdirs under root, each with one resource
// rendering the changing key and five static keys to root/out/app-K.conf.
func writeConfdirs(root string, n int) error {
	tmpl := "# confit fleet sidecar\nvalue = {{getv \"" + key + "\"}}\n{{range gets \"/fleet/static/*\"}}{{base .Key}} = {{.Value}}\n{{end}}"
	if err := os.MkdirAll(filepath.Join(root, "out"), 0o755); err != nil {
		return err
	}
	for i := range n {
		d := filepath.Join(root, fmt.Sprintf("s%04d", i))
		if err := os.MkdirAll(filepath.Join(d, "conf.d"), 0o755); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(d, "templates"), 0o755); err != nil {
			return err
		}
		toml := fmt.Sprintf("[template]\nsrc = \"app.tmpl\"\ndest = %q\nkeys = [\"/fleet\"]\n", destOf(root, i))
		if err := os.WriteFile(filepath.Join(d, "conf.d", "app.toml"), []byte(toml), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(d, "templates", "app.tmpl"), []byte(tmpl), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func destOf(root string, i int) string {
	return filepath.Join(root, "out", fmt.Sprintf("app-%04d.conf", i))
}

// startFleet starts n sidecars against st with -reconnect-jitter jitter and
// waits until every destination holds want.
func startFleet(ctx context.Context, bin string, st *store, root string, n int, jitter time.Duration, want int) (*fleet, error) {
	// A sidecar leaves a destination that already holds what it renders
	// alone: start from none, so every first render is seen.
	for i := range n {
		if err := os.Remove(destOf(root, i)); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}
	sn, err := newSeen(filepath.Join(root, "out"), n)
	if err != nil {
		return nil, err
	}
	f := &fleet{root: root, seen: sn}
	logs, err := os.OpenFile(filepath.Join(root, "sidecars.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		sn.close()
		return nil, err
	}
	defer logs.Close()
	for i := range n {
		if ctx.Err() != nil {
			f.stop()
			return nil, ctx.Err()
		}
		cmd := exec.Command(bin, "-watch", "-backend", st.backend(), "-node", st.node,
			"-confdir", filepath.Join(root, fmt.Sprintf("s%04d", i)), "-log-level", "warn",
			"-reconnect-jitter", jitter.String())
		cmd.Env = append(os.Environ(), "CONFIT_CONFIG_FILE="+os.DevNull)
		cmd.Stdout, cmd.Stderr = logs, logs
		// A bench that dies takes its sidecars with it.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			f.stop()
			return nil, fmt.Errorf("sidecar %d: %w", i, err)
		}
		sc := &sidecar{cmd: cmd, pid: cmd.Process.Pid, exited: make(chan struct{})}
		go func() { cmd.Wait(); close(sc.exited) }()
		f.sidecars = append(f.sidecars, sc)
		time.Sleep(*startGap)
	}
	if missing, _ := f.seen.waitAll(ctx, want, 60*time.Second+time.Duration(n)*50*time.Millisecond); missing > 0 {
		f.stop()
		return nil, fmt.Errorf("fleet start: %d of %d sidecars did not render value %d (logs: %s)", missing, n, want, filepath.Join(root, "sidecars.log"))
	}
	for i, sc := range f.sidecars {
		select {
		case <-sc.exited:
			f.stop()
			return nil, fmt.Errorf("sidecar %d exited (logs: %s)", i, filepath.Join(root, "sidecars.log"))
		default:
		}
	}
	return f, nil
}

// stop ends every sidecar by its PID: SIGTERM, then SIGKILL after 15 s.
func (f *fleet) stop() {
	for _, sc := range f.sidecars {
		sc.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(15 * time.Second)
	for _, sc := range f.sidecars {
		select {
		case <-sc.exited:
		case <-deadline:
			sc.cmd.Process.Kill()
			<-sc.exited
		}
	}
	f.sidecars = nil
	f.seen.close()
}

func (f *fleet) cpu() time.Duration {
	var sum time.Duration
	for _, sc := range f.sidecars {
		sum += procCPU(sc.pid)
	}
	return sum
}

func runCell(ctx context.Context, bin string, r Result) (Result, error) {
	r.Load = loadAvg()
	root, err := os.MkdirTemp(*dirFlag, fmt.Sprintf("confit-fleet-%s-%d-", r.Store, r.N))
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(root)
	if err := writeConfdirs(root, r.N); err != nil {
		return r, err
	}
	st, err := startStore(ctx, r.Store, root)
	if err != nil {
		return r, fmt.Errorf("start %s: %w", r.Store, err)
	}
	defer st.close()
	if err := st.put(ctx, key, "0"); err != nil {
		return r, err
	}

	jitters, err := stormJitters(r.N)
	if err != nil {
		return r, err
	}
	first := time.Duration(0)
	if len(jitters) > 0 {
		first = jitters[0]
	}
	t0 := time.Now()
	f, err := startFleet(ctx, bin, st, root, r.N, first, 0)
	if err != nil {
		return r, err
	}
	r.StartSeconds = time.Since(t0).Seconds()
	defer func() {
		if f != nil {
			f.stop()
		}
	}()
	fmt.Fprintf(os.Stderr, "fleet:   %d sidecars rendering after %.1f s\n", r.N, r.StartSeconds)
	if r.Updates > 0 {
		if err := measureUpdates(ctx, st, f, &r); err != nil {
			return r, err
		}
	}
	seq := r.Updates
	for i, j := range jitters {
		if i > 0 {
			f.stop()
			if f, err = startFleet(ctx, bin, st, root, r.N, j, seq); err != nil {
				return r, err
			}
		}
		seq++
		s, err := storm(ctx, st, f, j, seq)
		if err != nil {
			return r, fmt.Errorf("storm (jitter %v): %w", j, err)
		}
		r.Storms = append(r.Storms, s)
		fmt.Fprintf(os.Stderr, "fleet:   storm jitter %v: peak %d/s, first 10 s %d, all re-read %.1f s, converged %.1f s\n", j, s.Peak, s.First10s, s.AllRead, s.Converged)
	}
	return r, nil
}

func stormJitters(n int) ([]time.Duration, error) {
	var out []time.Duration
	for _, f := range strings.Split(*jitterFlag, ",") {
		f = strings.TrimSpace(f)
		switch f {
		case "":
			continue
		case "auto":
			w := time.Duration(float64(n) / float64(*relistRate) * float64(time.Second)).Round(100 * time.Millisecond)
			out = append(out, max(w, time.Second))
		default:
			d, err := time.ParseDuration(f)
			if err != nil || d < 0 {
				return nil, fmt.Errorf("-storm-jitter: %q is not a duration", f)
			}
			out = append(out, d)
		}
	}
	return out, nil
}

// measureUpdates runs the writer and records what the fleet and the store
// paid for it.
func measureUpdates(ctx context.Context, st *store, f *fleet, r *Result) error {
	pid := st.pid()
	// Idle: the store's CPU over 5 s with the fleet connected.
	c0 := procCPU(pid)
	time.Sleep(5 * time.Second)
	r.StoreIdleCPUms = ms(procCPU(pid)-c0) / 5
	r.StoreConns = tcpConns(st.port) - 1 // less the writer's connection
	if st.proxy != nil {
		r.ProxyConns = tcpConns(st.pport)
	}

	var ppid int
	if st.proxy != nil {
		ppid = st.proxy.Process().PID()
	}
	puts := make([]time.Time, r.Updates+1)
	f.seen.reset(puts)
	storeCPU0, proxyCPU0, fleetCPU0 := procCPU(pid), procCPU(ppid), f.cpu()
	var putDur []time.Duration
	start := time.Now()
	for k := 1; k <= r.Updates; k++ {
		due := start.Add(time.Duration(k-1) * *intervalFlag)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		} else if -d > *intervalFlag {
			r.WriterLateTicks++
		}
		t := time.Now()
		f.seen.setPut(k, t)
		if err := st.put(ctx, key, strconv.Itoa(k)); err != nil {
			return fmt.Errorf("update %d: %w", k, err)
		}
		putDur = append(putDur, time.Since(t))
	}
	missing, _ := f.seen.waitAll(ctx, r.Updates, 30*time.Second)
	// The store's and proxy's CPU up to the last delivery (or the deadline).
	storeCPU, proxyCPU, fleetCPU := procCPU(pid)-storeCPU0, procCPU(ppid)-proxyCPU0, f.cpu()-fleetCPU0
	r.StoreCPUms = ms(storeCPU) / float64(r.Updates)
	if ppid != 0 {
		r.ProxyCPUms = ms(proxyCPU) / float64(r.Updates)
		r.ProxyRSSMB = float64(rss(ppid)) / 1e6
	}
	r.SidecarCPUus = float64(fleetCPU) / float64(time.Microsecond) / float64(r.Updates) / float64(r.N)
	r.StoreRSSMB = float64(rss(pid)) / 1e6
	r.Missing = missing
	r.WriterPutP50ms = ms(pct(putDur, 50))
	if st.etcd != nil {
		m, err := metrics(ctx, st.etcd.Endpoint()+"/metrics", map[string][]string{"etcd_debugging_mvcc_watcher_total": nil})
		if err == nil {
			r.StoreWatchers = m["etcd_debugging_mvcc_watcher_total"]
		}
	}

	all, slowest := f.seen.latencies(r.Updates)
	r.Deliveries = len(all)
	r.LatP50ms, r.LatP99ms = ms(pct(all, 50)), ms(pct(all, 99))
	r.SlowestP50ms, r.SlowestP99ms, r.SlowestMaxms = ms(pct(slowest, 50)), ms(pct(slowest, 99)), ms(pct(slowest, 100))

	var privs []float64
	var total int64
	for _, sc := range f.sidecars {
		p := private(sc.pid)
		privs = append(privs, float64(p)/1e6)
		total += p
	}
	r.SidecarPrivateMB = median(privs)
	r.SidecarsPrivateGB = float64(total) / 1e9
	fmt.Fprintf(os.Stderr, "fleet:   store CPU %.1f ms/update, slowest p99 %.1f ms, sidecar private %.1f MB\n", r.StoreCPUms, r.SlowestP99ms, r.SidecarPrivateMB)
	return nil
}

// storm kills the store under the fleet, starts it again after -outage
// and records the requests it receives in each second after the restart
// began (the process started; Consul's agent elects itself leader within
// that time) and how long until the whole fleet had read the store again.
// seq is the value put once the store is healthy.
func storm(ctx context.Context, st *store, f *fleet, jitter time.Duration, seq int) (Storm, error) {
	s := Storm{Jitter: jitter.String()}
	window := max(10*time.Second, jitter+5*time.Second) + time.Second
	f.seen.reset(make([]time.Time, seq+1))
	var kv0, req0 int64 // Consul: what the accounting proxy counted before
	if st.acct != nil {
		kv0, req0 = st.acct.kv.Load(), st.acct.requests.Load()
	}
	// count returns the requests so far: etcd from its metrics (which
	// start again at 0 with the process), Consul from the accounting proxy.
	count := func() (req, relists float64, ok bool) {
		if st.acct != nil {
			return float64(st.acct.requests.Load() - req0), float64(st.acct.kv.Load() - kv0), true
		}
		ranges, watch, err := st.etcdRequests(ctx)
		return ranges + watch, ranges, err == nil
	}
	if err := st.kill(); err != nil {
		return s, err
	}
	time.Sleep(*outageFlag)

	restart := time.Now()
	type sample struct {
		at       time.Duration
		req, rel float64
		cpu      time.Duration
	}
	var pid atomic.Int64 // the restarted store's, once known
	samples := make(chan sample, 1024)
	sctx, stop := context.WithCancel(ctx)
	go func() {
		defer close(samples)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
			if req, rel, ok := count(); ok {
				samples <- sample{time.Since(restart), req, rel, procCPU(int(pid.Load()))}
			}
		}
	}()
	go func() {
		// The new process's PID, as soon as it runs.
		for sctx.Err() == nil && pid.Load() == 0 {
			if p := st.pid(); p != 0 {
				pid.Store(int64(p))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	err := st.back(ctx)
	back := time.Since(restart)
	if err != nil {
		stop()
		return s, fmt.Errorf("restart: %w", err)
	}
	put := func() error {
		f.seen.setPut(seq, time.Now())
		return st.put(ctx, key, strconv.Itoa(seq))
	}
	if st.acct != nil {
		// Consul: each sidecar sees the value with its first successful
		// re-list.
		if err := put(); err != nil {
			stop()
			return s, fmt.Errorf("put after the restart: %w", err)
		}
	}
	var cpu10 time.Duration
	go func() {
		time.Sleep(time.Until(restart.Add(window)))
		stop()
	}()
	var sent, sentRel float64
	var sentCPU time.Duration
	for smp := range samples {
		for float64(len(s.PerSecond)) < math.Floor(smp.at.Seconds()) {
			s.PerSecond = append(s.PerSecond, int(smp.req-sent))
			s.RelistsPerSecond = append(s.RelistsPerSecond, int(smp.rel-sentRel))
			s.CPUPerSecond = append(s.CPUPerSecond, int(ms(smp.cpu-sentCPU)))
			sent, sentRel, sentCPU = smp.req, smp.rel, smp.cpu
		}
		if st.acct == nil && s.AllRead == 0 && smp.rel >= float64(len(f.sidecars)) {
			s.AllRead = smp.at.Seconds()
		}
		s.Relists = int(smp.rel)
		if cpu10 == 0 && smp.at >= 10*time.Second {
			cpu10 = smp.cpu
		}
	}
	for i, v := range s.PerSecond {
		s.Peak = max(s.Peak, v)
		if i < 10 {
			s.First10s += v
		}
	}
	s.CPUms = ms(cpu10)
	s.Note = fmt.Sprintf("healthy %.1f s after the restart", back.Seconds())
	if st.acct != nil {
		missing, _ := f.seen.waitAll(ctx, seq, 60*time.Second)
		if missing > 0 {
			s.Note += fmt.Sprintf("; %d sidecars without the value after 60 s", missing)
		} else {
			s.AllRead = f.seen.lastArrival(seq).Sub(restart).Seconds()
		}
		s.Converged = s.AllRead
		return s, nil
	}
	// etcd: every sidecar re-listed (or not) within the window; a value
	// put now must reach all of them.
	t := time.Now()
	if err := put(); err != nil {
		return s, fmt.Errorf("put after the restart: %w", err)
	}
	missing, _ := f.seen.waitAll(ctx, seq, 30*time.Second)
	s.Converged = s.AllRead
	if missing > 0 {
		s.Note += fmt.Sprintf("; then a put missed %d sidecars for 30 s", missing)
	} else {
		s.Note += fmt.Sprintf("; then a put reached all in %.0f ms", ms(time.Since(t)))
	}
	if s.AllRead == 0 {
		s.Note += fmt.Sprintf("; %d of %d re-lists within %v", s.Relists, len(f.sidecars), window)
	}
	return s, nil
}

// seen follows the sidecars' destinations with inotify: the latest value
// each one holds, and when each update reached each of them.
type seen struct {
	dir string
	f   *os.File // the inotify descriptor, non-blocking: Close ends loop
	mu  sync.Mutex
	n   int
	cur []int         // latest value on disk per sidecar (-1: none yet)
	lat [][]time.Time // per update, per sidecar: when it arrived
	put []time.Time
	wg  sync.WaitGroup
}

func newSeen(dir string, n int) (*seen, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_MOVED_TO|syscall.IN_CLOSE_WRITE); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("inotify %s: %w", dir, err)
	}
	s := &seen{dir: dir, f: os.NewFile(uintptr(fd), "inotify"), n: n, cur: make([]int, n)}
	for i := range s.cur {
		s.cur[i] = -1
	}
	s.wg.Add(1)
	go s.loop()
	return s, nil
}

func (s *seen) close() {
	s.f.Close() // ends loop's read
	s.wg.Wait()
}

// reset starts recording arrivals of the updates whose put times will be
// set in puts.
func (s *seen) reset(puts []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.put = puts
	s.lat = make([][]time.Time, len(puts))
	for i := range s.lat {
		s.lat[i] = make([]time.Time, s.n)
	}
}

func (s *seen) setPut(k int, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.put[k] = t
}

func (s *seen) loop() {
	defer s.wg.Done()
	buf := make([]byte, 256<<10)
	for {
		n, err := s.f.Read(buf)
		if err != nil || n <= 0 {
			return
		}
		now := time.Now()
		var names []string
		overflow := false
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			ev := (*syscall.InotifyEvent)(unsafePointer(&buf[off]))
			nameBytes := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+int(ev.Len)]
			off += syscall.SizeofInotifyEvent + int(ev.Len)
			if ev.Mask&syscall.IN_Q_OVERFLOW != 0 {
				overflow = true
			}
			names = append(names, strings.TrimRight(string(nameBytes), "\x00"))
		}
		if overflow {
			names = names[:0]
			for i := range s.n {
				names = append(names, filepath.Base(destOf("", i)))
			}
		}
		for _, name := range names {
			i, ok := indexOf(name)
			if !ok || i >= s.n {
				continue
			}
			s.read(i, now)
		}
	}
}

func indexOf(name string) (int, bool) {
	num, ok := strings.CutPrefix(name, "app-")
	if !ok {
		return 0, false
	}
	num, ok = strings.CutSuffix(num, ".conf")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(num)
	return i, err == nil
}

// read records the value sidecar i's destination holds at now.
func (s *seen) read(i int, now time.Time) {
	data, err := os.ReadFile(filepath.Join(s.dir, fmt.Sprintf("app-%04d.conf", i)))
	if err != nil {
		return
	}
	_, rest, ok := strings.Cut(string(data), "value = ")
	if !ok {
		return
	}
	line, _, _ := strings.Cut(rest, "\n")
	v, err := strconv.Atoi(line)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v <= s.cur[i] {
		return
	}
	for k := max(s.cur[i]+1, 0); k <= v && k < len(s.lat); k++ {
		s.lat[k][i] = now
	}
	s.cur[i] = v
}

// waitAll waits until every sidecar holds want or newer, at most timeout;
// it returns how many do not, and how long the wait took.
func (s *seen) waitAll(ctx context.Context, want int, timeout time.Duration) (missing int, took time.Duration) {
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		s.mu.Lock()
		missing = 0
		for _, v := range s.cur {
			if v < want {
				missing++
			}
		}
		s.mu.Unlock()
		if missing == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return missing, time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lastArrival returns when the last sidecar got update k (zero if one has
// not).
func (s *seen) lastArrival(k int) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var last time.Time
	for _, t := range s.lat[k] {
		if t.IsZero() {
			return time.Time{}
		}
		if t.After(last) {
			last = t
		}
	}
	return last
}

// latencies returns every (sidecar, update) change → file time of updates
// 1..updates, and per update the slowest sidecar's.
func (s *seen) latencies(updates int) (all, slowest []time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := 1; k <= updates && k < len(s.lat); k++ {
		var worst time.Duration
		got := 0
		for _, t := range s.lat[k] {
			if t.IsZero() {
				continue
			}
			d := t.Sub(s.put[k])
			all = append(all, d)
			worst = max(worst, d)
			got++
		}
		if got > 0 {
			slowest = append(slowest, worst)
		}
	}
	return all, slowest
}

func unsafePointer(b *byte) unsafe.Pointer { return unsafe.Pointer(b) }
