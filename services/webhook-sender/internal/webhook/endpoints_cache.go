package webhook

import (
	"context"
	"slices"
	"sync"
	"time"
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
