// Package config loads a service's configuration from the environment with go-envconfig.
//
// Every service declares a struct embedding Base, with `env` tags and defaults that run the
// one-machine dev stack, and a Validate method. Load fills it once in main; tests build the
// struct directly.
package config

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"
)

// Base holds the variables every service accepts (DESIGN.md, "Operator interface").
type Base struct {
	NATSURL          string `env:"NATS_URL, default=nats://127.0.0.1:4222"`
	DatabaseURL      string `env:"DATABASE_URL, default=postgres://postgres@127.0.0.1:5432/ctrip?sslmode=disable"`
	LogLevel         string `env:"LOG_LEVEL, default=info"`
	OpsAddr          string `env:"OPS_ADDR, default=:9090"`
	OTLPEndpoint     string `env:"OTEL_EXPORTER_OTLP_ENDPOINT"`
	ServiceName      string `env:"OTEL_SERVICE_NAME"`
	MigrateOnStart   bool   `env:"MIGRATE_ON_START, default=true"`
	StreamsProvision bool   `env:"STREAMS_PROVISION, default=true"`
	// StreamsReplicas sizes every stream and durable consumer the service provisions (3 on a
	// three-node JetStream cluster); unset, replicas are not the service's: new streams get one
	// and an existing stream keeps what its operator set.
	StreamsReplicas int           `env:"STREAMS_REPLICAS"`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT, default=25s"`
}

// Common is the base of a service's config that embeds it (service.Config).
func (b Base) Common() Base { return b }

// Validate reports the first bad value, naming its variable.
func (b Base) Validate() error {
	if b.NATSURL == "" {
		return &Error{Var: "NATS_URL", Msg: "must not be empty"}
	}
	if b.DatabaseURL == "" {
		return &Error{Var: "DATABASE_URL", Msg: "must not be empty"}
	}
	switch b.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return &Error{Var: "LOG_LEVEL", Msg: fmt.Sprintf("%q is not one of debug, info, warn, error", b.LogLevel)}
	}
	if b.ShutdownTimeout <= 0 {
		return &Error{Var: "SHUTDOWN_TIMEOUT", Msg: "must be positive"}
	}
	if b.StreamsReplicas < 0 || b.StreamsReplicas > 5 {
		return &Error{Var: "STREAMS_REPLICAS", Msg: "must be between 1 and 5 (JetStream's limit), or unset"}
	}
	return nil
}

// Error names the environment variable whose value is unusable.
type Error struct {
	Var string
	Msg string
}

func (e *Error) Error() string { return "config: " + e.Var + ": " + e.Msg }

// Validator is implemented by every service config.
type Validator interface{ Validate() error }

// Load fills cfg from the process environment and validates it.
func Load(ctx context.Context, cfg Validator) error {
	return LoadFrom(ctx, cfg, envconfig.OsLookuper())
}

// LoadFrom is Load with an explicit lookuper (tests pass envconfig.MapLookuper).
func LoadFrom(ctx context.Context, cfg Validator, l envconfig.Lookuper) error {
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: cfg, Lookuper: l}); err != nil {
		// envconfig names the Go field ("Concurrency: strconv.ParseInt...", behind the embedded
		// struct's name for its fields: "Config: Interval: ..."); operators know the variable,
		// so name that instead.
		names := envNames(reflect.TypeOf(cfg))
		for field, rest, ok := strings.Cut(err.Error(), ": "); ok; field, rest, ok = strings.Cut(rest, ": ") {
			if v, found := names[field]; found {
				return &Error{Var: v, Msg: rest}
			}
		}
		return fmt.Errorf("config: %w", err)
	}
	return cfg.Validate()
}

// envNames maps field names to their env variable names, through embedded structs.
func envNames(t reflect.Type) map[string]string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	out := map[string]string{}
	if t.Kind() != reflect.Struct {
		return out
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			for k, v := range envNames(f.Type) {
				out[k] = v
			}
			continue
		}
		if tag := f.Tag.Get("env"); tag != "" {
			name, _, _ := strings.Cut(tag, ",")
			out[f.Name] = strings.TrimSpace(name)
		}
	}
	return out
}
