// Command fleet measures what a fleet of confit sidecars costs one store
// (run it with `make bench-fleet`; it is not part of `make test`). For each
// store and fleet size N it starts one real etcd (directly, or through
// etcd's own gRPC proxy) or one Consul agent on loopback, N real
// `confit -watch` processes with a small conf.d each (destinations on
// tmpfs), and one writer that changes a key every -interval. It prints, per
// cell: the store's CPU per update, change → file latency across the fleet
// (p50/p99 of every delivery, and of the slowest sidecar per update), the
// store's RSS, the connections it holds, each sidecar's private memory, and
// the reconnect storm after the store is killed and restarted (requests per
// second at the store in the first 10 s, time until every sidecar has
// re-read), once per -storm-jitter (confit's -reconnect-jitter).
//
// Results are appended to -results as JSON lines and a cell already there
// (without an error) is skipped (-force runs it again), so a long run can be resumed one N at
// a time: go run ./internal/bench/fleet -store etcd -n 500.
//
// Figures are printed, never asserted; see docs/SCALE.md for how to read
// them.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

var (
	binFlag      = flag.String("bin", "bin/confit", "confit binary to run as the sidecars")
	storeFlag    = flag.String("store", "etcd,etcd-proxy,consul", "stores to measure, comma-separated: etcd, etcd-proxy (one etcd grpc-proxy in front), consul")
	nFlag        = flag.String("n", "10,100,500,1000", "fleet sizes, comma-separated")
	updatesFlag  = flag.Int("updates", 100, "updates the writer makes per cell (0: only the reconnect storms)")
	intervalFlag = flag.Duration("interval", 100*time.Millisecond, "time between two updates")
	dirFlag      = flag.String("dir", "/dev/shm", "parent directory of the sidecars' conf.d and destinations (tmpfs keeps the disk out)")
	resultsFlag  = flag.String("results", "fleet-results.jsonl", "file the results are appended to, one JSON line per cell; cells found there without an error are skipped")
	forceFlag    = flag.Bool("force", false, "run cells that -results already holds again")
	jitterFlag   = flag.String("storm-jitter", "0,auto", "reconnect storms to run per cell: -reconnect-jitter values, comma-separated; auto is N / -relist-rate; empty runs none")
	relistRate   = flag.Int("relist-rate", 200, "re-lists per second the store should see at most: the auto jitter window is N / this")
	outageFlag   = flag.Duration("outage", 2*time.Second, "how long the store stays down in a reconnect storm")
	startGap     = flag.Duration("start-gap", 10*time.Millisecond, "pause between starting two sidecars")
	maxMemFlag   = flag.Float64("max-mem", 0.6, "skip a fleet size whose sidecars would take more than this share of MemAvailable (estimated from the last cell)")
	tableOnly    = flag.Bool("table", false, "print the table of -results and exit")
)

func main() {
	flag.Parse()
	if *tableOnly {
		printTable(os.Stdout, loadResults(*resultsFlag))
		return
	}
	bin, err := filepath.Abs(*binFlag)
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		fatal(fmt.Errorf("confit binary: %w (run `make build` first)", err))
	}
	var ns []int
	for _, f := range strings.Split(*nFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fatal(fmt.Errorf("-n: %q is not a fleet size", f))
		}
		ns = append(ns, n)
	}
	slices.Sort(ns)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	build, binBytes, err := binBuild(ctx, bin)
	if err != nil {
		fatal(err)
	}

	done := map[string]bool{}
	for _, r := range loadResults(*resultsFlag) {
		done[r.key()] = r.Error == ""
	}
	var perSidecar float64 // bytes of private memory per sidecar, from the last cell
	for _, store := range strings.Split(*storeFlag, ",") {
		store = strings.TrimSpace(store)
		if !slices.Contains([]string{"etcd", "etcd-proxy", "consul"}, store) {
			fatal(fmt.Errorf("-store: unknown store %q (etcd, etcd-proxy, consul)", store))
		}
		for _, n := range ns {
			if ctx.Err() != nil {
				return
			}
			cell := Result{Store: store, N: n, Interval: intervalFlag.String(), Updates: *updatesFlag, Build: build, BinBytes: binBytes}
			if done[cell.key()] && !*forceFlag {
				fmt.Fprintf(os.Stderr, "fleet: %s N=%d: in %s already (-force runs it again)\n", store, n, *resultsFlag)
				continue
			}
			if avail := memAvailable(); perSidecar > 0 && avail > 0 && perSidecar*float64(n) > *maxMemFlag*float64(avail) {
				fmt.Fprintf(os.Stderr, "fleet: %s N=%d: skipped: ~%.1f GB of sidecars, %.1f GB available\n",
					store, n, perSidecar*float64(n)/1e9, float64(avail)/1e9)
				continue
			}
			fmt.Fprintf(os.Stderr, "fleet: %s N=%d (load %s) ...\n", store, n, loadAvg())
			r, err := runCell(ctx, bin, cell)
			if err != nil {
				fmt.Fprintf(os.Stderr, "fleet: %s N=%d: %v\n", store, n, err)
				r.Error = err.Error()
			}
			if r.SidecarPrivateMB > 0 {
				perSidecar = r.SidecarPrivateMB * 1e6
			}
			if err := appendResult(*resultsFlag, r); err != nil {
				fatal(err)
			}
		}
	}
	printTable(os.Stdout, loadResults(*resultsFlag))
}

