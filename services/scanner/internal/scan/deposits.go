package scan

import (
	"context"
	"slices"
	"time"

	"github.com/ethereum/go-ethereum/common"
)

// missingFor is how long an address index below the highest one seen is looked for again:
// the api takes an index from the deposit_address_index sequence, then commits its payment
// (well within this); an index whose payment never came (a rolled-back request) is given up
// after it.
const missingFor = 10 * time.Minute

// maxMissing bounds the indexes looked for: holes beyond this many (outside the sequence's
// order, not payments in flight) are not tracked.
const maxMissing = 100_000

// deposits is the scanner's in-memory index of deposit addresses, read incrementally by
// address_index. Every payment's index comes from one sequence, so a payment not seen yet has
// an index above the highest seen, or one below it that was missing from an earlier read (its
// transaction had taken the index but not committed). Each read fetches just those: its cost
// follows the payments created since the last read, not the number watched.
type deposits struct {
	byAddress map[common.Address]Deposit
	// max is the highest address_index seen on any chain (−1 before the first read);
	// missing the indexes below it not seen yet, with when they were first missed.
	max     int64
	missing map[int64]time.Time
}

func newDeposits() *deposits {
	return &deposits{byAddress: map[common.Address]Deposit{}, max: -1, missing: map[int64]time.Time{}}
}

func (d *deposits) lookup(a common.Address) (Deposit, bool) {
	dep, ok := d.byAddress[a]
	return dep, ok
}

// missingIndexes lists the indexes to look for again.
func (d *deposits) missingIndexes() []int64 {
	out := make([]int64, 0, len(d.missing))
	for i := range d.missing {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}

// add takes in a read's rows (payments of every chain: the indexes are shared) and keeps
// those of chainID. It returns how many holes were left untracked (0 unless maxMissing was hit).
func (d *deposits) add(chainID int64, rows []Deposit, now time.Time) (untracked int) {
	prev := d.max
	indexes := make([]int64, 0, len(rows))
	for _, r := range rows {
		if r.ChainID == chainID {
			d.byAddress[r.Address] = r
		}
		delete(d.missing, r.Index)
		if r.Index > prev {
			indexes = append(indexes, r.Index)
		}
	}
	slices.Sort(indexes)
	next := prev + 1
	for _, i := range indexes {
		for ; next < i; next++ {
			if len(d.missing) >= maxMissing {
				untracked += int(i - next)
				break
			}
			d.missing[next] = now
		}
		next = i + 1
	}
	if len(indexes) > 0 {
		d.max = indexes[len(indexes)-1]
	}
	for i, since := range d.missing {
		if now.Sub(since) > missingFor {
			delete(d.missing, i)
		}
	}
	return untracked
}

// refreshDeposits reads the payments created since the last read.
func (s *Scanner) refreshDeposits(ctx context.Context) error {
	var rows []Deposit
	missing := s.deposits.missingIndexes()
	if err := s.retry(ctx, "deposits", func(ctx context.Context) (err error) {
		rows, err = s.store.Deposits(ctx, s.deposits.max, missing)
		return err
	}); err != nil {
		return err
	}
	if !s.traces {
		s.recon.noteDeposits(s.chainID(), rows)
	}
	if n := s.deposits.add(s.chainID(), rows, time.Now()); n > 0 {
		s.log.WarnContext(ctx, "address indexes missing below the highest seen not tracked", "count", n, "tracked", maxMissing)
	}
	return nil
}
