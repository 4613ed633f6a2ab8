package reap

import (
	"syscall"
	"unsafe"
)

// waitid's constants (linux/wait.h), which package syscall lacks.
const (
	pAll    = 0
	wExited = 0x4
	wNoWait = 0x1000000
)

// siginfoPidOffset is where si_pid lies in siginfo_t: after three ints,
// aligned as the union holding it (pointers).
var siginfoPidOffset = (12 + unsafe.Sizeof(uintptr(0)) - 1) &^ (unsafe.Sizeof(uintptr(0)) - 1)

// peek returns the pid of a child that has exited, without reaping it
// (waitid P_ALL, WEXITED|WNOHANG|WNOWAIT); 0 when none has.
func peek() (int, error) {
	var info [128]byte // sizeof(siginfo_t)
	_, _, e := syscall.Syscall6(syscall.SYS_WAITID, pAll, 0, uintptr(unsafe.Pointer(&info[0])),
		syscall.WNOHANG|wExited|wNoWait, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(*(*int32)(unsafe.Pointer(&info[siginfoPidOffset]))), nil
}

// SetSubreaper makes this process the child subreaper of its descendants
// (prctl PR_SET_CHILD_SUBREAPER): orphans are re-parented to it rather
// than to PID 1, and Reap must run.
func SetSubreaper() error {
	const prSetChildSubreaper = 36
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		return e
	}
	return nil
}
