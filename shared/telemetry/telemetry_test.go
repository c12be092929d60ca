package telemetry_test

import (
	"context"
	"testing"

	"github.com/ctrip-pay/pipeline/shared/telemetry"
)

// The standard OTEL_TRACES_SAMPLER settings apply: operators can sample a fraction of traces at
// high volume. Default: every span recorded (parent-based, always on).
func TestSamplerFollowsTheStandardEnvironment(t *testing.T) {
	for _, c := range []struct {
		sampler, arg string
		recording    bool
	}{
		{"", "", true},
		{"always_off", "", false},
		{"parentbased_traceidratio", "0", false},
		{"parentbased_traceidratio", "1", true},
	} {
		t.Run(c.sampler+c.arg, func(t *testing.T) {
			t.Setenv("OTEL_TRACES_SAMPLER", c.sampler)
			t.Setenv("OTEL_TRACES_SAMPLER_ARG", c.arg)
			tel, err := telemetry.Setup(context.Background(), "test", "")
			if err != nil {
				t.Fatal(err)
			}
			defer tel.Shutdown(context.Background())
			_, span := tel.Tracer.Start(context.Background(), "root")
			defer span.End()
			if span.IsRecording() != c.recording {
				t.Fatalf("OTEL_TRACES_SAMPLER=%q ARG=%q: recording %v, want %v", c.sampler, c.arg, span.IsRecording(), c.recording)
			}
			if !span.SpanContext().TraceID().IsValid() {
				t.Fatal("no trace id: logs and NATS headers need one even when not sampled")
			}
		})
	}
}
