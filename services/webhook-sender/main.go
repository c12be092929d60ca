// Command webhook-sender fans payment events out to merchant endpoints, delivers signed
// webhooks with JetStream redelivery on the BackOff schedule, and dead-letters exhausted ones.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"

	"github.com/ctrip-pay/pipeline/services/webhook-sender/internal/postgres"
	"github.com/ctrip-pay/pipeline/services/webhook-sender/internal/webhook"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/retention"
	"github.com/ctrip-pay/pipeline/shared/safehttp"
	"github.com/ctrip-pay/pipeline/shared/service"
	"github.com/ctrip-pay/pipeline/streams"
)

const serviceName = "webhook-sender"

// fanoutBatch is the most PAYMENTS events one fan-out worker publishes before it waits for
// the stream's acks.
const fanoutBatch = 256

// maxFanoutWorkers bounds WEBHOOK_FANOUT_CONCURRENCY: 16 workers keep up to 16 × 2 × 256 = 8192
// events fetched, inside the webhook-fanout consumer's max_ack_pending of 10000.
const maxFanoutWorkers = 16

// dlqWorkers handle DLQ advisories at once: dead letters are rare, and each is a row and a
// publish.
const dlqWorkers = 4

// stageTimeout bounds one fan-out batch or one dead letter: both are a few publishes and
// queries, well inside it; one that overruns is redelivered.
const stageTimeout = 30 * time.Second

// DefaultEndpointID is the endpoint made from WEBHOOK_URL / WEBHOOK_SECRET.
const DefaultEndpointID = "ep_default"

func main() { service.Main(serviceName, run) }

