package scan

import (
	"context"
	"errors"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
)

// TestBalanceReaderAnswersWhatGetBalanceDoes: readings of more addresses than one call takes,
// at three blocks of different balances, come back equal to eth_getBalance at the same block
// hash, each at its own block; a block the node no longer knows ends in errChainMoved.
func TestBalanceReaderAnswersWhatGetBalanceDoes(t *testing.T) {
	c := chaintest.New(t, chaintest.WithHTTP())
	s := fetchScanner(t, c, common.Address{1}, 10)
	ctx := context.Background()
	eth, err := ethclient.Dial(c.RPCURL())
	if err != nil {
		t.Fatal(err)
	}
	defer eth.Close()
	if err := s.probeBalanceReader(ctx); err != nil || !s.balanceCalls {
		t.Fatalf("probe: %v, balance reader %v; want it used", err, s.balanceCalls)
	}

	paid := []common.Address{chaintest.NewAccount("reader a").Address, chaintest.NewAccount("reader b").Address}
	var hashes []common.Hash
	for i := range 3 {
		for k, a := range paid {
			c.SendETH(c.Accounts[0], a, big.NewInt(int64(1_000_000*(i+1)+k)))
		}
		c.Commit()
		hashes = append(hashes, c.Head().Hash())
	}
	// Past readerBatch, the paid addresses first, last and in the middle, at every block.
	addrs := []common.Address{paid[0]}
	for i := range readerBatch {
		addrs = append(addrs, common.BigToAddress(big.NewInt(int64(0x10000+i))))
	}
	addrs = append(addrs[:500], append([]common.Address{paid[1]}, addrs[500:]...)...)
	addrs = append(addrs, paid[0], c.Accounts[0].Address)
	var reads []balanceRead
	for _, h := range hashes {
		for _, a := range addrs {
			reads = append(reads, balanceRead{addr: a, hash: h})
		}
	}
	if calls := readerCalls(reads); len(calls) != 6 {
		t.Fatalf("%d readings at 3 blocks in %d calls, want 6 (%d addresses per call)", len(reads), len(calls), readerBatch)
	}
	if err := s.readBalancesByCall(ctx, reads); err != nil {
		t.Fatal(err)
	}
	for _, rd := range reads {
		want, err := eth.BalanceAtHash(ctx, rd.addr, rd.hash)
		if err != nil {
			t.Fatal(err)
		}
		if rd.err != nil || rd.balance == nil || rd.balance.Cmp(want) != 0 {
			t.Fatalf("%s at %s: %v (err %v), eth_getBalance says %v", rd.addr.Hex(), rd.hash.Hex(), rd.balance, rd.err, want)
		}
	}
	if reads[0].balance.Sign() == 0 || reads[0].balance.Cmp(reads[2*len(addrs)].balance) == 0 {
		t.Fatalf("the paid address reads %v at the first block and %v at the third: the readings are not per block",
			reads[0].balance, reads[2*len(addrs)].balance)
	}

	gone := []balanceRead{{addr: paid[0], hash: common.HexToHash("0x1234")}}
	if err := s.readBalancesByCall(ctx, gone); err != nil || !errors.Is(gone[0].err, errChainMoved) {
		t.Fatalf("unknown block: err %v, reading err %v; want errChainMoved on the reading", err, gone[0].err)
	}
}

// TestBalanceReaderProbeFallsBack: a node that refuses eth_call's state override is read with
// eth_getBalance.
func TestBalanceReaderProbeFallsBack(t *testing.T) {
	c := chaintest.New(t, chaintest.WithHTTP())
	m := chaintest.NewMeter(t, c.RPCURL())
	m.RefuseStateOverride()
	s := fetchScannerAt(t, m.URL(), common.Address{1}, 10)
	if err := s.probeBalanceReader(context.Background()); err != nil || s.balanceCalls {
		t.Fatalf("probe: %v, balance reader %v; want eth_getBalance", err, s.balanceCalls)
	}
}
