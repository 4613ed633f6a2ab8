package main

// Rows measured against a real Consul agent (internal/testserver starts it).

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/confit-dev/confit/internal/testserver"
	"github.com/hashicorp/consul/api"
)

// benchConsulWatch: KV change-to-file latency, CPU per change, RSS and
// connections held, for 1 and 200 resources on distinct keys.
func benchConsulWatch() ([]row, error) {
	ctx := context.Background()
	s, put, err := startConsulKV(ctx, testserver.ConsulOptions{Dev: true})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	_, portStr, _ := net.SplitHostPort(s.Addr())
	port, _ := strconv.Atoi(portStr)
	args := []string{"-watch", "-backend", "consul", "-node", s.Addr()}
	var rows []row
	for _, n := range []int{1, 200} {
		rs, err := consulLatency(ctx, put, args, port, n)
		if err != nil {
			return rows, fmt.Errorf("%d resources: %w", n, err)
		}
		rows = append(rows, rs...)
	}
	rs, err := rendersPerChange(ctx, put, args, "consul")
	if err != nil {
		return rows, err
	}
	return append(rows, rs...), nil
}

// consulGap spaces the changes of the "apart" row (the row predates the
// consul-sustained rows, which pace one key 100 and 20 ms apart).
const consulGap = 75 * time.Millisecond

func consulLatency(ctx context.Context, put putFunc, args []string, port, n int) ([]row, error) {
	root := fmt.Sprintf("/lat%d", n)
	d, dir, done, err := valueDaemon(ctx, put, fmt.Sprintf("consul-watch-%d", n), root, n, "", args)
	defer done()
	if err != nil {
		return nil, err
	}
	time.Sleep(500 * time.Millisecond)
	connsIdle, err := connsTo(d.pid(), port)
	if err != nil {
		return nil, err
	}
	lat, puts, cpuPerChange, err := timedChanges(ctx, d, put, dir, root, n)
	if err != nil {
		return nil, err
	}
	// Changes spaced apart, for comparison with the back-to-back ones.
	spaced, _, err := latencyLoop(ctx, put, dir, root, n, *changesFlag/2, consulGap, "s")
	if err != nil {
		return nil, err
	}
	connsAfter, _ := connsTo(d.pid(), port)
	rss, hwm, _ := procMem(d.pid())
	label := fmt.Sprintf("consul KV watch, %d resource(s)", n)
	ctNote := ""
	if n == 200 {
		ctNote = ", consul-template 4.2 ms"
	}
	return []row{
		{label + ": change-to-file p50, back to back", fmtDur(pct(lat, 50)), "<= 1.5 ms", fmt.Sprintf("put → destination seen (inotify), %d changes, next put as soon as the file is seen; put round trip alone p50 %s; confd 2.2 ms%s", len(lat), fmtDur(pct(puts, 50)), ctNote)},
		{label + ": change-to-file p99, back to back", fmtDur(pct(lat, 99)), "", fmt.Sprintf("max %s", fmtDur(pct(lat, 100)))},
		{label + fmt.Sprintf(": change-to-file p50, changes %v apart", consulGap), fmtDur(pct(spaced, 50)), "<= 1.5 ms", fmt.Sprintf("%d changes; p99 %s", len(spaced), fmtDur(pct(spaced, 99)))},
		{label + ": daemon CPU per change", fmtDur(cpuPerChange), "<= 0.5 ms",
			"utime+stime delta / changes; confd 1.3 ms, consul-template 32 ms"},
		{label + ": RSS", fmtMB(rss), "<= 15 MB", fmt.Sprintf("VmRSS after the changes (%s), VmHWM %s; confd 43 MB, consul-template 33 MB", rssSplit(d.pid()), fmtMB(hwm))},
		{label + ": connections to the agent", fmt.Sprintf("%d idle, %d after changes", connsIdle, connsAfter), "<= 8",
			"ESTABLISHED sockets of the confit PID to the agent's HTTP port; confd and consul-template 200"},
	}, nil
}

var consulServerFlag = flag.Bool("consul-server", false, "run the consul-sustained and consul-groups agent as a server with its data on tmpfs (compact JSON, as production agents answer) instead of -dev")

