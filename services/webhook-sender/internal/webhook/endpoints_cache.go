package webhook

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/ctrip-pay/pipeline/shared/signature"
)

// EndpointLister lists a merchant's enabled endpoints (every event type) plus the default one.
type EndpointLister interface {
	MerchantEndpoints(ctx context.Context, merchantID string) ([]Endpoint, error)
}

// fanoutCacheTTL bounds how late the fan-out notices a new, changed or disabled endpoint. An
// event published within this time of an endpoint's creation may miss it; a disabled endpoint
// that still gets a message has it terminated by the delivery stage, which checks again.
const fanoutCacheTTL = time.Second

// CachedEndpoints is an EndpointFinder that asks the database at most once per merchant per
// fanoutCacheTTL: at thousands of events a second the same few rows would be read each time.
type CachedEndpoints struct {
	Store EndpointLister

	mu      sync.Mutex
	entries map[string]cachedList
}

type cachedList struct {
	eps     []Endpoint
	expires time.Time
}

var _ EndpointFinder = (*CachedEndpoints)(nil)

// EndpointsFor filters the merchant's cached endpoints by event type.
func (c *CachedEndpoints) EndpointsFor(ctx context.Context, merchantID, eventType string) ([]Endpoint, error) {
	c.mu.Lock()
	e, ok := c.entries[merchantID]
	c.mu.Unlock()
	if !ok || time.Now().After(e.expires) {
		eps, err := c.Store.MerchantEndpoints(ctx, merchantID)
		if err != nil {
			return nil, err
		}
		e = cachedList{eps: eps, expires: time.Now().Add(fanoutCacheTTL)}
		c.mu.Lock()
		if c.entries == nil {
			c.entries = map[string]cachedList{}
		}
		c.entries[merchantID] = e
		c.mu.Unlock()
	}
	out := make([]Endpoint, 0, len(e.eps))
	for _, ep := range e.eps {
		if len(ep.EventTypes) == 0 || slices.Contains(ep.EventTypes, eventType) {
			out = append(out, ep)
		}
	}
	return out, nil
}

// The delivery stage's endpoint cache: each endpoint with its parsed signing keys.

// errStore marks an endpoint that could not be loaded because Postgres did not answer.
var errStore = errors.New("endpoint store unavailable")

// endpointCacheTTL bounds how long a changed endpoint (new URL, rotated secret, disabled by an
// operator) keeps being used from memory. Deliveries are far more frequent than edits.
const endpointCacheTTL = 2 * time.Second

type cachedEndpoint struct {
	ep      Endpoint
	keys    []signature.Secret
	legacy  signature.Secret
	expires time.Time
}

// storeRetryMax bounds the wait between tries to load an endpoint while Postgres is down.
const storeRetryMax = 5 * time.Second

// endpointWaiting loads the endpoint, waiting for Postgres as long as it takes (the message's
// heartbeat runs meanwhile, so no delivery is used up), until ctx ends.
func (d *Deliverer) endpointWaiting(ctx context.Context, id string) (cachedEndpoint, error) {
	wait := 100 * time.Millisecond
	for logged := false; ; logged = true {
		ce, err := d.endpoint(ctx, id)
		if !errors.Is(err, errStore) {
			return ce, err
		}
		if !logged {
			d.log.WarnContext(ctx, "endpoint store unavailable; holding the delivery until it answers", "endpoint_id", id, "err", err)
			d.metrics.outcomes.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "store_wait")))
		}
		select {
		case <-ctx.Done():
			return ce, err
		case <-time.After(wait):
		}
		wait = min(2*wait, storeRetryMax)
	}
}

// endpoint returns the endpoint with its parsed signing keys, from a short-lived cache.
func (d *Deliverer) endpoint(ctx context.Context, id string) (cachedEndpoint, error) {
	d.mu.Lock()
	ce, ok := d.cache[id]
	d.mu.Unlock()
	if ok && time.Now().Before(ce.expires) {
		return ce, nil
	}
	ep, err := d.store.Endpoint(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return ce, err
	}
	if err != nil {
		return ce, fmt.Errorf("%w: %w", errStore, err)
	}
	ce = cachedEndpoint{ep: ep, expires: time.Now().Add(endpointCacheTTL)}
	if ep.Enabled && !ep.Deleted {
		cur, err := signature.ParseSecret(ep.Secret)
		if err != nil {
			return ce, fmt.Errorf("endpoint %s secret: %w", id, err)
		}
		ce.keys, ce.legacy = []signature.Secret{cur}, cur
		if ep.PreviousSecret != nil && ep.PreviousSecretExpiresAt != nil && time.Now().Before(*ep.PreviousSecretExpiresAt) {
			if prev, err := signature.ParseSecret(*ep.PreviousSecret); err == nil {
				ce.keys = append(ce.keys, prev)
				// The cache must not sign with the old key past its expiry.
				ce.expires = minTime(ce.expires, *ep.PreviousSecretExpiresAt)
			}
		}
	}
	d.mu.Lock()
	d.cache[id] = ce
	d.mu.Unlock()
	return ce, nil
}

func (d *Deliverer) forget(id string) {
	d.mu.Lock()
	delete(d.cache, id)
	d.mu.Unlock()
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
