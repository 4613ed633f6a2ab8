package memory_test

import (
	"testing"

	"github.com/confit-dev/confit/backends/backendtest"
	"github.com/confit-dev/confit/backends/memory"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backendtest.Harness {
		s := memory.New()
		return backendtest.Harness{
			Backend: s,
			Put:     func(t *testing.T, key, value string) { s.Put(key, value) },
			Delete:  func(t *testing.T, key string) { s.Delete(key) },
			Caps: backendtest.Caps{
				Watch:     true,
				Delete:    true,
				Binary:    true,
				Revisions: true,
				Snapshot:  true,
				History:   true,
				// Replay is false: the memory store only delivers changes
				// made after Watch was called.
			},
		}
	})
}