// binBuild returns the first line of `bin -version` (confit's version
// names the commit) and the binary's size in bytes.
func binBuild(ctx context.Context, bin string) (string, int64, error) {
	fi, err := os.Stat(bin)
	if err != nil {
		return "", 0, fmt.Errorf("confit binary: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-version").Output()
	if err != nil {
		return "", 0, fmt.Errorf("%s -version: %w", bin, err)
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line, fi.Size(), nil
}

// Result is one cell: one store, one fleet size.
type Result struct {
	Store    string `json:"store"`
	N        int    `json:"n"`
	Interval string `json:"interval"`
	Updates  int    `json:"updates"`
	When     string `json:"when"`
	Load     string `json:"load"` // load average when the cell started
	// Build is the sidecars' `confit -version` line and BinBytes the
	// binary's size: the build a cell measured.
	Build    string `json:"build,omitempty"`
	BinBytes int64  `json:"bin_bytes,omitempty"`
	Error    string `json:"error,omitempty"`

	StartSeconds      float64 `json:"start_s"`             // until every sidecar had rendered
	SidecarPrivateMB  float64 `json:"sidecar_private_mb"`  // median Private_Clean+Private_Dirty
	SidecarsPrivateGB float64 `json:"sidecars_private_gb"` // all of them
	SidecarCPUus      float64 `json:"sidecar_cpu_us"`      // per sidecar per update

	StoreIdleCPUms  float64 `json:"store_idle_cpu_ms_per_s"` // before the updates
	StoreCPUms      float64 `json:"store_cpu_ms"`            // per update
	ProxyCPUms      float64 `json:"proxy_cpu_ms,omitempty"`  // per update (etcd-proxy)
	StoreRSSMB      float64 `json:"store_rss_mb"`
	ProxyRSSMB      float64 `json:"proxy_rss_mb,omitempty"`
	StoreConns      int     `json:"store_conns"`
	ProxyConns      int     `json:"proxy_conns,omitempty"` // sidecar connections at the proxy
	StoreWatchers   float64 `json:"store_watchers,omitempty"`
	Deliveries      int     `json:"deliveries"` // (sidecar, update) pairs seen on disk
	Missing         int     `json:"missing"`    // never seen within the deadline
	LatP50ms        float64 `json:"lat_p50_ms"`
	LatP99ms        float64 `json:"lat_p99_ms"`
	SlowestP50ms    float64 `json:"slowest_p50_ms"`
	SlowestP99ms    float64 `json:"slowest_p99_ms"`
	SlowestMaxms    float64 `json:"slowest_max_ms"`
	WriterPutP50ms  float64 `json:"put_p50_ms"`
	WriterLateTicks int     `json:"writer_late_ticks"` // updates sent more than one interval late

	Storms []Storm `json:"storms,omitempty"`
}

// Storm is one kill -9 and restart of the store under the fleet.
type Storm struct {
	Jitter string `json:"jitter"`
	// PerSecond are the requests the store received in each second after
	// it was back (etcd: Range + Watch create/cancel messages, from its
	// metrics; Consul: HTTP requests counted by a proxy in front).
	PerSecond []int `json:"per_second"`
	// RelistsPerSecond are the re-lists among them (etcd: Range; Consul:
	// KV reads), CPUPerSecond the store's CPU in each second, in ms.
	RelistsPerSecond []int   `json:"relists_per_second"`
	CPUPerSecond     []int   `json:"cpu_ms_per_second"`
	Peak             int     `json:"peak"`
	First10s         int     `json:"first_10s"`
	Relists          int     `json:"relists"`    // etcd: Range requests; Consul: KV reads
	AllRead          float64 `json:"all_read_s"` // from the restart until N re-lists had arrived (etcd) or every file held the value put once the store was healthy (Consul)
	Converged        float64 `json:"converged_s"`
	CPUms            float64 `json:"store_cpu_ms_10s"` // store CPU in the first 10 s after the restart, its own start included
	Note             string  `json:"note,omitempty"`
}

func (r Result) key() string { return fmt.Sprintf("%s/%d/%s/%d", r.Store, r.N, r.Interval, r.Updates) }

func loadResults(path string) []Result {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		fatal(err)
	}
	defer f.Close()
	var out []Result
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		var r Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			fatal(fmt.Errorf("%s:%d: %w", path, line, err))
		}
		out = append(out, r)
	}
	// The latest result of a cell wins.
	seen := map[string]int{}
	var uniq []Result
	for _, r := range out {
		if i, ok := seen[r.key()]; ok {
			uniq[i] = r
			continue
		}
		seen[r.key()] = len(uniq)
		uniq = append(uniq, r)
	}
	return uniq
}

