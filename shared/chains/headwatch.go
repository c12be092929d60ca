package chains

import (
	"fmt"
	"sync"
	"time"
)

// HeadWatch tells whether a chain's head still advances: a node that stopped following the
// chain keeps answering with the same head, and nothing else notices. The scanner observes
// every head it reads and reports Check on /readyz. Safe for concurrent use.
type HeadWatch struct {
	id     int64
	name   string
	maxAge time.Duration

	mu       sync.Mutex
	head     uint64
	seen     bool      // a head has been observed
	advanced time.Time // when head last advanced; before any head, when the watch was created
}

// NewHeadWatch watches chain c from created on; its limit is c.MaxHeadAge (DefaultMaxHeadAge
// when unset, as in a Chain not read by Parse).
func NewHeadWatch(c Chain, created time.Time) *HeadWatch {
	maxAge := c.MaxHeadAge
	if maxAge <= 0 {
		maxAge = DefaultMaxHeadAge
	}
	return &HeadWatch{id: c.ID, name: c.Name, maxAge: maxAge, advanced: created}
}

// Observe records the head number read at at. Only a higher number than the last one counts as
// advancing: the same head read again, or a lower one (another node behind a load balancer, a
// reorg to a shorter chain), leaves the time of the last advance as it was.
func (w *HeadWatch) Observe(number uint64, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen && number <= w.head {
		return
	}
	w.head, w.seen = number, true
	if at.After(w.advanced) {
		w.advanced = at
	}
}

// Check fails when the head has not advanced for longer than the chain's MaxHeadAge at now, or,
// before any head was observed, when MaxHeadAge has passed since the watch was created.
func (w *HeadWatch) Check(now time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	age := now.Sub(w.advanced)
	if age <= w.maxAge {
		return nil
	}
	if !w.seen {
		return fmt.Errorf("chain %d (%s): no head observed for %v (max_head_age %v)", w.id, w.name, readable(age), w.maxAge)
	}
	return fmt.Errorf("chain %d (%s): head %d has not advanced for %v (max_head_age %v)", w.id, w.name, w.head, readable(age), w.maxAge)
}

// readable rounds an age for a message: whole seconds, or milliseconds below a second.
func readable(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}
