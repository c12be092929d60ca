package chains

import (
	"sync"
	"testing"
	"time"
)

func TestHeadWatch(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 20, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type head struct {
		number uint64
		at     time.Duration // after t0
	}
	for _, tc := range []struct {
		name    string
		maxAge  time.Duration // the chain's MaxHeadAge; 0: unset
		heads   []head
		checkAt time.Duration // after t0, when the watch was created
		want    string        // the error; "" for ready
	}{
		{name: "nothing observed yet, within max_head_age", maxAge: time.Minute, checkAt: time.Minute},
		{name: "nothing observed after max_head_age", maxAge: time.Minute, checkAt: time.Minute + time.Second,
			want: "chain 1 (ethereum): no head observed for 1m1s (max_head_age 1m0s)"},
		{name: "unset max_head_age is the default", checkAt: DefaultMaxHeadAge},
		{name: "unset max_head_age fails after the default", checkAt: DefaultMaxHeadAge + time.Second,
			want: "chain 1 (ethereum): no head observed for 5m1s (max_head_age 5m0s)"},
		{name: "fresh head", maxAge: time.Minute, heads: []head{{100, 50 * time.Second}}, checkAt: 100 * time.Second},
		{name: "head exactly max_head_age old", maxAge: time.Minute, heads: []head{{100, time.Minute}}, checkAt: 2 * time.Minute},
		{name: "stale head", maxAge: time.Minute, heads: []head{{100, 10 * time.Second}}, checkAt: 80 * time.Second,
			want: "chain 1 (ethereum): head 100 has not advanced for 1m10s (max_head_age 1m0s)"},
		{name: "the same head again does not advance", maxAge: time.Minute,
			heads:   []head{{100, 0}, {100, 30 * time.Second}, {100, 61 * time.Second}},
			checkAt: 61 * time.Second,
			want:    "chain 1 (ethereum): head 100 has not advanced for 1m1s (max_head_age 1m0s)"},
		{name: "a lower head does not advance", maxAge: time.Minute,
			heads:   []head{{100, 0}, {99, 50 * time.Second}},
			checkAt: 90 * time.Second,
			want:    "chain 1 (ethereum): head 100 has not advanced for 1m30s (max_head_age 1m0s)"},
		{name: "a higher head advances", maxAge: time.Minute,
			heads:   []head{{100, 0}, {100, 30 * time.Second}, {101, 50 * time.Second}},
			checkAt: 110 * time.Second},
		{name: "the first head counts from when it was read", maxAge: time.Minute,
			heads: []head{{0, 2 * time.Minute}}, checkAt: 3 * time.Minute},
		{name: "sub-second ages in milliseconds", maxAge: 100 * time.Millisecond,
			heads: []head{{7, 0}}, checkAt: 150 * time.Millisecond,
			want: "chain 1 (ethereum): head 7 has not advanced for 150ms (max_head_age 100ms)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewHeadWatch(Chain{ID: 1, Name: "ethereum", MaxHeadAge: tc.maxAge}, t0)
			for _, h := range tc.heads {
				w.Observe(h.number, at(h.at))
			}
			err := w.Check(at(tc.checkAt))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Check: %v, want ready", err)
			case tc.want != "" && err == nil:
				t.Fatalf("Check: ready, want %q", tc.want)
			case tc.want != "" && err.Error() != tc.want:
				t.Fatalf("Check: %q, want %q", err, tc.want)
			}
		})
	}
}

// Observe and Check run from different goroutines (the scanner's loop, /readyz): the race
// detector must see nothing, and the highest head wins.
func TestHeadWatchConcurrentUse(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 20, 0, 0, 0, time.UTC)
	w := NewHeadWatch(Chain{ID: 1, Name: "ethereum", MaxHeadAge: time.Minute}, t0)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 100 {
				w.Observe(uint64(g*100+i), t0.Add(time.Duration(i)*time.Second))
				_ = w.Check(t0.Add(time.Duration(i) * time.Second))
			}
		})
	}
	wg.Wait()
	err := w.Check(t0.Add(200 * time.Second))
	if want := "chain 1 (ethereum): head 399 has not advanced for 1m41s (max_head_age 1m0s)"; err == nil || err.Error() != want {
		t.Fatalf("Check: %v, want %q", err, want)
	}
}
