package natsbus

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Consumer is a durable consumer definition bound to its stream.
type Consumer struct {
	Stream string
	Config jetstream.ConsumerConfig
}

// Provision creates or updates the streams, then the consumers, in the order given. Streams go
// first so that an advisory-fed stream (DLQ) exists before the consumers whose advisories it
// captures: an advisory nobody stores is lost.
func Provision(ctx context.Context, js jetstream.JetStream, streams []jetstream.StreamConfig, consumers []Consumer) error {
	for _, s := range streams {
		if _, err := js.CreateOrUpdateStream(ctx, s); err != nil {
			return fmt.Errorf("provision stream %s: %w", s.Name, err)
		}
	}
	for _, c := range consumers {
		if _, err := js.CreateOrUpdateConsumer(ctx, c.Stream, c.Config); err != nil {
			return fmt.Errorf("provision consumer %s on %s: %w", c.Config.Durable, c.Stream, err)
		}
	}
	return nil
}
