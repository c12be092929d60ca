package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ctrip-pay/pipeline/shared/config"
	"github.com/ctrip-pay/pipeline/shared/retention"
	"github.com/ctrip-pay/pipeline/shared/safehttp"
	"github.com/ctrip-pay/pipeline/shared/signature"
)

// Config is the webhook sender's environment (README, "Configuration").
type Config struct {
	config.Base

	// WebhookURL and WebhookSecret are the seed's single global endpoint, kept as the default
	// endpoint that receives every event.
	WebhookURL    string `env:"WEBHOOK_URL"`
	WebhookSecret string `env:"WEBHOOK_SECRET"`

	Backoff             Schedule      `env:"WEBHOOK_BACKOFF, default=5s,5m,30m,2h,5h,10h,10h"`
	Timeout             time.Duration `env:"WEBHOOK_TIMEOUT, default=10s"`
	Concurrency         int           `env:"WEBHOOK_CONCURRENCY, default=64"`
	EndpointConcurrency int           `env:"WEBHOOK_ENDPOINT_CONCURRENCY, default=16"`
	FanoutConcurrency   int           `env:"WEBHOOK_FANOUT_CONCURRENCY, default=4"`
	MaxRetryAfter       time.Duration `env:"WEBHOOK_MAX_RETRY_AFTER, default=1h"`
	// The URL policy (WEBHOOK_ALLOW_HTTP, WEBHOOK_ALLOW_PRIVATE_NETWORKS), shared with the api.
	safehttp.Policy
	// The retention of webhook_attempts (RETENTION_AGE, RETENTION_BATCH, RETENTION_INTERVAL,
	// RETENTION_PAUSE).
	retention.Config
}

// Schedule is a comma-separated list of durations: the BackOff of the webhook-sender consumer.
type Schedule []time.Duration

// EnvDecode implements envconfig.Decoder.
func (s *Schedule) EnvDecode(v string) error {
	var out Schedule
	for _, part := range strings.Split(v, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil {
			return fmt.Errorf("%q: %w", part, err)
		}
		out = append(out, d)
	}
	*s = out
	return nil
}

// Total is how long a delivery can be retried: the sum of the schedule.
func (s Schedule) Total() time.Duration {
	var total time.Duration
	for _, d := range s {
		total += d
	}
	return total
}

func (s Schedule) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = d.String()
	}
	return strings.Join(parts, ",")
}

// Validate names the first unusable variable.
func (c Config) Validate() error {
	if err := c.Base.Validate(); err != nil {
		return err
	}
	bad := func(v, msg string) error { return &config.Error{Var: v, Msg: msg} }
	if len(c.Backoff) == 0 {
		return bad("WEBHOOK_BACKOFF", "needs at least one duration")
	}
	for _, d := range c.Backoff {
		if d <= 0 {
			return bad("WEBHOOK_BACKOFF", fmt.Sprintf("%v: durations must be positive", d))
		}
	}
	if c.Timeout <= 0 {
		return bad("WEBHOOK_TIMEOUT", "must be positive")
	}
	if c.Concurrency < 1 {
		return bad("WEBHOOK_CONCURRENCY", "must be at least 1")
	}
	if c.EndpointConcurrency < 1 {
		return bad("WEBHOOK_ENDPOINT_CONCURRENCY", "must be at least 1")
	}
	if c.FanoutConcurrency < 1 || c.FanoutConcurrency > maxFanoutWorkers {
		// Each worker keeps up to two batches fetched ahead; more workers would ask for more
		// events than the webhook-fanout consumer lets be unacked (max_ack_pending 10000).
		return bad("WEBHOOK_FANOUT_CONCURRENCY", fmt.Sprintf("must be between 1 and %d (fan-out workers of up to %d events each)", maxFanoutWorkers, fanoutBatch))
	}
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if total := c.Backoff.Total(); c.Age > 0 && c.Age <= total {
		// A delivery's attempts are read while it is retried (the dead letter's last error, the
		// api's deliveries): they must outlive the whole schedule.
		return bad("RETENTION_AGE", fmt.Sprintf("%v does not outlast the delivery schedule (WEBHOOK_BACKOFF, %v in all; 0 keeps every row)", c.Age, total))
	}
	if c.MaxRetryAfter < 0 {
		return bad("WEBHOOK_MAX_RETRY_AFTER", "must not be negative")
	}
	if c.WebhookURL != "" {
		if err := safehttp.ValidateURL(c.WebhookURL, c.Policy); err != nil {
			hint := ""
			if errors.Is(err, safehttp.ErrSchemeNotAllowed) {
				hint = " (set WEBHOOK_ALLOW_HTTP=true for a plain-http receiver)"
			} else if errors.Is(err, safehttp.ErrAddressNotAllowed) {
				hint = " (set WEBHOOK_ALLOW_PRIVATE_NETWORKS=true for a receiver on a private network)"
			}
			return bad("WEBHOOK_URL", err.Error()+hint)
		}
		if c.WebhookSecret == "" {
			return bad("WEBHOOK_SECRET", "required when WEBHOOK_URL is set")
		}
		if _, err := signature.ParseSecret(c.WebhookSecret); err != nil {
			return bad("WEBHOOK_SECRET", err.Error())
		}
	}
	return nil
}
