// Package telemetry sets up OpenTelemetry: traces exported over OTLP when an OTLP endpoint is
// set (Jaeger accepts OTLP over gRPC and HTTP), metrics served in the Prometheus format, and the
// ops HTTP listener with /healthz, /readyz and /metrics.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// Telemetry is what a service gets back: its tracer, meter, Prometheus registry and a shutdown.
type Telemetry struct {
	Tracer   trace.Tracer
	Meter    metric.Meter
	Registry *prometheus.Registry
	shutdown []func(context.Context) error
}

// The standard OTLP exporter variables Setup reads (the exporters read the endpoint, headers,
// timeout, certificate and compression variables themselves).
const (
	EnvEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
)

// OTLP transport protocols (OTEL_EXPORTER_OTLP_PROTOCOL). http/json, which the specification
// also names, has no Go exporter.
const (
	ProtocolGRPC         = "grpc"
	ProtocolHTTPProtobuf = "http/protobuf"
)

// TraceProtocol is the OTLP protocol traces are exported with: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
// else OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf (the specification's default). Another
// value is refused, naming the variable.
func TraceProtocol(lookup func(string) (string, bool)) (string, error) {
	for _, name := range []string{EnvTracesProtocol, EnvProtocol} {
		v, ok := lookup(name)
		if !ok || v == "" {
			continue
		}
		switch v {
		case ProtocolGRPC, ProtocolHTTPProtobuf:
			return v, nil
		}
		return "", fmt.Errorf("%s=%q: must be %s or %s", name, v, ProtocolGRPC, ProtocolHTTPProtobuf)
	}
	return ProtocolHTTPProtobuf, nil
}

// traceExporter is the OTLP exporter of the chosen protocol, or nil when neither endpoint
// variable is set (otlpEndpoint is OTEL_EXPORTER_OTLP_ENDPOINT as the service's config read it).
func traceExporter(ctx context.Context, otlpEndpoint string) (sdktrace.SpanExporter, error) {
	// A bad protocol is refused even while tracing is off: it is a typo waiting for the endpoint.
	protocol, err := TraceProtocol(os.LookupEnv)
	if err != nil {
		return nil, err
	}
	if otlpEndpoint == "" && os.Getenv(EnvTracesEndpoint) == "" {
		return nil, nil
	}
	// Each exporter reads the endpoint variables itself: the per-signal one as the full URL,
	// the generic one as a base (OTLP/HTTP appends /v1/traces); an http:// scheme means no TLS.
	var exp sdktrace.SpanExporter
	if protocol == ProtocolGRPC {
		exp, err = otlptracegrpc.New(ctx)
	} else {
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("otlp %s trace exporter: %w", protocol, err)
	}
	return exp, nil
}

// Setup installs the global propagator (W3C tracecontext + baggage) and tracer provider. With
// no OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), traces
// are not exported but context is still propagated. A bad OTEL_EXPORTER_OTLP_*PROTOCOL is an
// error.
func Setup(ctx context.Context, service, otlpEndpoint string) (*Telemetry, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	t := &Telemetry{Registry: prometheus.NewRegistry()}
	// Always a real SDK provider, exporting only when an endpoint is set: spans then still get
	// trace ids, which the logs carry and the NATS headers propagate.
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	spans, err := traceExporter(ctx, otlpEndpoint)
	if err != nil {
		return nil, err
	}
	if spans != nil {
		opts = append(opts, sdktrace.WithBatcher(spans))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	t.Tracer = tp.Tracer(service)
	t.shutdown = append(t.shutdown, tp.Shutdown)
	t.Registry.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(t.Registry))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
	t.Meter = mp.Meter(service)
	t.shutdown = append(t.shutdown, mp.Shutdown)
	return t, nil
}

// Shutdown flushes pending spans and metrics.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}

// Ops is the health and metrics listener. Ready reports 503 until SetReady(true).
type Ops struct {
	srv   *http.Server
	ln    net.Listener
	ready atomic.Bool
	check func(context.Context) error
}

// StartOps listens on addr (":0" picks a port) and serves /healthz, /readyz and /metrics.
// check, when set, is run by /readyz (e.g. NATS connected, DB ping).
func StartOps(addr string, reg *prometheus.Registry, check func(context.Context) error, log *slog.Logger) (*Ops, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ops listener %s: %w", addr, err)
	}
	o := &Ops{ln: ln, check: check}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !o.ready.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		if o.check != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := o.check(ctx); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	o.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := o.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("ops listener stopped", "err", err)
		}
	}()
	return o, nil
}

// Addr is the listener's address.
func (o *Ops) Addr() string { return o.ln.Addr().String() }

// SetReady flips /readyz.
func (o *Ops) SetReady(v bool) { o.ready.Store(v) }

// Shutdown stops the listener.
func (o *Ops) Shutdown(ctx context.Context) error { return o.srv.Shutdown(ctx) }
