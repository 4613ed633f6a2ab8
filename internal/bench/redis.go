package main

// Rows measured against a real redis-server (internal/testserver starts it),
// the same shapes as the etcd watch rows.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/confit-dev/confit/internal/testserver"
	"github.com/redis/rueidis"
)

func init() {
	extraBenches = append(extraBenches, bench{"redis-watch", benchRedisWatch})
}

// startRedis starts a fresh redis-server and a client to it; stop undoes
// both.
func startRedis(ctx context.Context) (*testserver.RedisServer, rueidis.Client, func(), error) {
	s, err := testserver.StartRedis(ctx, testserver.RedisOptions{})
	if err != nil {
		return nil, nil, nil, err
	}
	cli, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.Addr()}, DisableCache: true, ForceSingleClient: true})
	if err != nil {
		s.Close()
		return nil, nil, nil, err
	}
	return s, cli, func() { cli.Close(); s.Close() }, nil
}

// redisPut returns a putFunc that SETs with cli. rueidis does not retry a
// write whose connection broke (an EOF, seen on a machine loaded enough to
// miss its keepalive deadline): it is tried again, up to 1 s.
func redisPut(cli rueidis.Client) putFunc {
	return func(ctx context.Context, key, value string) error {
		var err error
		for range 50 {
			if err = cli.Do(ctx, cli.B().Set().Key(key).Value(value).Build()).Error(); err == nil {
				return nil
			}
			time.Sleep(20 * time.Millisecond)
		}
		return fmt.Errorf("SET %s: %w", key, err)
	}
}

// redisCalls returns how often the server ran each of cmds so far (INFO
// commandstats).
func redisCalls(ctx context.Context, cli rueidis.Client, cmds ...string) (map[string]float64, error) {
	info, err := cli.Do(ctx, cli.B().Info().Section("commandstats").Build()).ToString()
	if err != nil {
		return nil, fmt.Errorf("INFO commandstats: %w", err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(info, "\n") {
		for _, c := range cmds {
			if rest, ok := strings.CutPrefix(line, "cmdstat_"+c+":calls="); ok {
				n, _, _ := strings.Cut(rest, ",")
				v, _ := strconv.ParseFloat(n, 64)
				out[c] = v
			}
		}
	}
	return out, nil
}

// benchRedisWatch: change-to-file latency with 1 and 200 resources, the
// store reads during 100 changes, RSS.
func benchRedisWatch() ([]row, error) {
	ctx := context.Background()
	s, cli, stop, err := startRedis(ctx)
	if err != nil {
		return nil, err
	}
	defer stop()
	put := redisPut(cli)
	args := []string{"-watch", "-backend", "redis", "-node", s.Addr()}
	var rows []row
	for _, n := range []int{1, 200} {
		root := fmt.Sprintf("/lat%d", n)
		d, dir, done, err := valueDaemon(ctx, put, fmt.Sprintf("redis-watch-%d", n), root, n, "", args)
		if err != nil {
			done()
			return rows, fmt.Errorf("%d resources: %w", n, err)
		}
		lat, puts, cpuPerChange, err := timedChanges(ctx, d, put, dir, root, n)
		if err != nil {
			done()
			return rows, err
		}
		label := fmt.Sprintf("redis watch, %d resource(s)", n)
		rows = append(rows,
			row{label + ": change-to-file p50", fmtDur(pct(lat, 50)), "<= 1.5× etcd", fmt.Sprintf("SET → destination seen (inotify), %d changes back to back; SET round trip alone p50 %s", len(lat), fmtDur(pct(puts, 50)))},
			row{label + ": change-to-file p99", fmtDur(pct(lat, 99)), "", fmt.Sprintf("max %s", fmtDur(pct(lat, 100)))},
			row{label + ": daemon CPU per change", fmtDur(cpuPerChange), "", "utime+stime delta / changes"},
		)
		if n == 200 {
			c0, err := redisCalls(ctx, cli, "scan", "mget", "hgetall")
			if err != nil {
				done()
				return rows, err
			}
			if _, _, err := latencyLoop(ctx, put, dir, root, n, 100, 0, "r"); err != nil {
				done()
				return rows, err
			}
			c1, err := redisCalls(ctx, cli, "scan", "mget", "hgetall")
			if err != nil {
				done()
				return rows, err
			}
			rows = append(rows, row{label + ": store reads during 100 changes", fmt.Sprintf("%.0f MGET, %.0f SCAN", c1["mget"]-c0["mget"], c1["scan"]-c0["scan"]), "100 MGET, 0 SCAN",
				fmt.Sprintf("INFO commandstats deltas (HGETALL %.0f); one read of the changed key per change, no re-list", c1["hgetall"]-c0["hgetall"])})
			rss, hwm, _ := procMem(d.pid())
			rows = append(rows, row{label + ": RSS after the changes", fmtMB(rss), "<= 15 MB", rssSplit(d.pid()) + ", VmHWM " + fmtMB(hwm)})
			r, err := restartRow(ctx, s, cli, put, dir, root, n, label)
			if err != nil {
				done()
				return rows, err
			}
			rows = append(rows, r)
		}
		done()
	}
	// The same with keyspace notifications (-redis-watch keyspace).
	if err := cli.Do(ctx, cli.B().ConfigSet().ParameterValue().ParameterValue("notify-keyspace-events", "KEA").Build()).Error(); err != nil {
		return rows, err
	}
	root := "/ks1"
	d, dir, done, err := valueDaemon(ctx, put, "redis-keyspace-1", root, 1, "", append(args, "-redis-watch", "keyspace"))
	defer done()
	if err != nil {
		return rows, fmt.Errorf("keyspace: %w", err)
	}
	lat, puts, cpuPerChange, err := timedChanges(ctx, d, put, dir, root, 1)
	if err != nil {
		return rows, err
	}
	label := "redis watch -redis-watch keyspace, 1 resource"
	rows = append(rows,
		row{label + ": change-to-file p50 / p99", fmtDur(pct(lat, 50)) + " / " + fmtDur(pct(lat, 99)), "<= 1.5× etcd", fmt.Sprintf("PSUBSCRIBE __keyspace@0__:<prefix>*; %d changes; SET round trip alone p50 %s", len(lat), fmtDur(pct(puts, 50)))},
		row{label + ": daemon CPU per change", fmtDur(cpuPerChange), "", "utime+stime delta / changes"},
	)
	return rows, nil
}

// restartRow restarts the server under a running daemon (SIGTERM, the
// same port) and measures the time from the restart until a change made
// right after it is in its file, and the prefix re-lists (SCAN walks)
// since the restart.
func restartRow(ctx context.Context, s *testserver.RedisServer, cli rueidis.Client, put putFunc, dir, root string, n int, label string) (row, error) {
	start := time.Now()
	if err := s.Restart(ctx); err != nil {
		return row{}, err
	}
	up := time.Since(start)
	// The client's old connection is gone: its first write fails (put
	// tries again).
	if _, _, err := latencyLoop(ctx, put, dir, root, n, 1, 0, "restart"); err != nil {
		return row{}, fmt.Errorf("after the restart: %w", err)
	}
	took := time.Since(start)
	calls, err := redisCalls(ctx, cli, "scan")
	if err != nil {
		return row{}, err
	}
	return row{label + ": server restart → next change in its file", fmtDur(took), "",
		fmt.Sprintf("graceful restart on the same port (server up again after %s); %.0f SCAN since (one re-list per watched prefix)", fmtDur(up), calls["scan"])}, nil
}
