package scan

import (
	"math"
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"
)

// TestNativeKeysDoNotOverlap: the log indexes of a transaction's own value, of calls inside
// it and of reconciled rises lie in ranges of their own, below every log index, within the
// int32 column.
func TestNativeKeysDoNotOverlap(t *testing.T) {
	cases := []struct {
		name     string
		got      int64
		low, top int64 // the range it must lie in
	}{
		{"first internal call", InternalLogIndex(0), -2, -2},
		{"last internal call", InternalLogIndex(maxInternalOrdinal), -(1 << 30) + 1, -(1 << 30) + 1},
		{"reconciled, index 0", ReconciledLogIndex(0), -(1 << 30), -(1 << 30)},
		{"reconciled, index 2^30-1", ReconciledLogIndex(1<<30 - 1), math.MinInt32 + 1, math.MinInt32 + 1},
		{"reconciled, BIP-32's last index wraps", ReconciledLogIndex(1<<31 - 1), math.MinInt32 + 1, math.MinInt32 + 1},
		{"reconciled, index 7", ReconciledLogIndex(7), -(1 << 30) - 7, -(1 << 30) - 7},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.got < c.low || c.got > c.top || c.got >= NativeLogIndex || c.got < math.MinInt32 {
				t.Fatalf("log index %d, want within [%d, %d], below %d and an int32", c.got, c.low, c.top, NativeLogIndex)
			}
		})
	}
	if InternalLogIndex(maxInternalOrdinal) <= ReconciledLogIndex(0) {
		t.Fatal("the internal and reconciled ranges overlap")
	}
}

// TestScheduleKeepsToTheBudget: the watched addresses are spread over stride blocks with at
// most budget readings in any block, each address in one slot.
func TestScheduleKeepsToTheBudget(t *testing.T) {
	for _, c := range []struct{ addresses, budget, stride int }{{10, 3, 4}, {3, 200, 1}, {10_000, 200, 50}} {
		r := newReconciler(c.budget)
		for i := range c.addresses {
			r.noteDeposits(1, []Deposit{{PaymentID: "pay_" + big.NewInt(int64(i)).String(), ChainID: 1,
				Address: common.BigToAddress(big.NewInt(int64(i + 1))), Index: int64(i)}})
		}
		r.sync(0)
		stride := uint64((len(r.watched) + c.budget - 1) / c.budget)
		if stride != uint64(c.stride) {
			t.Fatalf("%d addresses, budget %d: stride %d, want %d", c.addresses, c.budget, stride, c.stride)
		}
		sc := r.buildSchedule(stride)
		seen := map[common.Address]int{}
		for n := range stride {
			due := sc.due(100 + n)
			if len(due) > c.budget {
				t.Fatalf("block %d reads %d addresses, budget %d", 100+n, len(due), c.budget)
			}
			for _, a := range due {
				seen[a]++
			}
		}
		if len(seen) != c.addresses {
			t.Fatalf("%d of %d addresses scheduled", len(seen), c.addresses)
		}
		for a, k := range seen {
			if k != 1 {
				t.Fatalf("%s read %d times per stride", a, k)
			}
		}
	}
}

// TestOpenPaymentsNarrowTheWatch: with a Store that names the open payments, only their
// addresses (and those of payments seen since that answer) are watched, and a watch that
// stays keeps what it knows.
func TestOpenPaymentsNarrowTheWatch(t *testing.T) {
	addr := func(i int64) common.Address { return common.BigToAddress(big.NewInt(i)) }
	token := common.HexToAddress("0xdac17f958d2ee523a2206206994597c13d831ec7")
	r := newReconciler(10)
	r.noteDeposits(1, []Deposit{
		{PaymentID: "a", ChainID: 1, Address: addr(1), Index: 1},
		{PaymentID: "b", ChainID: 1, Address: addr(2), Index: 2},
		{PaymentID: "token", ChainID: 1, Address: addr(3), Index: 3, TokenContract: &token},
		{PaymentID: "other chain", ChainID: 2, Address: addr(4), Index: 4},
	})
	r.sync(5)
	if len(r.watched) != 2 {
		t.Fatalf("without open payments: %d watched, want the 2 native deposits of the chain", len(r.watched))
	}
	r.byPayment["a"].balance = big.NewInt(42)

	r.open, r.recent, r.reopen = map[string]bool{"a": true}, map[string]bool{}, true       // as refreshOpen leaves them
	r.noteDeposits(1, []Deposit{{PaymentID: "c", ChainID: 1, Address: addr(5), Index: 5}}) // seen after the read
	r.sync(9)
	if len(r.watched) != 2 || r.byPayment["a"] == nil || r.byPayment["c"] == nil || r.byPayment["b"] != nil {
		t.Fatalf("watched %v, want a (open) and c (new)", r.byPayment)
	}
	if a := r.byPayment["a"]; a.base != 5 || a.balance.Int64() != 42 {
		t.Fatalf("a kept watch: base %d balance %v, want 5 and 42", a.base, a.balance)
	}
	if c := r.byPayment["c"]; c.base != 9 || c.balance != nil {
		t.Fatalf("c is read first at block 9: base %d balance %v", c.base, c.balance)
	}
}
