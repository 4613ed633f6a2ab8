package main

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	tests := []struct {
		name    string
		onetime bool
		env     map[string]string
		want    int
	}{
		{"one-shot", true, nil, oneshotGOGC},
		{"one-shot with GOGC set", true, map[string]string{"GOGC": "50"}, 100},
		{"watch", false, nil, 100},
	}
	for _, tt := range tests {
		restore := tuneGC(tt.onetime, env(tt.env))
		if got := debug.SetGCPercent(-1); got != tt.want {
			t.Errorf("%s: GOGC = %d, want %d", tt.name, got, tt.want)
		}
		debug.SetGCPercent(tt.want)
		restore()
		if got := debug.SetGCPercent(100); got != 100 {
			t.Errorf("%s: after restore GOGC = %d, want 100", tt.name, got)
		}
	}
}
