package main

import (
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/telemetrytest"
)

// One payment, one trace: the real binaries export to an OTLP receiver; every span of each paid
// and swept payment is in the trace of the api request that created it, and each one's parent
// chain, through real NATS, across the five processes and their restarts, leads to that request.
func TestEachPaymentIsOneTraceAcrossTheFiveServices(t *testing.T) {
	ctx := systemTest(t, "builds and runs every service", 5*time.Minute)
	col := telemetrytest.MustOTLPCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", col.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_TRACES_SAMPLER", "") // every span
	t.Setenv("DATABASE_URL", testkit.MustDatabaseURL(t))
	natsPort, err := testkit.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// Once both payments are detected every service is restarted (gracefully, so that it
	// flushes its spans): what follows — confirmation, sweep, the later deliveries — is done by
	// processes that never saw the payment's request, from the context stored with its rows.
	var restarted []string
	res, err := run(ctx, options{natsPort: natsPort, timeout: 3 * time.Minute, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		midFlow: func(s *stack) ([]string, error) {
			for _, svc := range services {
				if p := s.procs[svc]; p != nil {
					p.Process.Signal(syscall.SIGTERM)
					awaitExit(s.log, svc, p)
					delete(s.procs, svc)
				}
				if err := s.start(svc); err != nil {
					return nil, err
				}
				restarted = append(restarted, svc)
			}
			return nil, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if len(restarted) != len(services) {
		t.Fatalf("restarted %v", restarted)
	}
	// run stopped the services with SIGTERM: each flushed its spans on the way out.
	spans := col.Spans()
	byID := map[string]telemetrytest.Span{}
	for _, s := range spans {
		byID[s.SpanID] = s
	}
	for _, id := range res.Payments {
		t.Run(id, func(t *testing.T) {
			var root *telemetrytest.Span
			for _, s := range spans {
				if s.Service == "api" && s.Attrs["payment.id"] == id && s.Name == "POST /v1/payments" {
					root = &s
				}
			}
			if root == nil {
				t.Fatalf("no api span POST /v1/payments with payment.id=%s among %d spans", id, len(spans))
			}
			if root.Parent != "" {
				t.Fatalf("the api request's span has a parent %s: it is not the root", root.Parent)
			}
			var trace []telemetrytest.Span
			for _, s := range spans {
				if s.TraceID == root.TraceID {
					trace = append(trace, s)
				} else if s.Attrs["payment.id"] == id {
					t.Errorf("span %q of %s carries payment.id=%s in another trace (%s)", s.Name, s.Service, id, s.TraceID)
				}
			}
			// Every span of the trace walks up to the root: no parent is missing or elsewhere.
			services := map[string]bool{}
			names := map[string]bool{}
			for _, s := range trace {
				services[s.Service] = true
				names[s.Service+": "+s.Name] = true
				if strings.HasPrefix(s.Name, "outbox publish ") {
					// The outbox is one table: whichever service's relay claims a row publishes it.
					names["any: "+s.Name] = true
				}
				cur := s
				for hops := 0; cur.SpanID != root.SpanID; hops++ {
					p, ok := byID[cur.Parent]
					if !ok || p.TraceID != root.TraceID || hops > 100 {
						t.Fatalf("span %q of %s: parent %s of %q is not in the trace", s.Name, s.Service, cur.Parent, cur.Name)
					}
					cur = p
				}
			}
			if got := sortedKeys(services); !slices.Equal(got, []string{"api", "confirmer", "scanner", "sweeper", "webhook-sender"}) {
				t.Errorf("the trace spans services %v, want all five", got)
			}
			// The spans each service must contribute (a native or a token sweep).
			want := []string{
				"api: POST /v1/payments", "any: outbox publish payments.created",
				"scanner: scanner.detect",
				"confirmer: confirmer payments.detected", "confirmer: confirmer publish payments.confirmed",
				"any: outbox publish payments.confirmed",
				"sweeper: sweeper payments.confirmed", "any: outbox publish payments.swept",
				"webhook-sender: webhook.fanout payments.created", "webhook-sender: webhook.fanout payments.swept",
				"webhook-sender: webhook.deliver",
			}
			for _, w := range want {
				if !names[w] {
					t.Errorf("no span %q in the trace; it has %v", w, sortedKeys(names))
				}
			}
			if !names["sweeper: sweeper.transaction native"] && !names["sweeper: sweeper.transaction token"] {
				t.Errorf("no sweep transaction span in the trace; it has %v", sortedKeys(names))
			}
			// Every delivery attempt is a span with its attempt number, endpoint and HTTP status;
			// the detection links to the block scan that found the transfer.
			deliveries := 0
			for _, s := range trace {
				switch s.Name {
				case "webhook.deliver":
					deliveries++
					if s.Attrs["webhook.attempt"] == "" || s.Attrs["webhook.endpoint_id"] == "" || s.Attrs["http.response.status_code"] == "" {
						t.Errorf("delivery span without attempt, endpoint or status: %v", s.Attrs)
					}
				case "scanner.detect":
					if len(s.Links) != 1 || s.Links[0] == root.TraceID {
						t.Errorf("scanner.detect links %v, want one to the block scan's trace", s.Links)
					}
				}
			}
			if deliveries < len(res.Events[id]) {
				t.Errorf("%d delivery spans, the merchant received %d webhooks", deliveries, len(res.Events[id]))
			}
			t.Logf("payment %s: one trace %s, %d spans, services %v", id, root.TraceID, len(trace), sortedKeys(services))
		})
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
