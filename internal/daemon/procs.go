package daemon

import "runtime"

// OneProcWhenSteady is a Config.Steady that runs the daemon's Go code on one
// processor (GOMAXPROCS 1) in the steady state of watch mode and on the
// runtime's default otherwise. In the steady state a change crosses a
// chain of goroutines one after the other (the backend's watch, the engine,
// the commit); with a second processor idle, each hand-off wakes a thread
// to look for work, and the runtime's monitor polls while any runs. One
// processor took the Consul rows of 200 resources from 0.88 / 0.93 to
// 0.78 / 0.73 ms of CPU per change (medians of four rounds in alternation),
// p50 from 2.45 to 2.2–2.3 ms. Renders in watch mode run one after the other on the engine's
// loop either way; loading conf.d and committing a batch of several
// resources get every core back. Not used when GOMAXPROCS is set.
func OneProcWhenSteady(steady bool) {
	if steady {
		runtime.GOMAXPROCS(1)
	} else {
		runtime.SetDefaultGOMAXPROCS()
	}
}
