package chaintest_test

import (
	"context"
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
)

// callFrame is the part of a callTracer frame the tests read.
type callFrame struct {
	Type  string         `json:"type"`
	To    common.Address `json:"to"`
	Value *hexutil.Big   `json:"value"`
	Error string         `json:"error"`
	Calls []callFrame    `json:"calls"`
}

// traceTx is debug_traceBlockByHash with the callTracer, the frame of tx in its block.
func traceTx(t *testing.T, c *chaintest.Chain, r *types.Receipt) callFrame {
	t.Helper()
	client, err := rpc.Dial(c.RPCURL())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var traces []struct {
		TxHash common.Hash `json:"txHash"`
		Result callFrame   `json:"result"`
	}
	if err := client.CallContext(context.Background(), &traces, "debug_traceBlockByHash", r.BlockHash,
		map[string]any{"tracer": "callTracer"}); err != nil {
		t.Fatalf("debug_traceBlockByHash: %v", err)
	}
	for _, tr := range traces {
		if tr.TxHash == r.TxHash {
			return tr.Result
		}
	}
	t.Fatalf("no trace of %s in block %s", r.TxHash, r.BlockHash)
	return callFrame{}
}

func value(f callFrame) *big.Int {
	if f.Value == nil {
		return new(big.Int)
	}
	return f.Value.ToInt()
}

// TestForwarderPaysThroughInternalCalls: each Forwarder call moves (or, reverted, does not
// move) ETH to the receiver through a CALL inside the transaction, and the node's callTracer
// shows that frame.
func TestForwarderPaysThroughInternalCalls(t *testing.T) {
	c := chaintest.New(t, chaintest.WithHTTP())
	payer := c.Accounts[0]
	fwd, next := c.DeployForwarder(), c.DeployForwarder()
	a, b := common.HexToAddress("0x00000000000000000000000000000000000000a1"), common.HexToAddress("0x00000000000000000000000000000000000000b2")
	mine := func(tx *types.Transaction) *types.Receipt {
		t.Helper()
		c.Commit()
		return c.WaitMined(tx)
	}

	t.Run("forward", func(t *testing.T) {
		before := c.BalanceAt(a)
		r := mine(c.Forward(payer, fwd, a, big.NewInt(1000)))
		if r.Status != types.ReceiptStatusSuccessful {
			t.Fatalf("status %d", r.Status)
		}
		if got := new(big.Int).Sub(c.BalanceAt(a), before); got.Int64() != 1000 {
			t.Fatalf("receiver got %s, want 1000", got)
		}
		top := traceTx(t, c, r)
		if top.To != fwd || len(top.Calls) != 1 {
			t.Fatalf("top frame %+v", top)
		}
		if in := top.Calls[0]; in.Type != "CALL" || in.To != a || value(in).Int64() != 1000 || in.Error != "" {
			t.Fatalf("inner frame %+v", in)
		}
	})
	t.Run("forwardMany", func(t *testing.T) {
		beforeA, beforeB := c.BalanceAt(a), c.BalanceAt(b)
		r := mine(c.ForwardMany(payer, fwd, []common.Address{a, b}, []*big.Int{big.NewInt(7), big.NewInt(11)}))
		if r.Status != types.ReceiptStatusSuccessful {
			t.Fatalf("status %d", r.Status)
		}
		if ga, gb := new(big.Int).Sub(c.BalanceAt(a), beforeA), new(big.Int).Sub(c.BalanceAt(b), beforeB); ga.Int64() != 7 || gb.Int64() != 11 {
			t.Fatalf("receivers got %s and %s, want 7 and 11", ga, gb)
		}
		if top := traceTx(t, c, r); len(top.Calls) != 2 || top.Calls[0].To != a || top.Calls[1].To != b {
			t.Fatalf("frames %+v", top)
		}
	})
	t.Run("forwardVia", func(t *testing.T) {
		before := c.BalanceAt(a)
		r := mine(c.ForwardVia(payer, fwd, next, a, big.NewInt(5)))
		if got := new(big.Int).Sub(c.BalanceAt(a), before); r.Status != types.ReceiptStatusSuccessful || got.Int64() != 5 {
			t.Fatalf("status %d, receiver got %s, want 5", r.Status, got)
		}
		top := traceTx(t, c, r)
		if len(top.Calls) != 1 || top.Calls[0].To != next || len(top.Calls[0].Calls) != 1 || top.Calls[0].Calls[0].To != a {
			t.Fatalf("frames %+v", top)
		}
	})
	t.Run("forwardThenRevert", func(t *testing.T) {
		before := c.BalanceAt(a)
		r := mine(c.ForwardThenRevert(payer, fwd, a, big.NewInt(9)))
		if r.Status != types.ReceiptStatusFailed || c.BalanceAt(a).Cmp(before) != 0 {
			t.Fatalf("status %d, balance %s → %s: want a failed transaction that moved nothing", r.Status, before, c.BalanceAt(a))
		}
		top := traceTx(t, c, r)
		if top.Error == "" || len(top.Calls) != 1 || top.Calls[0].Error != "" {
			t.Fatalf("want a reverted top frame over a successful inner call: %+v", top)
		}
	})
	t.Run("tryForward beyond the balance", func(t *testing.T) {
		before := c.BalanceAt(a)
		r := mine(c.TryForward(payer, fwd, a, big.NewInt(1), chaintest.GenesisBalance))
		if r.Status != types.ReceiptStatusSuccessful || c.BalanceAt(a).Cmp(before) != 0 {
			t.Fatalf("status %d, balance %s → %s: want a successful transaction that moved nothing", r.Status, before, c.BalanceAt(a))
		}
		top := traceTx(t, c, r)
		if top.Error != "" || len(top.Calls) != 1 || top.Calls[0].Error == "" || top.Calls[0].To != a {
			t.Fatalf("want a successful top frame over a failed inner call: %+v", top)
		}
	})
}

