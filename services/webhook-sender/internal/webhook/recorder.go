package webhook

import (
	"context"
	"errors"
	"sync"
	"time"
)

// AttemptBatchStore writes many attempt rows in one statement.
type AttemptBatchStore interface {
	RecordAttempts(ctx context.Context, as []Attempt) error
}

// recordLinger is how long a batch formed under load waits for more rows.
const recordLinger = 5 * time.Millisecond

// AttemptRecorder batches attempt rows: each caller still waits until its own row is written,
// but concurrent attempts share one write. Under light load a batch is a single row and is
// written at once; under load batches form from whatever queued while the last one was written.
// At thousands of deliveries a second, one statement per attempt is what limits throughput.
type AttemptRecorder struct {
	store    AttemptBatchStore
	queue    chan pendingAttempt
	maxBatch int
	wg       sync.WaitGroup
}

type pendingAttempt struct {
	a    Attempt
	done chan error
}

// RecorderConfig configures an AttemptRecorder.
type RecorderConfig struct {
	Store AttemptBatchStore
	// Writers is how many batches are written at once; default 1: one writer keeps up with
	// thousands of deliveries a second (BenchmarkRecordAttempts), and more only share the rows.
	Writers int
	// MaxBatch bounds the rows of one statement; default DefaultRecordBatch.
	MaxBatch int
}

// DefaultRecordBatch is the largest batch of attempt rows written in one statement.
const DefaultRecordBatch = 1000

// Validate reports what an AttemptRecorder cannot run without.
func (c RecorderConfig) Validate() error {
	if c.Store == nil || c.Writers < 0 || c.MaxBatch < 0 {
		return errors.New("recorder: Store is required; Writers and MaxBatch must not be negative")
	}
	return nil
}

// NewAttemptRecorder starts the writer goroutines; Close stops them after the queue drains.
func NewAttemptRecorder(c RecorderConfig) (*AttemptRecorder, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	writers, maxBatch := max(c.Writers, 1), c.MaxBatch
	if maxBatch == 0 {
		maxBatch = DefaultRecordBatch
	}
	r := &AttemptRecorder{store: c.Store, queue: make(chan pendingAttempt, maxBatch*writers), maxBatch: maxBatch}
	for range writers {
		r.wg.Add(1)
		go r.write()
	}
	return r, nil
}

var _ DeliveryRecorder = (*AttemptRecorder)(nil)

// RecordAttempt queues a and waits for its batch to be written.
func (r *AttemptRecorder) RecordAttempt(ctx context.Context, a Attempt) error {
	p := pendingAttempt{a: a, done: make(chan error, 1)}
	select {
	case r.queue <- p:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// take fills batch from the queue with what is waiting now and, if that was more than one row
// (under load), with what arrives within recordLinger: a row costs the database much less in a
// batch of hundreds than of tens. It stops when the batch is full or the queue closed.
func (r *AttemptRecorder) take(batch []pendingAttempt) []pendingAttempt {
	var linger <-chan time.Time // nil until lingering
	for len(batch) < r.maxBatch {
		select {
		case p, ok := <-r.queue:
			if !ok {
				return batch
			}
			batch = append(batch, p)
			continue
		default:
		}
		if linger == nil {
			if len(batch) == 1 {
				return batch
			}
			t := time.NewTimer(recordLinger)
			defer t.Stop()
			linger = t.C
		}
		select {
		case p, ok := <-r.queue:
			if !ok {
				return batch
			}
			batch = append(batch, p)
		case <-linger:
			return batch
		}
	}
	return batch
}

func (r *AttemptRecorder) write() {
	defer r.wg.Done()
	batch := make([]pendingAttempt, 0, r.maxBatch)
	rows := make([]Attempt, 0, r.maxBatch)
	for first := range r.queue {
		batch, rows = r.take(append(batch[:0], first)), rows[:0]
		for _, p := range batch {
			rows = append(rows, p.a)
		}
		// Not the callers' contexts: one caller giving up must not fail the others' rows.
		err := r.store.RecordAttempts(context.Background(), rows)
		for _, p := range batch {
			p.done <- err
		}
	}
}

// Close stops accepting rows and waits for the queued ones to be written.
func (r *AttemptRecorder) Close() {
	close(r.queue)
	r.wg.Wait()
}
