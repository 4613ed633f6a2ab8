package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
)

// startProfiles starts the profiles named by CONFIT_CPUPROFILE and
// CONFIT_MEMPROFILE (file paths), for `go tool pprof`, and the execution
// trace named by CONFIT_TRACE, for `go tool trace`. The returned func
// writes and closes them.
func startProfiles(getenv func(string) string, stderr io.Writer) func() {
	var stops []func()
	// stream starts what writes to the file named by env until stopped.
	stream := func(env string, start func(io.Writer) error, stop func()) {
		path := getenv(env)
		if path == "" {
			return
		}
		f, err := os.Create(path)
		if err == nil {
			err = start(f)
		}
		if err != nil {
			fmt.Fprintf(stderr, "confit: %s: %v\n", env, err)
			return
		}
		stops = append(stops, func() { stop(); f.Close() })
	}
	stream("CONFIT_CPUPROFILE", pprof.StartCPUProfile, pprof.StopCPUProfile)
	stream("CONFIT_TRACE", trace.Start, trace.Stop)
	if path := getenv("CONFIT_MEMPROFILE"); path != "" {
		stops = append(stops, func() {
			f, err := os.Create(path)
			if err != nil {
				fmt.Fprintf(stderr, "confit: CONFIT_MEMPROFILE: %v\n", err)
				return
			}
			defer f.Close()
			runtime.GC()
			pprof.Lookup("allocs").WriteTo(f, 0)
		})
	}
	return func() {
		for _, stop := range stops {
			stop()
		}
	}
}