// startBenchConsul starts the agent of the consul-sustained, consul-floor
// and consul-groups rows: a -dev agent, or with server a server agent whose
// data directory is on tmpfs (see -consul-server). maxConns, when set, is
// the agent's http_max_conns_per_client. stop closes the agent and removes
// its data.
func startBenchConsul(ctx context.Context, server bool, maxConns int) (s *testserver.ConsulServer, put putFunc, stop func(), err error) {
	opts := testserver.ConsulOptions{Dev: !server, MaxConnsPerClient: maxConns}
	if server {
		parent := ""
		if haveTmpfs() {
			parent = tmpfs
		}
		if opts.Dir, err = os.MkdirTemp(parent, "confit-consul-"); err != nil {
			return nil, nil, nil, err
		}
	}
	s, put, err = startConsulKV(ctx, opts)
	if err != nil {
		if opts.Dir != "" {
			os.RemoveAll(opts.Dir)
		}
		return nil, nil, nil, err
	}
	return s, put, func() {
		s.Close()
		if opts.Dir != "" {
			os.RemoveAll(opts.Dir)
		}
	}, nil
}

// fixtureDir makes a directory for a fixture: under -dir, else on tmpfs
// when there is one. The caller removes it.
func fixtureDir() (string, error) {
	parent := *dirFlag
	if parent == "" && haveTmpfs() {
		parent = tmpfs
	}
	return os.MkdirTemp(parent, "confit-bench-")
}

var confdFlag = flag.String("confd", "", "confd binary: the consul-sustained rows are measured for it too, on the same agent")

func init() {
	extraBenches = append(extraBenches, bench{"consul-sustained", benchConsulSustained}, bench{"consul-floor", benchConsulFloor})
}

// sustainedChanges is how many times the one key changes per row.
const sustainedChanges = 200

// benchConsulSustained: 200 resources on distinct keys, one key changed 200
// times at a fixed pace, 100 ms and then 20 ms apart (50 changes/s): the
// change-to-file latency and the daemon's CPU per change. The destinations
// are on tmpfs unless -dir says otherwise. With -confd, the same rows for
// confd on the same agent, each daemon on its own keys; the agent then
// allows 1000 connections per client, as confd holds one per resource.
func benchConsulSustained() ([]row, error) {
	ctx := context.Background()
	maxConns := 0
	if *confdFlag != "" {
		maxConns = 1000
	}
	s, put, stop, err := startBenchConsul(ctx, *consulServerFlag, maxConns)
	if err != nil {
		return nil, err
	}
	defer stop()
	start := func(dir string) (*daemon, error) {
		return startDaemon(dir, "consul-sustained", "-watch", "-backend", "consul", "-node", s.Addr(), "-confdir", dir)
	}
	rows, err := sustainedRows(ctx, put, "/sus", "confit", start)
	if err != nil || *confdFlag == "" {
		return rows, err
	}
	rs, err := sustainedRows(ctx, put, "/susconfd", "confd", func(dir string) (*daemon, error) {
		return startConfd(dir, s.Addr())
	})
	return append(rows, rs...), err
}

// sustainedRows measures one daemon (started by start on a fixture
// directory) for the two paces.
func sustainedRows(ctx context.Context, put putFunc, root, who string, start func(dir string) (*daemon, error)) ([]row, error) {
	const n = 200
	dir, err := fixtureDir()
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := valueFixture(dir, root, n, ""); err != nil {
		return nil, err
	}
	want, err := seedValues(ctx, put, dir, root, n)
	if err != nil {
		return nil, err
	}
	d, err := startSettled(ctx, dir, want, start)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	var rows []row
	for _, gap := range []time.Duration{100 * time.Millisecond, 20 * time.Millisecond} {
		pc, err := pacedChanges(ctx, d, put, dir, root, gap, fmt.Sprintf("g%d", gap/time.Millisecond))
		lat, cpu := pc.lat, pc.cpu
		if err != nil {
			return rows, fmt.Errorf("%s, changes %v apart: %w", who, gap, err)
		}
		goal := "<= 1.5 ms, <= confd"
		if gap < 100*time.Millisecond {
			goal = "p50 <= 2x the 100 ms row"
		}
		rows = append(rows, row{
			fmt.Sprintf("consul KV, 200 resources, one key changed %d times %v apart (%s): change-to-file p50 / p99; CPU per change", sustainedChanges, gap, who),
			fmt.Sprintf("%s / %s; %s", fmtDur(pct(lat, 50)), fmtDur(pct(lat, 99)), fmtCPU(cpu)), goal,
			fmt.Sprintf("put → destination seen (inotify), puts on a fixed schedule; max %s; the put itself returns after %s (p50); CPU: the threads' run time (schedstat) delta / changes, goal <= 0.5 ms", fmtDur(pct(lat, 100)), fmtDur(pct(pc.puts, 50))),
		})
	}
	return rows, nil
}

