package confirm

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/ctrip-pay/pipeline/shared/chains"
	"github.com/ctrip-pay/pipeline/shared/fault"
)

// Chain is a configured chain and its RPC node.
type Chain struct {
	chains.Chain
	RPC ChainReader
}

// Config wires a Confirmer.
type Config struct {
	Payments  PaymentStore
	Transfers TransferFinder
	Chains    []Chain
	Tracer    trace.Tracer
	Meter     metric.Meter
	Log       *slog.Logger
	// OutboxWake, when set, is called after a commit that wrote outbox messages (wakes the
	// relay).
	OutboxWake func()
	// RPCTimeout bounds each RPC call; default 10s.
	RPCTimeout time.Duration
	// Now is the clock for expiry; default time.Now.
	Now func() time.Time
}

// Confirmer handles the confirmer's messages and runs expiry.
type Confirmer struct {
	payments    PaymentStore
	transfers   TransferFinder
	chains      map[int64]Chain
	tracer      trace.Tracer
	log         *slog.Logger
	wrote       func()
	rpcTimeout  time.Duration
	now         func() time.Time
	transitions metric.Int64Counter

	mu     sync.Mutex
	latest map[int64]uint64 // highest head seen per chain
}

// New builds a Confirmer.
func New(cfg Config) (*Confirmer, error) {
	c := &Confirmer{
		payments: cfg.Payments, transfers: cfg.Transfers, chains: map[int64]Chain{},
		tracer: cfg.Tracer, log: cfg.Log, wrote: cfg.OutboxWake, rpcTimeout: cfg.RPCTimeout, now: cfg.Now,
		latest: map[int64]uint64{},
	}
	for _, ch := range cfg.Chains {
		c.chains[ch.ID] = ch
	}
	if c.rpcTimeout <= 0 {
		c.rpcTimeout = 10 * time.Second
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.wrote == nil {
		c.wrote = func() {}
	}
	var err error
	if c.transitions, err = cfg.Meter.Int64Counter("ctrip.payment.transitions", metric.WithUnit("{transition}"),
		metric.WithDescription("Payment status transitions made by the confirmer, by from and to status")); err != nil {
		return nil, err
	}
	return c, nil
}

// chain is a configured chain; an event for another is invalid (terminated, not retried).
func (c *Confirmer) chain(id int64) (Chain, error) {
	ch, ok := c.chains[id]
	if !ok {
		return Chain{}, fault.Invalid(ReasonUnknownChain, fmt.Errorf("chain %d", id))
	}
	return ch, nil
}
