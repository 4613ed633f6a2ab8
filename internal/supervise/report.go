package supervise

import (
	"fmt"
	"io"
)

// WriteMetrics writes the child's gauges and counters in Prometheus' text
// format: confit_exec_up, confit_exec_restarts_total,
// confit_exec_last_exit_code (-1 before any exit) and
// confit_exec_signals_total.
func (s *Supervisor) WriteMetrics(w io.Writer) {
	st := s.State()
	up := 0
	if st.Status == Running {
		up = 1
	}
	fmt.Fprintf(w, "# HELP confit_exec_up 1 while the -exec command runs.\n# TYPE confit_exec_up gauge\nconfit_exec_up %d\n", up)
	fmt.Fprintf(w, "# HELP confit_exec_restarts_total Starts of the -exec command after the first.\n# TYPE confit_exec_restarts_total counter\nconfit_exec_restarts_total %d\n", st.Restarts)
	fmt.Fprintf(w, "# HELP confit_exec_last_exit_code Exit code of the last -exec child (128+N: killed by signal N; -1: none exited yet).\n# TYPE confit_exec_last_exit_code gauge\nconfit_exec_last_exit_code %d\n", st.LastExit)
	fmt.Fprintf(w, "# HELP confit_exec_signals_total Signals sent to the -exec command's process group.\n# TYPE confit_exec_signals_total counter\nconfit_exec_signals_total %d\n", st.Signals)
}

// Health describes the child in one line, "exec: running pid 42,
// restarts 0, last exit none", and counts it failing (1) unless it runs.
func (s *Supervisor) Health() (lines []string, failing int) {
	st := s.State()
	last := "none"
	if st.LastExit >= 0 {
		last = fmt.Sprint(st.LastExit)
	}
	pid := ""
	if st.PID != 0 {
		pid = fmt.Sprintf(" pid %d", st.PID)
	}
	if st.Status != Running {
		failing = 1
	}
	return []string{fmt.Sprintf("exec: %s%s, restarts %d, last exit %s", st.Status, pid, st.Restarts, last)}, failing
}
