package main

// What the bench reads from /proc and from Prometheus endpoints.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/confit-dev/confit/internal/bench/promtext"
)

// procCPU returns pid's user+system CPU time.
func procCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(data, ')')
	f := strings.Fields(string(data[i+2:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ
	return time.Duration(ut+st) * time.Second / hz
}

// procKB returns the "Name: N kB" fields of a /proc file, in bytes.
func procKB(path string) map[string]int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if n, found := strings.CutSuffix(strings.TrimSpace(v), " kB"); ok && found {
			kb, _ := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
			out[strings.TrimSpace(k)] = kb * 1024
		}
	}
	return out
}

// rss returns pid's VmRSS in bytes.
func rss(pid int) int64 { return procKB(fmt.Sprintf("/proc/%d/status", pid))["VmRSS"] }

// private returns pid's private memory (Private_Clean + Private_Dirty of
// smaps_rollup): what one more sidecar costs the machine, the shared pages
// of the binary left out.
func private(pid int) int64 {
	m := procKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	return m["Private_Clean"] + m["Private_Dirty"]
}

func memAvailable() int64 { return procKB("/proc/meminfo")["MemAvailable"] }

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// tcpConns counts the ESTABLISHED TCP connections on this machine whose
// local port is port: the server side of every client connection to it.
func tcpConns(port int) int {
	want := fmt.Sprintf(":%04X", port)
	n := 0
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			if len(fl) > 3 && fl[3] == "01" && strings.HasSuffix(fl[1], want) {
				n++
			}
		}
		f.Close()
	}
	return n
}

// median returns the median of xs (0 for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// pct returns the p-th percentile of ds (0 for none), nearest rank.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// metrics scrapes a Prometheus text endpoint and returns, for each metric
// name in want, the sum of its samples whose labels contain every filter
// given for it (`grpc_method="Range"`); a name with no such sample is
// left out.
func metrics(ctx context.Context, url string, want map[string][]string) (map[string]float64, error) {
	m, err := promtext.Scrape(ctx, url)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for name, filters := range want {
		if v, ok := promtext.Sum(m, name, filters...); ok {
			out[name] = v
		}
	}
	return out, nil
}
