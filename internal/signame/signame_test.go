package signame

import (
	"syscall"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want syscall.Signal
		err  bool
	}{
		{in: "SIGHUP", want: syscall.SIGHUP},
		{in: "hup", want: syscall.SIGHUP},
		{in: "SigUsr1", want: syscall.SIGUSR1},
		{in: "15", want: syscall.SIGTERM},
		{in: "SIGNOPE", err: true},
		{in: "0", err: true},
		{in: "", err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("Parse(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
			}
			if err == nil && Name(got) == "" {
				t.Errorf("Name(%v) is empty", got)
			}
		})
	}
	if got := Name(syscall.SIGUSR2); got != "SIGUSR2" {
		t.Errorf("Name(SIGUSR2) = %q", got)
	}
}
