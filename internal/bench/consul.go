package main

// Rows measured against a real Consul agent (internal/testserver starts it).

import (
	"context"
	"fmt"
	"net"
	"net/http"
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
	s, err := testserver.StartConsul(ctx, testserver.ConsulOptions{Dev: true})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr()
	cfg.Transport = &http.Transport{MaxIdleConnsPerHost: 4}
	cli, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	put := func(ctx context.Context, key, value string) error {
		_, err := cli.KV().Put(&api.KVPair{Key: strings.TrimPrefix(key, "/"), Value: []byte(value)}, (&api.WriteOptions{}).WithContext(ctx))
		return err
	}
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

// consulGap spaces changes beyond the backend's 50 ms re-query limit.
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
	// The backend waits MinRequeryInterval (50 ms) between two blocking
	// queries; changes spaced wider than that show the latency without it.
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
