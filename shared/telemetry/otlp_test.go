package telemetry_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/ctrip-pay/pipeline/shared/telemetry"
)

// receiver is an in-process OTLP trace receiver: what it was sent, by which protocol.
type receiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans map[string][]string // protocol → span names
}

func (rc *receiver) add(protocol string, req *collectortrace.ExportTraceServiceRequest) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				rc.spans[protocol] = append(rc.spans[protocol], s.GetName())
			}
		}
	}
}

func (rc *receiver) got() map[string][]string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := map[string][]string{}
	for k, v := range rc.spans {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// Export is the gRPC TraceService.
func (rc *receiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	rc.add("grpc", req)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// startReceiver serves OTLP/gRPC and OTLP/HTTP (protobuf, any path: the path each request came
// to is recorded with it).
func startReceiver(t *testing.T) (rc *receiver, grpcURL, httpURL string) {
	t.Helper()
	rc = &receiver{spans: map[string][]string{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, rc)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if err != nil || r.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "not OTLP/HTTP protobuf", http.StatusBadRequest)
			return
		}
		rc.add("http "+r.URL.Path, &req)
		b, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(b)
	}))
	t.Cleanup(hs.Close)
	return rc, "http://" + ln.Addr().String(), hs.URL
}

// Setup exports by the protocol the standard variables name, to the endpoint they name: the
// generic endpoint is a base (OTLP/HTTP appends /v1/traces), the per-signal one is used as
// given, and the per-signal protocol wins over the generic one.
func TestSetupExportsByTheStandardOTLPVariables(t *testing.T) {
	rc, grpcURL, httpURL := startReceiver(t)
	cases := []struct {
		name string
		env  map[string]string // unset variables are empty
		// endpoint is the config's OTEL_EXPORTER_OTLP_ENDPOINT (service.Run passes it).
		endpoint string
		want     string // where the span must arrive
	}{
		{"default protocol is http/protobuf", nil, httpURL, "http /v1/traces"},
		{"http/protobuf", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, httpURL, "http /v1/traces"},
		{"grpc", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, grpcURL, "grpc"},
		{"traces protocol wins", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, grpcURL, "grpc"},
		{"traces endpoint alone turns tracing on, used as given", map[string]string{
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": httpURL + "/custom/traces"}, "", "http /custom/traces"},
		{"traces endpoint over grpc", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": grpcURL}, "", "grpc"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, v := range []string{telemetry.EnvEndpoint, telemetry.EnvTracesEndpoint, telemetry.EnvProtocol, telemetry.EnvTracesProtocol} {
				t.Setenv(v, c.env[v])
			}
			t.Setenv(telemetry.EnvEndpoint, c.endpoint)
			tel, err := telemetry.Setup(context.Background(), "test", c.endpoint)
			if err != nil {
				t.Fatal(err)
			}
			_, span := tel.Tracer.Start(context.Background(), c.name)
			span.End()
			if err := tel.Shutdown(context.Background()); err != nil { // flushes the batch
				t.Fatal(err)
			}
			got := rc.got()
			found := false
			for where, names := range got {
				for _, n := range names {
					if n == c.name {
						if where != c.want {
							t.Fatalf("span %q arrived by %q, want %q", c.name, where, c.want)
						}
						found = true
					}
				}
			}
			if !found {
				t.Fatalf("span %q not received; received %v", c.name, got)
			}
		})
	}
}

func TestSetupRefusesAnUnknownOTLPProtocolNamingTheVariable(t *testing.T) {
	for _, name := range []string{telemetry.EnvProtocol, telemetry.EnvTracesProtocol} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(telemetry.EnvProtocol, "")
			t.Setenv(telemetry.EnvTracesProtocol, "")
			t.Setenv(name, "http/json")
			for _, endpoint := range []string{"http://127.0.0.1:4318", ""} { // with tracing on and off
				t.Setenv(telemetry.EnvEndpoint, endpoint)
				_, err := telemetry.Setup(context.Background(), "test", endpoint)
				if err == nil || !strings.Contains(err.Error(), name+`="http/json"`) {
					t.Fatalf("endpoint %q: err = %v, want one naming %s", endpoint, err, name)
				}
			}
		})
	}
}