// paced is what pacedChanges measured.
type paced struct {
	lat  []time.Duration // each put → file
	puts []time.Duration // each put's own round trip
	cpu  time.Duration   // the daemon's CPU per change
}

// pacedChanges changes resource 0's key sustainedChanges times, one put
// every gap (a put whose turn came while the previous change was not yet
// seen goes out as soon as it is).
func pacedChanges(ctx context.Context, d *daemon, put putFunc, dir, root string, gap time.Duration, tag string) (paced, error) {
	return pacedChangesN(ctx, d, put, dir, root, gap, tag, sustainedChanges)
}

// pacedChangesN is pacedChanges with n changes.
func pacedChangesN(ctx context.Context, d *daemon, put putFunc, dir, root string, gap time.Duration, tag string, n int) (paced, error) {
	w, err := newDirWatch(filepath.Join(dir, "out"))
	if err != nil {
		return paced{}, err
	}
	defer w.Close()
	cpu0, err := procCPUPrecise(d.pid())
	if err != nil {
		return paced{}, err
	}
	lat := make([]time.Duration, 0, n)
	puts := make([]time.Duration, 0, n)
	next := time.Now()
	for c := range n {
		if wait := time.Until(next); wait > 0 {
			time.Sleep(wait)
		}
		next = next.Add(gap)
		v := fmt.Sprintf("%s-%d", tag, c)
		start := time.Now()
		if err := put(ctx, valueKey(root, 0), v); err != nil {
			return paced{}, err
		}
		puts = append(puts, time.Since(start))
		if err := w.waitContent(valueDest(dir, 0), valueContent(v), time.Now().Add(10*time.Second)); err != nil {
			return paced{}, fmt.Errorf("change %d: %w; log: %s", c, err, d.logTail())
		}
		lat = append(lat, time.Since(start))
	}
	cpu1, err := procCPUPrecise(d.pid())
	if err != nil {
		return paced{}, err
	}
	return paced{lat: lat, puts: puts, cpu: (cpu1 - cpu0) / time.Duration(n)}, nil
}

// startSettled starts a daemon on dir (start), waits until it has written
// want, then half a second more so that its watches are parked. On error
// the daemon is stopped.
func startSettled(ctx context.Context, dir string, want map[string][]byte, start func(dir string) (*daemon, error)) (*daemon, error) {
	d, err := start(dir)
	if err != nil {
		return nil, err
	}
	if err := waitInitial(ctx, d, want); err != nil {
		d.stop()
		return nil, err
	}
	time.Sleep(500 * time.Millisecond)
	return d, nil
}

// startConfd runs confd (-confd) in watch mode over the fixture in dir;
// it is ready once it runs (the caller waits for its first renders).
func startConfd(dir, addr string) (*daemon, error) {
	d := &daemon{}
	d.p = &testserver.Process{
		Name:        "confd",
		Path:        *confdFlag,
		Args:        []string{"-watch", "-backend", "consul", "-node", addr, "-confdir", dir, "-log-level", "warn"},
		LogPath:     filepath.Join(dir, "confd.log"),
		Ready:       func(context.Context) error { return nil },
		StopTimeout: 10 * time.Second,
	}
	if err := d.p.Start(context.Background()); err != nil {
		return nil, err
	}
	return d, nil
}

// fmtCPU prints a CPU time per change to the microsecond: a change of a
// few percent shows, which fmtDur's two digits would round away.
func fmtCPU(d time.Duration) string {
	return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
}

