// Command sighelper is the child of exec mode's tests: it records the
// signals it receives, one line each, in the file -log, and can crash,
// ignore SIGTERM or leave orphans behind.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	// Go's runtime preempts goroutines with SIGURG, which a Notify for
	// SIGURG would see: without preemption, a SIGURG logged came from
	// outside.
	if !strings.Contains(os.Getenv("GODEBUG"), "asyncpreemptoff=1") {
		self, _ := os.Executable()
		env := append(os.Environ(), "GODEBUG=asyncpreemptoff=1")
		if err := syscall.Exec(self, os.Args, env); err != nil {
			fmt.Fprintln(os.Stderr, "sighelper: re-exec:", err)
			os.Exit(99)
		}
	}
	logPath := flag.String("log", "", "append received signals to this file")
	exitCode := flag.Int("exit", -1, "exit with this code after -after")
	after := flag.Duration("after", 0, "when to exit with -exit")
	onTerm := flag.String("on-term", "exit:0", "on SIGTERM: exit:N or ignore")
	orphans := flag.Int("orphans", 0, "leave this many orphaned processes at start")
	flag.Parse()

	f, err := os.OpenFile(*logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sighelper:", err)
		os.Exit(98)
	}
	record := func(s string) { fmt.Fprintln(f, s) }

	sigs := []os.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2,
		syscall.SIGURG, syscall.SIGWINCH, syscall.SIGQUIT, syscall.SIGALRM}
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, sigs...)
	for range *orphans {
		// The shell exits at once; its sleep is orphaned and exits soon.
		_ = exec.Command("/bin/sh", "-c", "sleep 0.2 & exit 0").Run()
	}
	record(fmt.Sprintf("start %d", os.Getpid()))

	var timer <-chan time.Time
	if *exitCode >= 0 {
		timer = time.After(*after)
	}
	for {
		select {
		case <-timer:
			record(fmt.Sprintf("exit %d", *exitCode))
			os.Exit(*exitCode)
		case s := <-ch:
			name := strings.ToUpper(strings.ReplaceAll(s.String(), " ", "-"))
			if sig, ok := s.(syscall.Signal); ok {
				name = sigName(sig)
			}
			record(name)
			if s == syscall.SIGTERM && *onTerm != "ignore" {
				var n int
				fmt.Sscanf(*onTerm, "exit:%d", &n)
				record(fmt.Sprintf("exit %d", n))
				os.Exit(n)
			}
		}
	}
}

func sigName(s syscall.Signal) string {
	switch s {
	case syscall.SIGHUP:
		return "HUP"
	case syscall.SIGINT:
		return "INT"
	case syscall.SIGTERM:
		return "TERM"
	case syscall.SIGUSR1:
		return "USR1"
	case syscall.SIGUSR2:
		return "USR2"
	case syscall.SIGURG:
		return "URG"
	case syscall.SIGWINCH:
		return "WINCH"
	case syscall.SIGQUIT:
		return "QUIT"
	case syscall.SIGALRM:
		return "ALRM"
	}
	return fmt.Sprint(int(s))
}