// TestHistoricalStateIsKept: the node is an archive node, so a balance at an old block and the
// trace of an old block can still be read after many more blocks (a pruning node keeps 128).
func TestHistoricalStateIsKept(t *testing.T) {
	c := chaintest.New(t, chaintest.WithHTTP())
	a := common.HexToAddress("0x00000000000000000000000000000000000000c3")
	tx := c.SendETH(c.Accounts[0], a, big.NewInt(42))
	c.Commit()
	r := c.WaitMined(tx)
	c.Mine(200)
	client, err := rpc.Dial(c.RPCURL())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var bal hexutil.Big
	if err := client.Call(&bal, "eth_getBalance", a, map[string]any{"blockHash": r.BlockHash}); err != nil || bal.ToInt().Int64() != 42 {
		t.Fatalf("balance at block %d: %v (err %v), want 42", r.BlockNumber, bal.ToInt(), err)
	}
	if top := traceTx(t, c, r); top.To != a || value(top).Int64() != 42 {
		t.Fatalf("trace of an old block: %+v", top)
	}
}

// TestMeterHidesDebugAndCounts: behind a Meter with HideDebug, debug_* calls are answered with
// "method not found" while the other calls of the same batch reach the node, and every call
// is counted.
func TestMeterHidesDebugAndCounts(t *testing.T) {
	c := chaintest.New(t, chaintest.WithHTTP())
	m := chaintest.NewMeter(t, c.RPCURL())
	client, err := rpc.Dial(m.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx := context.Background()
	c.Commit() // the genesis block cannot be traced
	head := c.Head()

	var traces []any
	if err := client.CallContext(ctx, &traces, "debug_traceBlockByHash", head.Hash(), map[string]any{"tracer": "callTracer"}); err != nil {
		t.Fatalf("before HideDebug: %v", err)
	}
	m.HideDebug()
	err = client.CallContext(ctx, &traces, "debug_traceBlockByHash", head.Hash(), map[string]any{"tracer": "callTracer"})
	if e, ok := err.(rpc.Error); !ok || e.ErrorCode() != chaintest.MethodNotFoundCode || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("hidden debug call: %v, want method not found", err)
	}

	var n1, n2 hexutil.Uint64
	var bal hexutil.Big
	batch := []rpc.BatchElem{
		{Method: "eth_blockNumber", Result: &n1},
		{Method: "debug_traceBlockByHash", Args: []any{head.Hash(), map[string]any{"tracer": "callTracer"}}, Result: &traces},
		{Method: "eth_getBalance", Args: []any{c.Accounts[0].Address, "latest"}, Result: &bal},
		{Method: "eth_blockNumber", Result: &n2},
	}
	if err := client.BatchCallContext(ctx, batch); err != nil {
		t.Fatal(err)
	}
	for i, el := range batch {
		if (el.Error != nil) != (i == 1) {
			t.Fatalf("call %d (%s): error %v", i, el.Method, el.Error)
		}
	}
	if uint64(n1) != head.Number.Uint64() || uint64(n2) != uint64(n1) || bal.ToInt().Cmp(chaintest.GenesisBalance) != 0 {
		t.Fatalf("answers out of place: %d, %d, %s", n1, n2, bal.ToInt())
	}
	if got := m.Calls("debug_traceBlockByHash"); got != 3 {
		t.Errorf("debug calls counted %d, want 3", got)
	}
	if got, reqs := m.Calls("eth_blockNumber"), m.Requests("eth_blockNumber"); got != 2 || reqs != 1 {
		t.Errorf("eth_blockNumber: %d calls in %d requests, want 2 in 1", got, reqs)
	}
	if m.Requests("debug_traceBlockByHash") != 1 || m.Spent("eth_getBalance") <= 0 {
		t.Errorf("only the first debug call reached the node: %d requests; balance time %s",
			m.Requests("debug_traceBlockByHash"), m.Spent("eth_getBalance"))
	}
}
