// Package streams holds the JetStream stream and consumer definitions of DESIGN.md as JSON
// files in the server's own format, so the same files feed `nats stream add --config FILE`,
// `nats consumer add STREAM --config FILE` and the services' start-up provisioning
// (shared/natsbus.Provision).
//
// Layout: <STREAM>.json for streams, consumers/<STREAM>.<durable>.json for consumers.
package streams

import (
	"embed"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

//go:embed *.json consumers/*.json
var files embed.FS

// Stream names.
const (
	Payments = "PAYMENTS"
	Chain    = "CHAIN"
	Webhooks = "WEBHOOKS"
	DLQ      = "DLQ"
)

// Stream returns the definition of the named stream.
func Stream(name string) (jetstream.StreamConfig, error) {
	var cfg jetstream.StreamConfig
	if err := load(name+".json", &cfg); err != nil {
		return cfg, err
	}
	if cfg.Name != name {
		return cfg, fmt.Errorf("streams: %s.json defines stream %q", name, cfg.Name)
	}
	return cfg, nil
}

// Streams returns the definitions of the named streams, in order.
func Streams(names ...string) ([]jetstream.StreamConfig, error) {
	out := make([]jetstream.StreamConfig, 0, len(names))
	for _, n := range names {
		s, err := Stream(n)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Consumer returns the definition of durable consumer on stream.
func Consumer(stream, durable string) (jetstream.ConsumerConfig, error) {
	var cfg jetstream.ConsumerConfig
	if err := load("consumers/"+stream+"."+durable+".json", &cfg); err != nil {
		return cfg, err
	}
	if cfg.Durable != durable {
		return cfg, fmt.Errorf("streams: consumer file for %s defines durable %q", durable, cfg.Durable)
	}
	return cfg, nil
}

func load(path string, v any) error {
	raw, err := files.ReadFile(path)
	if err != nil {
		return fmt.Errorf("streams: %w", err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("streams: %s: %w", path, err)
	}
	return nil
}
