// Command bench measures confit's performance figures and prints them as a
// table (run it with `make bench`). It drives the real binary (bin/confit)
// against generated fixtures and, where a row needs one, a real server
// started from scripts/servers. Figures are printed, never asserted.
//
// Usage: go run ./internal/bench [-bin bin/confit] [-runs 20] [-only REGEXP] [-quick]
// (-help lists the windows and rates of the watch-mode rows)
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"syscall"
	"text/tabwriter"
	"time"
)

// row is one line of the results table.
type row struct {
	name, figure, goal, note string
}

var (
	binFlag  = flag.String("bin", "bin/confit", "confit binary to measure")
	runsFlag = flag.Int("runs", 20, "runs per one-shot measurement")
	onlyFlag = flag.String("only", "", "run only benchmarks whose name matches this regexp")
)

// bench is one named measurement producing rows.
type bench struct {
	name string
	run  func() ([]row, error)
}

func main() {
	flag.Parse()
	quick()
	bin, err := filepath.Abs(*binFlag)
	if err != nil {
		fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		fatal(fmt.Errorf("%s: %w (run `make build` first)", bin, err))
	}
	*binFlag = bin
	only := regexp.MustCompile(*onlyFlag)

	benches := []bench{
		{"oneshot-200-templates", benchOneshotMany},
		{"oneshot-haproxy-10k", benchOneshotHAProxy},
		{"oneshot-200-shared", benchOneshotShared},
		{"watch-start-200", benchWatchStart},
	}
	benches = append(benches, extraBenches...)

	var rows []row
	for _, b := range benches {
		if !only.MatchString(b.name) {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: %s ...\n", b.name)
		rs, err := b.run()
		if err != nil {
			rows = append(rows, row{name: b.name, figure: "error", note: err.Error()})
			continue
		}
		rows = append(rows, rs...)
	}
	printTable(rows)
}

// extraBenches are added by the files for server-backed measurements.
var extraBenches []bench

func printTable(rows []row) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.Debug)
	fmt.Fprintln(w, "measurement\tfigure\tgoal\tnote")
	fmt.Fprintln(w, "-----------\t------\t----\t----")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.name, r.figure, r.goal, r.note)
	}
	w.Flush()
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// runResult is one whole-process run.
type runResult struct {
	wall   time.Duration
	cpu    time.Duration // user + system
	maxRSS int64         // bytes
}

// runOnce runs confit with args and returns its wall time and peak RSS.
func runOnce(args ...string) (runResult, error) {
	cmd := exec.Command(*binFlag, args...)
	cmd.Env = append(os.Environ(), "CONFIT_CONFIG_FILE="+os.DevNull)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		return runResult{}, fmt.Errorf("%v: %s", err, out)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return runResult{wall: wall, cpu: cpu, maxRSS: ru.Maxrss * 1024}, nil
}

// oneshotStats are the medians of n one-shot runs.
type oneshotStats struct {
	wall, p90, cpu time.Duration
	maxRSS         int64
}

// oneshot measures n runs of a one-shot render; before each run the
// destinations are removed so every run renders and writes everything.
func oneshot(n int, outDir string, args ...string) (oneshotStats, error) {
	var walls, cpus []time.Duration
	var st oneshotStats
	for range n {
		if err := os.RemoveAll(outDir); err != nil {
			return st, err
		}
		r, err := runOnce(args...)
		if err != nil {
			return st, err
		}
		walls = append(walls, r.wall)
		cpus = append(cpus, r.cpu)
		st.maxRSS = max(st.maxRSS, r.maxRSS)
	}
	slices.Sort(walls)
	slices.Sort(cpus)
	st.wall, st.p90, st.cpu = walls[len(walls)/2], walls[len(walls)*9/10], cpus[len(cpus)/2]
	return st, nil
}

// oneshotRows formats the rows of a one-shot measurement.
func oneshotRows(what, wallGoal, rssGoal, confdWall, confdRSS string, st oneshotStats) []row {
	return []row{
		{what + ": wall", fmtDur(st.wall), wallGoal, fmt.Sprintf("median of %d runs, p90 %s; %s", *runsFlag, fmtDur(st.p90), confdWall)},
		{what + ": CPU (user+sys)", fmtDur(st.cpu), "", "median; less noisy than wall time on this VM's disk"},
		{what + ": peak RSS", fmtMB(st.maxRSS), rssGoal, confdRSS},
	}
}

// tmpfs is where the one-shot fixtures are measured a second time, to
// take the disk (fsync of every destination) out of the figures.
const tmpfs = "/dev/shm"

// oneshotFile measures a file-backend one-shot run of the fixture that
// fixture writes into a directory (returning its values file): on the
// default temporary directory, then again on tmpfs when there is one.
func oneshotFile(what, wallGoal, rssGoal, confdWall, confdRSS string, fixture func(dir string) (string, error)) ([]row, error) {
	measure := func(parent string) (oneshotStats, error) {
		dir, err := os.MkdirTemp(parent, "confit-bench-")
		if err != nil {
			return oneshotStats{}, err
		}
		defer os.RemoveAll(dir)
		values, err := fixture(dir)
		if err != nil {
			return oneshotStats{}, err
		}
		return oneshot(*runsFlag, filepath.Join(dir, "out"), "-onetime", "-backend", "file", "-file", values, "-confdir", dir, "-log-level", "warn")
	}
	st, err := measure("")
	if err != nil {
		return nil, err
	}
	rows := oneshotRows(what, wallGoal, rssGoal, confdWall, confdRSS, st)
	if haveTmpfs() {
		ts, err := measure(tmpfs)
		if err != nil {
			return nil, err
		}
		rows = append(rows,
			row{what + ", on tmpfs: wall", fmtDur(ts.wall), wallGoal, fmt.Sprintf("median of %d runs, p90 %s; fixture and destinations in %s", *runsFlag, fmtDur(ts.p90), tmpfs)},
			row{what + ", on tmpfs: peak RSS", fmtMB(ts.maxRSS), rssGoal, ""})
	}
	return rows, nil
}

func benchOneshotMany() ([]row, error) {
	return oneshotFile("one-shot, 200 resources x 50-line templates (file)", "< 40 ms", "< 15 MB", "confd 0.60 s", "confd 33 MB", fixtureManyTemplates)
}

func benchOneshotShared() ([]row, error) {
	return oneshotFile("one-shot, 200 resources x one shared 50-line template (file)", "", "", "", "", fixtureSharedTemplate)
}

func benchOneshotHAProxy() ([]row, error) {
	return oneshotFile("one-shot, haproxy.cfg with 10k servers, 20k keys (file)", "< 40 ms", "< 20 MB", "confd 0.13 s", "confd 41 MB", fixtureHAProxy)
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
}

func fmtMB(b int64) string {
	return fmt.Sprintf("%.1f MB", float64(b)/(1<<20))
}
