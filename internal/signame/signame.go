// Package signame reads and writes signal names as users write them in
// flags and conf.d: "SIGHUP", "HUP", "hup" or the number "1".
package signame

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
)

// names are the signals a user may name, by their name without "SIG".
var names = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT,
	"KILL": syscall.SIGKILL, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
	"TERM": syscall.SIGTERM, "ALRM": syscall.SIGALRM, "WINCH": syscall.SIGWINCH,
	"CONT": syscall.SIGCONT, "STOP": syscall.SIGSTOP, "TSTP": syscall.SIGTSTP,
	"TTIN": syscall.SIGTTIN, "TTOU": syscall.SIGTTOU, "PIPE": syscall.SIGPIPE,
	"IO": syscall.SIGIO, "PWR": syscall.SIGPWR, "SYS": syscall.SIGSYS,
	"XCPU": syscall.SIGXCPU, "XFSZ": syscall.SIGXFSZ, "VTALRM": syscall.SIGVTALRM,
	"PROF": syscall.SIGPROF, "URG": syscall.SIGURG, "CHLD": syscall.SIGCHLD,
}

// Parse returns the signal s names: a name with or without "SIG", in any
// case, or a number from 1 to 64.
func Parse(s string) (syscall.Signal, error) {
	up := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "SIG")
	if sig, ok := names[up]; ok {
		return sig, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 1 && n <= 64 {
		return syscall.Signal(n), nil
	}
	return 0, fmt.Errorf("unknown signal %q: want a name such as SIGHUP, SIGUSR1 or SIGTERM", s)
}

// Name is the signal's name with "SIG" ("SIGHUP"), or its number for a
// signal without one.
func Name(sig syscall.Signal) string {
	for n, s := range names {
		if s == sig {
			return "SIG" + n
		}
	}
	return strconv.Itoa(int(sig))
}
