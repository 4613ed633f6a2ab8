package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// benchWatchStart measures how long a -watch daemon over the file backend
// takes from its start until every file of the 200-template fixture is
// written: loading conf.d, the first read, the first render of each
// resource and their commit. On the default temporary directory, then on
// tmpfs when there is one.
func benchWatchStart() ([]row, error) {
	const what = "watch start, 200 resources x 50-line templates (file): until every file is written"
	var rows []row
	parents := []string{""}
	if haveTmpfs() {
		parents = append(parents, tmpfs)
	}
	for _, parent := range parents {
		med, p90, err := watchStart(parent)
		if err != nil {
			return nil, err
		}
		name := what
		if parent != "" {
			name += ", on tmpfs"
		}
		rows = append(rows, row{name, fmtDur(med), "", fmt.Sprintf("median of %d runs, p90 %s", *runsFlag, fmtDur(p90))})
	}
	return rows, nil
}

// watchStart runs the daemon -runs times on a fixture under parent and
// returns the median and p90 of the time until the last file appears.
func watchStart(parent string) (med, p90 time.Duration, err error) {
	dir, err := os.MkdirTemp(parent, "confit-bench-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	values, err := fixtureManyTemplates(dir)
	if err != nil {
		return 0, 0, err
	}
	out := filepath.Join(dir, "out")
	var took []time.Duration
	for range *runsFlag {
		if err := os.RemoveAll(out); err != nil {
			return 0, 0, err
		}
		cmd := exec.Command(*binFlag, "-watch", "-backend", "file", "-file", values, "-confdir", dir, "-log-level", "warn")
		cmd.Env = append(os.Environ(), "CONFIT_CONFIG_FILE="+os.DevNull)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return 0, 0, err
		}
		d, werr := waitCount(out, 200, start.Add(30*time.Second))
		took = append(took, d.Sub(start))
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if werr != nil {
			return 0, 0, fmt.Errorf("%w: %s", werr, stderr.String())
		}
	}
	return pct(took, 50), pct(took, 90), nil
}

// waitCount polls dir every millisecond until it holds n files other than
// stage files (".name..."), and returns when it saw them.
func waitCount(dir string, n int, deadline time.Time) (time.Time, error) {
	for {
		entries, _ := os.ReadDir(dir)
		got := 0
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), ".") {
				got++
			}
		}
		now := time.Now()
		if got >= n {
			return now, nil
		}
		if now.After(deadline) {
			return now, fmt.Errorf("%d of %d files in %s", got, n, dir)
		}
		time.Sleep(time.Millisecond)
	}
}

// haveTmpfs reports whether tmpfs is a directory here.
func haveTmpfs() bool {
	fi, err := os.Stat(tmpfs)
	return err == nil && fi.IsDir()
}
