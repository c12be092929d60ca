package chaintest_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
)

func TestFlakyProxy(t *testing.T) {
	c := chaintest.New(t, chaintest.WithHTTP())
	c.Mine(1)
	p := chaintest.FlakyProxy(t, c.RPCURL(), 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client, err := ethclient.DialContext(ctx, p.URL())
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	defer client.Close()

	// blockNumbers makes n eth_blockNumber calls and reports which failed (1-based).
	blockNumbers := func(n int) (failed []int, errs []error) {
		for i := 1; i <= n; i++ {
			got, err := client.BlockNumber(ctx)
			if err != nil {
				failed = append(failed, i)
				errs = append(errs, err)
				continue
			}
			if got != 1 {
				t.Errorf("call %d: block number %d through the proxy, want 1", i, got)
			}
		}
		return failed, errs
	}

	failed, errs := blockNumbers(9)
	if want := []int{3, 6, 9}; !slices.Equal(failed, want) {
		t.Fatalf("failed calls %v, want %v (errors %v)", failed, want, errs)
	}
	for _, err := range errs {
		var httpErr rpc.HTTPError
		if !errors.As(err, &httpErr) || httpErr.StatusCode != 502 {
			t.Errorf("error %v, want HTTP 502", err)
		}
	}
	if p.Requests() != 9 || p.Failures() != 3 {
		t.Errorf("requests %d failures %d, want 9 and 3", p.Requests(), p.Failures())
	}

	p.SetFailing(false)
	if failed, errs := blockNumbers(6); len(failed) != 0 {
		t.Errorf("with failing off, calls %v failed: %v", failed, errs)
	}
	if p.Requests() != 15 || p.Failures() != 3 {
		t.Errorf("requests %d failures %d, want 15 and 3", p.Requests(), p.Failures())
	}

	p.SetFault(chaintest.FaultRPCError)
	p.SetFailEvery(1)
	p.SetFailing(true)
	_, err = client.BlockNumber(ctx)
	var rpcErr rpc.Error
	if !errors.As(err, &rpcErr) || rpcErr.ErrorCode() != chaintest.RPCErrorCode {
		t.Errorf("error %v, want JSON-RPC error %d", err, chaintest.RPCErrorCode)
	}

	// A batch gets one error per call, matched by id.
	raw, err := rpc.DialContext(ctx, p.URL())
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	defer raw.Close()
	var a, b string
	batch := []rpc.BatchElem{
		{Method: "eth_blockNumber", Result: &a},
		{Method: "eth_chainId", Result: &b},
	}
	if err := raw.BatchCallContext(ctx, batch); err != nil {
		t.Fatalf("batch: %v", err)
	}
	for _, elem := range batch {
		if !errors.As(elem.Error, &rpcErr) || rpcErr.ErrorCode() != chaintest.RPCErrorCode {
			t.Errorf("%s: error %v, want JSON-RPC error %d", elem.Method, elem.Error, chaintest.RPCErrorCode)
		}
	}
	if p.Failures() != 5 {
		t.Errorf("failures %d, want 5", p.Failures())
	}

	p.SetFailEvery(0)
	if _, err := client.BlockNumber(ctx); err != nil {
		t.Errorf("with failEvery 0: %v", err)
	}
}
