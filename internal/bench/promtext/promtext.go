// Package promtext reads the Prometheus text exposition the benches
// scrape (confit's /metrics, etcd's and its gRPC proxy's).
package promtext

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Timeout bounds one Scrape.
const Timeout = 5 * time.Second

// Scrape GETs url (within Timeout, or sooner when ctx ends) and returns
// its series, "name{labels}" or "name", each with its value. Comments and
// lines whose value does not parse are skipped.
func Scrape(ctx context.Context, url string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// Sum adds every series of metric in m whose labels contain all of
// labels (`grpc_method="Range"`); false when there is none.
func Sum(m map[string]float64, metric string, labels ...string) (float64, bool) {
	var sum float64
	found := false
	for k, v := range m {
		name, lbl, _ := strings.Cut(k, "{")
		if name != metric {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(lbl, l)
		}
		if ok {
			sum += v
			found = true
		}
	}
	return sum, found
}