func run(ctx context.Context, cfg Config) error {
	deps, err := service.Open(ctx, serviceName, cfg.Base, func(ctx context.Context, js jetstream.JetStream, size natsbus.Sizing) ([]natsbus.Change, error) {
		return provision(ctx, js, cfg.Backoff, size)
	})
	if err != nil {
		return err
	}
	defer deps.Close()
	log, tel, db, js, ops := deps.Log, deps.Tel, deps.DB, deps.JS, deps.Ops

	store := postgres.New(db)
	if cfg.WebhookURL != "" {
		if err := store.UpsertDefaultEndpoint(ctx, DefaultEndpointID, cfg.WebhookURL, cfg.WebhookSecret); err != nil {
			return err
		}
	} else if err := store.DeleteEndpoint(ctx, DefaultEndpointID); err != nil {
		return err
	}

	fanoutCons, err := js.Consumer(ctx, streams.Payments, "webhook-fanout")
	if err != nil {
		return fmt.Errorf("consumer webhook-fanout: %w", err)
	}
	senderCons, err := js.Consumer(ctx, streams.Webhooks, "webhook-sender")
	if err != nil {
		return fmt.Errorf("consumer webhook-sender: %w", err)
	}
	dlqCons, err := js.Consumer(ctx, streams.DLQ, "dlq-processor")
	if err != nil {
		return fmt.Errorf("consumer dlq-processor: %w", err)
	}
	webhooksStream, err := js.Stream(ctx, streams.Webhooks)
	if err != nil {
		return fmt.Errorf("stream WEBHOOKS: %w", err)
	}
	// The schedule is the consumer's own: with STREAMS_PROVISION=false an operator may have
	// set it with the nats CLI.
	info := senderCons.CachedInfo().Config
	schedule, maxDeliver := info.BackOff, info.MaxDeliver
	if len(schedule) == 0 {
		schedule = []time.Duration{info.AckWait}
	}
	if maxDeliver < 1 {
		maxDeliver = len(schedule) + 1
	}

	recorder, err := webhook.NewAttemptRecorder(webhook.RecorderConfig{Store: store})
	if err != nil {
		return err
	}
	deliverer, err := webhook.NewDeliverer(webhook.DelivererConfig{
		Store: store, Recorder: recorder, JS: js,
		Client:   safehttp.NewClient(cfg.Policy, cfg.Timeout, cfg.EndpointConcurrency),
		Schedule: schedule, MaxDeliver: maxDeliver, MaxRetryAfter: cfg.MaxRetryAfter,
		Concurrency: cfg.Concurrency, EndpointConcurrency: cfg.EndpointConcurrency,
		Tracer: tel.Tracer, Meter: tel.Meter, Log: log,
	})
	if err != nil {
		return err
	}
	fanout, err := webhook.NewFanout(webhook.FanoutConfig{Endpoints: &webhook.CachedEndpoints{Store: store}, JS: js, Log: log})
	if err != nil {
		return err
	}
	dlq, err := webhook.NewDLQProcessor(webhook.DLQConfig{Store: store, Origin: webhooksStream, JS: js, MaxPayload: deps.NC.MaxPayload(), Log: log})
	if err != nil {
		return err
	}

	if _, err := webhook.RegisterDLQDepth(tel.Meter, store); err != nil {
		return err
	}
	stopConsumerMetrics, err := natsbus.WatchConsumers(ctx, js, tel.Meter, 0, log, natsbus.Durable{Stream: streams.DLQ, Name: "dlq-processor"},
		natsbus.Durable{Stream: streams.Webhooks, Name: "webhook-sender"}, natsbus.Durable{Stream: streams.Payments, Name: "webhook-fanout"})
	if err != nil {
		return err
	}
	defer stopConsumerMetrics()
	// Handlers run on a context that survives the shutdown signal, so in-flight deliveries can
	// finish; it is cancelled if they overrun the shutdown timeout.
	work := deps.WorkContext(ctx)
	dlqLoop, err := natsbus.StartLoop(work, dlqCons, dlqWorkers, 2*dlqWorkers, dlq.Handle,
		natsbus.Runtime{Name: "webhook.dead_letter", Tracer: tel.Tracer, Log: log, Timeout: stageTimeout})
	if err != nil {
		return err
	}
	deps.AddReadiness("consumer "+streams.DLQ+"/dlq-processor", dlqLoop.Bound)
	// Fetches only as many messages as the deliverer has room for; Dispatch hands each to its
	// own goroutine at once.
	sendLoop := natsbus.StartFetchLoop(work, senderCons, deliverer.Room, deliverer.Dispatch, log)
	deps.AddReadiness("consumer "+streams.Webhooks+"/webhook-sender", sendLoop.Bound)
	fanoutLoop, err := natsbus.StartBatchLoop(work, fanoutCons, cfg.FanoutConcurrency, fanoutBatch, fanout.HandleBatch,
		natsbus.Runtime{Name: "webhook.fanout", Tracer: tel.Tracer, Log: log, Timeout: stageTimeout})
	if err != nil {
		return err
	}
	deps.AddReadiness("consumer "+streams.Payments+"/webhook-fanout", fanoutLoop.Bound)
	stopPruning := retention.Start(ctx, pruners(cfg, deps.DB, deps.Log, deps.Tel.Meter)...)
	ops.SetReady(true)
	log.Info("webhook-sender running", "schedule", Schedule(schedule).String(), "max_deliver", maxDeliver,
		"concurrency", cfg.Concurrency, "default_endpoint", cfg.WebhookURL != "", "ops_addr", ops.Addr())

	deps.AwaitShutdown(ctx, cfg.ShutdownTimeout)
	stopPruning()
	fanoutLoop.Stop(cfg.ShutdownTimeout)
	sendLoop.Stop(cfg.ShutdownTimeout)
	deliverer.Wait()
	recorder.Close()
	dlqLoop.Stop(cfg.ShutdownTimeout)
	return nil
}

// pruners are the sender's retention: webhook_attempts older than RETENTION_AGE (which
// Validate makes outlast the delivery schedule). Dead letters stay: the DLQ and its replay are
// the operator's, and they are few.
func pruners(cfg Config, db *sqlx.DB, log *slog.Logger, meter metric.Meter) []*retention.Pruner {
	return []*retention.Pruner{{
		DB: db, Table: "webhook_attempts", TimeColumn: "attempted_at",
		Config: cfg.Config, Log: log, Meter: meter,
	}}
}

// provision applies the streams and consumers this service uses; the webhook-sender consumer
// takes its BackOff from WEBHOOK_BACKOFF and MaxDeliver = len(BackOff)+1.
func provision(ctx context.Context, js jetstream.JetStream, backoff Schedule, size natsbus.Sizing) ([]natsbus.Change, error) {
	return natsbus.Provisioner([]string{streams.DLQ, streams.Payments, streams.Webhooks}, []natsbus.Durable{
		{Stream: streams.DLQ, Name: "dlq-processor"}, {Stream: streams.Webhooks, Name: "webhook-sender"}, {Stream: streams.Payments, Name: "webhook-fanout"},
	}, func(c *natsbus.Consumer) {
		if c.Config.Durable == "webhook-sender" {
			c.Config.BackOff = backoff
			c.Config.AckWait = backoff[0]
			c.Config.MaxDeliver = len(backoff) + 1
		}
	})(ctx, js, size)
}
