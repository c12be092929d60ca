package chains_test

import (
	"context"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/rpc"
	"go.opentelemetry.io/otel/attribute"

	"github.com/ctrip-pay/pipeline/shared/chains"
	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
	"github.com/ctrip-pay/pipeline/shared/testkit/telemetrytest"
)

// Against a real node: every call is one measurement labelled by its method, a batch of one
// method by that method, a JSON-RPC error answer and a dead endpoint are counted as errors of
// their kind.
func TestDialRPCMeasuresEveryCallByMethodAndError(t *testing.T) {
	chain := chaintest.New(t, chaintest.WithHTTP())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m := telemetrytest.NewMeter(t)
	c, err := chains.DialRPC(ctx, chains.Chain{ID: 1337, RPCURL: chain.RPCURL()}, m)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var head string
	for range 2 {
		if err := c.CallContext(ctx, &head, "eth_blockNumber"); err != nil {
			t.Fatal(err)
		}
	}
	batch := []rpc.BatchElem{
		{Method: "eth_getBlockByNumber", Args: []any{"0x0", false}, Result: new(map[string]any)},
		{Method: "eth_getBlockByNumber", Args: []any{"latest", false}, Result: new(map[string]any)},
	}
	if err := c.BatchCallContext(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := c.CallContext(ctx, new(string), "eth_noSuchMethod"); err == nil {
		t.Fatal("an unknown method answered")
	}

	dead, err := chains.DialRPC(ctx, chains.Chain{ID: 7, RPCURL: "http://127.0.0.1:1"}, m)
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	if err := dead.CallContext(ctx, &head, "eth_blockNumber"); err == nil {
		t.Fatal("a dead endpoint answered")
	}

	chainID := attribute.Int64("chain_id", 1337)
	for _, c := range []struct {
		name  string
		attrs []attribute.KeyValue
		want  float64
	}{
		{"rpc.client.duration", []attribute.KeyValue{chainID, attribute.String("rpc.method", "eth_blockNumber"), attribute.String("rpc.system", "jsonrpc")}, 2},
		{"rpc.client.duration", []attribute.KeyValue{chainID, attribute.String("rpc.method", "eth_getBlockByNumber"), attribute.Bool("rpc.jsonrpc.batch", true)}, 1},
		{"ctrip.rpc.client.errors", []attribute.KeyValue{chainID, attribute.String("rpc.method", "eth_blockNumber")}, 0},
		{"ctrip.rpc.client.errors", []attribute.KeyValue{chainID, attribute.String("rpc.method", "eth_getBlockByNumber")}, 0},
		{"ctrip.rpc.client.errors", []attribute.KeyValue{chainID, attribute.String("rpc.method", "eth_noSuchMethod"), attribute.String("error.type", "jsonrpc")}, 1},
		{"ctrip.rpc.client.errors", []attribute.KeyValue{attribute.Int64("chain_id", 7), attribute.String("rpc.method", "eth_blockNumber"), attribute.String("error.type", "transport")}, 1},
	} {
		if got, _ := m.Value(t, c.name, c.attrs...); got != c.want {
			t.Errorf("%s %v = %v, want %v", c.name, c.attrs, got, c.want)
		}
	}
}