// startConsulKV starts a Consul agent for a bench and returns it with a
// function that puts a KV key (a confit key: its leading / dropped). The
// caller closes the agent.
func startConsulKV(ctx context.Context, opts testserver.ConsulOptions) (*testserver.ConsulServer, putFunc, error) {
	s, err := testserver.StartConsul(ctx, opts)
	if err != nil {
		return nil, nil, err
	}
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr()
	cfg.Transport = &http.Transport{MaxIdleConnsPerHost: 4}
	cli, err := api.NewClient(cfg)
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	put := func(ctx context.Context, key, value string) error {
		_, err := cli.KV().Put(&api.KVPair{Key: strings.TrimPrefix(key, "/"), Value: []byte(value)}, (&api.WriteOptions{}).WithContext(ctx))
		return err
	}
	return s, put, nil
}

// agentFloor measures what the agent alone takes for the daemon's isolated
// change: one blocking query parked on path (the KV list of the daemon's
// shared parent, or one key), a put of key, and put start → the answer's
// body read, changes gap apart. A plain net/http client on one kept-alive
// connection; nothing is decoded. It is the floor of the change-to-file
// rows: a daemon cannot see a change before its query's answer.
func agentFloor(ctx context.Context, put putFunc, addr, path, key string, gap time.Duration, n int) ([]time.Duration, error) {
	cli := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}
	get := func(index string) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/kv/"+path+"&index="+index+"&wait=30s", nil)
		if err != nil {
			return "", err
		}
		resp, err := cli.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("agent floor: GET %s: %s", path, resp.Status)
		}
		return resp.Header.Get("X-Consul-Index"), nil
	}
	index, err := get("0")
	if err != nil {
		return nil, err
	}
	type answer struct {
		index string
		at    time.Time
		err   error
	}
	lat := make([]time.Duration, 0, n)
	for c := range n {
		ch := make(chan answer, 1)
		go func(index string) {
			i, err := get(index)
			ch <- answer{i, time.Now(), err}
		}(index)
		time.Sleep(gap) // the query is parked at the agent
		start := time.Now()
		if err := put(ctx, key, fmt.Sprintf("floor-%d", c)); err != nil {
			return nil, err
		}
		select {
		case a := <-ch:
			if a.err != nil {
				return nil, a.err
			}
			lat = append(lat, a.at.Sub(start))
			index = a.index
		case <-time.After(10 * time.Second):
			return nil, fmt.Errorf("agent floor: no answer to GET %s within 10 s of a put", path)
		}
	}
	return lat, nil
}

// floorRows are the agent-floor rows for the fixture under root: the
// 200-key parent the daemon's one blocking query lists, and the one key.
func floorRows(ctx context.Context, put putFunc, addr, root, kind string) ([]row, error) {
	key := valueKey(root, 0)
	var rows []row
	for _, q := range []struct{ name, path string }{
		{"the 200-key parent (what confit's one query lists)", strings.TrimPrefix(root, "/") + "?recurse"},
		{"half of them (100 keys)", strings.TrimPrefix(root, "/") + "/r0?recurse"},
		{"the one changed key", strings.TrimPrefix(key, "/") + "?"},
	} {
		lat, err := agentFloor(ctx, put, addr, q.path, key, 100*time.Millisecond, sustainedChanges/2)
		if err != nil {
			return rows, err
		}
		rows = append(rows, row{
			fmt.Sprintf("consul agent alone (%s), blocking query on %s: put → answer read p50 / p99", kind, q.name),
			fmt.Sprintf("%s / %s", fmtDur(pct(lat, 50)), fmtDur(pct(lat, 99))), "",
			fmt.Sprintf("%d puts 100 ms apart, plain net/http, body read and not decoded: the floor of the change-to-file rows", len(lat)),
		})
	}
	return rows, nil
}

