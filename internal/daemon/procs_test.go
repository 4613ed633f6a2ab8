package daemon

import (
	"runtime"
	"testing"
)

func TestOneProcWhenSteady(t *testing.T) {
	def := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.SetDefaultGOMAXPROCS() })
	OneProcWhenSteady(true)
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Errorf("steady: GOMAXPROCS = %d, want 1", got)
	}
	OneProcWhenSteady(false)
	if got := runtime.GOMAXPROCS(0); got != def {
		t.Errorf("not steady: GOMAXPROCS = %d, want the default %d", got, def)
	}
}
