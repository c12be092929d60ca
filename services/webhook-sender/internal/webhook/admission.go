package webhook

import (
	"context"
	"sync"
	"time"
)

// Admission: how many messages the process holds, and each endpoint's lane of them.

// Room blocks until the process can hold more messages and says how many. The delivery loop
// fetches exactly that many (natsbus.StartFetchLoop), so every message it takes is dispatched at
// once and heartbeated from its arrival: none waits in a client-side buffer while its ack wait
// runs out, which would redeliver it and could POST it twice. Once the process is busy it waits
// for a quarter of its places to free up, so a saturated sender fetches in batches.
func (d *Deliverer) Room(ctx context.Context) int {
	for {
		free := cap(d.held) - len(d.held)
		if free >= max(1, cap(d.held)/4) {
			return free
		}
		select {
		case <-d.roomFreed:
		case <-ctx.Done():
			return 0
		}
	}
}

// unhold gives back a place in the process.
func (d *Deliverer) unhold() {
	<-d.held
	select {
	case d.roomFreed <- struct{}{}:
	default:
	}
}

func (d *Deliverer) lane(endpointID string) *lane {
	d.mu.Lock()
	defer d.mu.Unlock()
	ln := d.lanes[endpointID]
	if ln == nil {
		ln = &lane{slots: make(chan struct{}, d.endpointConcurrency), freed: make(chan struct{}, 1)}
		d.lanes[endpointID] = ln
	}
	return ln
}

// laneWait is how long a dispatched message waits for a full lane to drain before it is
// deferred: a healthy endpoint frees a slot within milliseconds, a hanging one does not, and
// meanwhile the message holds a place in the process, so it is short.
const laneWait = 50 * time.Millisecond

// admit takes a place in the endpoint's lane, waiting up to laneWait for one to free up.
func (d *Deliverer) admit(ctx context.Context, ln *lane, n int) bool {
	var timer *time.Timer // only when the lane is full: most messages get in at once
	for {
		d.mu.Lock()
		if ln.held < d.heldCap || n >= d.maxDeliver {
			ln.held++
			d.mu.Unlock()
			if timer != nil {
				timer.Stop()
			}
			return true
		}
		d.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(laneWait)
			defer timer.Stop()
		}
		select {
		case <-ln.freed:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// hold is a dispatched message's place in the process and in its endpoint's lane. It is given
// back as soon as the HTTP request is done: writing the attempt row and settling the message
// need no place, so waiting for the database does not hold back the next requests.
type hold struct {
	d    *Deliverer
	ln   *lane
	once sync.Once
}

func (h *hold) free() { h.once.Do(func() { h.d.release(h.ln); h.d.unhold() }) }

func (d *Deliverer) release(ln *lane) {
	d.mu.Lock()
	ln.held--
	d.mu.Unlock()
	select {
	case ln.freed <- struct{}{}:
	default:
	}
}

// Wait blocks until every dispatched attempt has been settled.
func (d *Deliverer) Wait() { d.wg.Wait() }
