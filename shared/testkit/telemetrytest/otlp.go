// Package telemetrytest holds the test helpers for telemetry: an in-memory OTLP trace
// collector, a metric reader and /metrics scrapes. It is apart from testkit so that what
// imports testkit (and chaintest) does not build the OTLP and metric SDK packages.
package telemetrytest

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is what a test reads of an exported span (ids in hex, attributes as text).
type Span struct {
	Service, Name           string
	TraceID, SpanID, Parent string // Parent "" for a root
	Attrs                   map[string]string
	Links                   []string // the linked spans' trace ids
	Error                   bool     // status Error
}

// OTLPCollector is an OTLP/HTTP (protobuf) trace receiver that keeps every span in memory: a
// service under test, in-process or a process, exports to it as it would to Jaeger. Point
// OTEL_EXPORTER_OTLP_ENDPOINT at URL (and set OTEL_BSP_SCHEDULE_DELAY low to see spans soon).
type OTLPCollector struct {
	URL   string
	mu    sync.Mutex
	spans []Span
}

// MustOTLPCollector starts a collector, stopped when the test ends.
func MustOTLPCollector(tb testing.TB) *OTLPCollector {
	tb.Helper()
	c := &OTLPCollector{}
	srv := httptest.NewServer(c)
	tb.Cleanup(srv.Close)
	c.URL = srv.URL
	return c
}

func (c *OTLPCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var req collectortrace.ExportTraceServiceRequest
	if err != nil || r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
		http.Error(w, "not an OTLP/HTTP protobuf trace export", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		service := otlpAttrs(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans = append(c.spans, spanFromOTLP(service, s))
			}
		}
	}
	c.mu.Unlock()
	b, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(b)
}

// Spans returns every span received so far.
func (c *OTLPCollector) Spans() []Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.spans)
}

func spanFromOTLP(service string, s *tracepb.Span) Span {
	out := Span{Service: service, Name: s.GetName(), TraceID: hex.EncodeToString(s.GetTraceId()),
		SpanID: hex.EncodeToString(s.GetSpanId()), Parent: hex.EncodeToString(s.GetParentSpanId()),
		Attrs: otlpAttrs(s.GetAttributes()), Error: s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR}
	for _, l := range s.GetLinks() {
		out.Links = append(out.Links, hex.EncodeToString(l.GetTraceId()))
	}
	return out
}

func otlpAttrs(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = fmt.Sprint(v.IntValue)
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = fmt.Sprint(v.BoolValue)
		case *commonpb.AnyValue_DoubleValue:
			m[kv.GetKey()] = fmt.Sprint(v.DoubleValue)
		}
	}
	return m
}
