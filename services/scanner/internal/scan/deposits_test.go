package scan

import (
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
)

func TestDepositsTrackIndexesMissingBelowTheHighest(t *testing.T) {
	const chain = 1
	dep := func(chainID, index int64) Deposit {
		return Deposit{PaymentID: "pay", ChainID: chainID, Address: common.BigToAddress(big.NewInt(index + 1)), Index: index}
	}
	t0 := time.Unix(1_700_000_000, 0)
	type read struct {
		rows    []Deposit
		at      time.Time
		max     int64
		missing []int64
		watched int
	}
	cases := []struct {
		name  string
		reads []read
	}{
		{name: "first read: holes between indexes are missing", reads: []read{
			{rows: []Deposit{dep(chain, 0), dep(chain, 3), dep(chain, 5)}, at: t0, max: 5, missing: []int64{1, 2, 4}, watched: 3},
		}},
		{name: "a late commit fills its hole", reads: []read{
			{rows: []Deposit{dep(chain, 0), dep(chain, 2)}, at: t0, max: 2, missing: []int64{1}, watched: 2},
			{rows: []Deposit{dep(chain, 1), dep(chain, 4)}, at: t0.Add(time.Second), max: 4, missing: []int64{3}, watched: 4},
		}},
		{name: "another chain's payment fills a hole and is not watched", reads: []read{
			{rows: []Deposit{dep(chain, 0), dep(2, 1), dep(chain, 3)}, at: t0, max: 3, missing: []int64{2}, watched: 2},
		}},
		{name: "an empty read changes nothing", reads: []read{
			{rows: []Deposit{dep(chain, 1)}, at: t0, max: 1, missing: []int64{0}, watched: 1},
			{at: t0.Add(time.Second), max: 1, missing: []int64{0}, watched: 1},
		}},
		{name: "a hole is given up after missingFor", reads: []read{
			{rows: []Deposit{dep(chain, 1)}, at: t0, max: 1, missing: []int64{0}, watched: 1},
			{rows: []Deposit{dep(chain, 3)}, at: t0.Add(missingFor + time.Second), max: 3, missing: []int64{2}, watched: 2},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newDeposits()
			for i, r := range c.reads {
				if n := d.add(chain, r.rows, r.at); n != 0 {
					t.Fatalf("read %d: %d holes untracked", i, n)
				}
				if d.max != r.max || !slices.Equal(d.missingIndexes(), r.missing) || len(d.byAddress) != r.watched {
					t.Fatalf("read %d: max %d, missing %v, %d watched; want %d, %v, %d",
						i, d.max, d.missingIndexes(), len(d.byAddress), r.max, r.missing, r.watched)
				}
			}
		})
	}
}

func TestDepositsBoundTheHolesTracked(t *testing.T) {
	d := newDeposits()
	if n := d.add(1, []Deposit{{ChainID: 1, Index: maxMissing + 10}}, time.Now()); n != 10 {
		t.Fatalf("%d holes untracked, want 10", n)
	}
	if len(d.missing) != maxMissing || d.max != maxMissing+10 {
		t.Fatalf("%d tracked, max %d", len(d.missing), d.max)
	}
}