func appendResult(path string, r Result) error {
	r.When = time.Now().UTC().Format(time.RFC3339)
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("results: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("results %s: %w", path, err)
	}
	return f.Close()
}

func printTable(f *os.File, rs []Result) {
	var builds []string
	for _, r := range rs {
		b := "build not recorded"
		if r.Build != "" {
			b = fmt.Sprintf("%s, %d bytes", r.Build, r.BinBytes)
		}
		if !slices.Contains(builds, b) {
			builds = append(builds, b)
		}
	}
	for _, b := range builds {
		fmt.Fprintf(f, "sidecars: %s\n", b)
	}
	w := tabwriter.NewWriter(f, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "store\tN\tstore CPU/update\tproxy CPU/update\tlat p50/p99\tslowest p50/p99/max\tstore RSS\tconns\tsidecar private\tsidecar CPU/update\tmissing\tload")
	for _, r := range rs {
		if r.Error != "" {
			fmt.Fprintf(w, "%s\t%d\terror: %s\n", r.Store, r.N, r.Error)
			continue
		}
		proxy := "-"
		if r.ProxyCPUms > 0 {
			proxy = fmt.Sprintf("%.1f ms", r.ProxyCPUms)
		}
		conns := strconv.Itoa(r.StoreConns)
		if r.ProxyConns > 0 {
			conns = fmt.Sprintf("%d (proxy %d)", r.StoreConns, r.ProxyConns)
		}
		fmt.Fprintf(w, "%s\t%d\t%.1f ms\t%s\t%.1f / %.1f ms\t%.1f / %.1f / %.0f ms\t%.0f MB\t%s\t%.1f MB\t%.0f µs\t%d\t%s\n",
			r.Store, r.N, r.StoreCPUms, proxy, r.LatP50ms, r.LatP99ms, r.SlowestP50ms, r.SlowestP99ms, r.SlowestMaxms,
			r.StoreRSSMB, conns, r.SidecarPrivateMB, r.SidecarCPUus, r.Missing, r.Load)
	}
	w.Flush()
	fmt.Fprintln(f)
	w = tabwriter.NewWriter(f, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "store\tN\treconnect-jitter\trequests/s, first 10 s\tre-lists/s\tstore CPU ms/s\tpeak/s\tfirst 10 s\tre-lists\tall re-read\tstore CPU, 10 s\tnote")
	for _, r := range rs {
		for _, s := range r.Storms {
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%.1f s\t%.0f ms\t%s\n", r.Store, r.N, s.Jitter, fmtSeconds(s.PerSecond, 10),
				fmtSeconds(s.RelistsPerSecond, 10), fmtSeconds(s.CPUPerSecond, 10), s.Peak, s.First10s, s.Relists, s.AllRead, s.CPUms, s.Note)
		}
	}
	w.Flush()
}

func fmtSeconds(ps []int, n int) string {
	var b strings.Builder
	for i, v := range ps {
		if i == n {
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Itoa(v))
	}
	return b.String()
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "fleet:", err)
	os.Exit(1)
}