// benchConsulFloor: the agent-floor rows (agentFloor) on the
// consul-sustained fixture's 200 keys, for a -dev agent (the one the
// consul rows use; it pretty-prints every answer) and for a server agent
// with its data on tmpfs (compact JSON, as production agents answer).
func benchConsulFloor() ([]row, error) {
	ctx := context.Background()
	var rows []row
	for _, server := range []bool{false, true} {
		kind := "-dev"
		if server {
			kind = "server, data on tmpfs"
		}
		rs, err := func() ([]row, error) {
			s, put, stop, err := startBenchConsul(ctx, server, 0)
			if err != nil {
				return nil, err
			}
			defer stop()
			const root = "/sus"
			for i := range 200 {
				if err := put(ctx, valueKey(root, i), fmt.Sprintf("init-%d", i)); err != nil {
					return nil, err
				}
			}
			return floorRows(ctx, put, s.Addr(), root, kind)
		}()
		rows = append(rows, rs...)
		if err != nil {
			return rows, err
		}
	}
	return rows, nil
}

func init() {
	extraBenches = append(extraBenches, bench{"consul-groups", benchConsulGroups})
}

// groupsBulk is how many keys outside every watched prefix the
// consul-groups store holds.
const groupsBulk = 5000

// benchConsulGroups: 4 resources on prefixes with nothing in common
// (/grp0 … /grp3) in a store that also holds groupsBulk other keys. A
// single blocking query would list their common parent "/", the whole
// store, on every change; with a query per group each change transfers
// only its own prefix and writes elsewhere wake none. Rows: change → file
// p50 / p99 and CPU per change for 100 changes 100 ms apart, then the
// daemon's CPU per write elsewhere in the store (100 writes 50 ms apart).
func benchConsulGroups() ([]row, error) {
	ctx := context.Background()
	s, put, stop, err := startBenchConsul(ctx, *consulServerFlag, 0)
	if err != nil {
		return nil, err
	}
	defer stop()
	for i := range groupsBulk {
		if err := put(ctx, fmt.Sprintf("/bulk/k%05d", i), strings.Repeat("x", 64)); err != nil {
			return nil, err
		}
	}
	dir, err := fixtureDir()
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	const n = 4
	groupRoot := func(i int) string { return fmt.Sprintf("/grp%d", i) }
	err = writeConfdir(dir, n, func(i int) string {
		return fmt.Sprintf("[template]\nsrc = \"v.tmpl\"\ndest = %q\nprefix = %q\nkeys = [\"/\"]\nmode = \"0644\"\n",
			valueDest(dir, i), valueKeyPrefix(groupRoot(i), i))
	}, map[string]string{"v.tmpl": "value = {{getv \"/v\"}}\n"})
	if err != nil {
		return nil, err
	}
	want := map[string][]byte{}
	for i := range n {
		v := fmt.Sprintf("init-%d", i)
		if err := put(ctx, valueKey(groupRoot(i), i), v); err != nil {
			return nil, err
		}
		want[valueDest(dir, i)] = valueContent(v)
	}
	d, err := startSettled(ctx, dir, want, func(dir string) (*daemon, error) {
		return startDaemon(dir, "consul-groups", "-watch", "-backend", "consul", "-node", s.Addr(), "-confdir", dir)
	})
	if err != nil {
		return nil, err
	}
	defer d.stop()
	pc, err := pacedChangesN(ctx, d, put, dir, groupRoot(0), 100*time.Millisecond, "g", 100)
	if err != nil {
		return nil, err
	}
	lat, cpu := pc.lat, pc.cpu
	cpu0, err := procCPUPrecise(d.pid())
	if err != nil {
		return nil, err
	}
	const writes = 100
	for i := range writes {
		if err := put(ctx, fmt.Sprintf("/bulk/k%05d", i), fmt.Sprintf("w%d", i)); err != nil {
			return nil, err
		}
		time.Sleep(50 * time.Millisecond)
	}
	cpu1, err := procCPUPrecise(d.pid())
	if err != nil {
		return nil, err
	}
	label := fmt.Sprintf("consul KV, %d resources on unrelated prefixes, %d other keys in the store", n, groupsBulk)
	return []row{
		{label + ": change → file p50 / p99; CPU per change", fmt.Sprintf("%s / %s; %s", fmtDur(pct(lat, 50)), fmtDur(pct(lat, 99)), fmtCPU(cpu)), "",
			"100 changes 100 ms apart; one query per group (before: one on /, the whole store)"},
		{label + ": daemon CPU per write elsewhere in the store", fmtCPU((cpu1 - cpu0) / writes), "",
			fmt.Sprintf("%d writes under /bulk, 50 ms apart, no watched key changed", writes)},
	}, nil
}
