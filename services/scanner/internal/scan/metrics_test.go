package scan

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/ctrip-pay/pipeline/shared/testkit/telemetrytest"
)

// Head lag is head − cursor; head age runs from the last time the head rose (the same or a
// lower head does not reset it); a forgotten chain (standby) reports nothing.
func TestHeadLagAndAge(t *testing.T) {
	meter := telemetrytest.NewMeter(t)
	m := NewMetrics(meter)
	now := time.Unix(1_700_000_000, 0)
	m.now = func() time.Time { return now }
	ctx, chain := context.Background(), attribute.Int64("chain_id", 1337)
	value := func(name string) float64 {
		t.Helper()
		v, ok := meter.Value(t, name, chain)
		if !ok {
			t.Fatalf("%s not reported", name)
		}
		return v
	}
	m.observeHead(ctx, 1337, 100)
	if _, ok := meter.Value(t, "ctrip.chain.head.lag", chain); ok {
		t.Fatal("a lag before any block was committed")
	}
	m.committed(ctx, 1337, 10, 90)
	now = now.Add(30 * time.Second)
	m.observeHead(ctx, 1337, 100) // same head: not an advance
	m.observeHead(ctx, 1337, 99)  // a node behind: not an advance
	if lag, age, head := value("ctrip.chain.head.lag"), value("ctrip.chain.head.age"), value("ctrip.chain.head"); lag != 10 || age != 30 || head != 100 {
		t.Fatalf("lag %v age %v head %v, want 10, 30, 100", lag, age, head)
	}
	m.observeHead(ctx, 1337, 105)
	m.committed(ctx, 1337, 15, 105)
	if lag, age := value("ctrip.chain.head.lag"), value("ctrip.chain.head.age"); lag != 0 || age != 0 {
		t.Fatalf("after the head rose and was scanned: lag %v age %v", lag, age)
	}
	if blocks := value("ctrip.scanner.blocks"); blocks != 25 {
		t.Fatalf("blocks %v, want 25", blocks)
	}
	m.Forget(1337)
	if _, ok := meter.Value(t, "ctrip.chain.head.age", chain); ok {
		t.Fatal("a forgotten chain still reports its head age")
	}
}
