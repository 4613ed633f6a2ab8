package register

import (
	"testing"
	"time"
)

func TestMachine(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		rise, fall int
		limit      int
		window     time.Duration
		checks     string // p = pass, f = fail, one per second
		want       string // the state after each check: d, u, h
	}{
		{name: "rise 2", rise: 2, fall: 1, checks: "ppp", want: "duu"},
		{name: "fall 3", rise: 1, fall: 3, checks: "pfffp", want: "uuudu"},
		{name: "a pass resets the fall count", rise: 1, fall: 2, checks: "pfpfpff", want: "uuuuuud"},
		{name: "a failure resets the rise count", rise: 3, fall: 1, checks: "ppfppp", want: "dddddu"},
		{name: "flap limit holds it down", rise: 1, fall: 1, limit: 2, window: time.Hour,
			checks: "pfpfpfp", want: "ududhdh"},
		{name: "the window lets it up again", rise: 1, fall: 1, limit: 1, window: 3 * time.Second,
			checks: "pfpp", want: "udhu"},
		{name: "no limit", rise: 1, fall: 1, checks: "pfpfpfp", want: "udududu"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine(Check{Rise: tc.rise, Fall: tc.fall}, tc.limit, tc.window)
			var got []byte
			for i, c := range tc.checks {
				s, _ := m.observe(t0.Add(time.Duration(i)*time.Second), c == 'p')
				got = append(got, s.String()[0])
			}
			if string(got) != tc.want {
				t.Errorf("states = %s, want %s", got, tc.want)
			}
		})
	}
}
