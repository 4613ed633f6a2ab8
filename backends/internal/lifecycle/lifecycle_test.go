package lifecycle

import (
	"testing"
	"time"
)

// TestClose: Close cancels the context, waits for what Enter counted and
// Go started, and refuses Enter afterwards; a second Close does nothing.
func TestClose(t *testing.T) {
	g := New()
	ended := make(chan string, 2)
	ran := false
	if !g.Enter(func() { ran = true }) {
		t.Fatal("Enter on an open Group: false")
	}
	if !ran {
		t.Error("Enter did not run its locked func")
	}
	go func() {
		defer g.Done()
		<-g.Context().Done()
		time.Sleep(10 * time.Millisecond) // Close must still wait
		ended <- "entered"
	}()
	g.Go(func() {
		<-g.Context().Done()
		ended <- "go"
	})
	closed := make(chan bool)
	go func() { closed <- g.Close() }()
	select {
	case ok := <-closed:
		if !ok {
			t.Error("first Close: false")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10 s")
	}
	if len(ended) != 2 {
		t.Errorf("Close returned with %d of 2 goroutines ended", len(ended))
	}
	if g.Enter(func() { t.Error("Enter after Close ran its func") }) {
		t.Error("Enter after Close: true")
	}
	if g.Close() {
		t.Error("second Close: true")
	}
}
