package periodic_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/periodic"
)

// Every runs until f says stop, and returns at once when its context ends.
func TestEveryStopsOnFalseAndOnCancel(t *testing.T) {
	var n atomic.Int32
	periodic.Every(context.Background(), time.Millisecond, func(context.Context) bool { return n.Add(1) < 3 })
	if got := n.Load(); got != 3 {
		t.Fatalf("f ran %d times, want 3 (stopped by its third false)", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	go func() {
		periodic.Every(ctx, time.Hour, func(context.Context) bool { t.Error("f ran after cancel"); return true })
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Every did not return after its context ended")
	}
}
