package sweep_test

import (
	"context"
	"encoding/json"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/ctrip-pay/pipeline/services/sweeper/internal/sweep"
	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
)

// terminalPayment is a payment in the state the confirmer leaves it: status, the confirmed
// value and its transfers (each confirmed; late ones detected after the deadline, which has
// passed).
func (w *world) terminalPayment(t *testing.T, status string, amount *big.Int, onTime, late *big.Int) payment {
	t.Helper()
	index, deposit := w.nextDeposit(t)
	i := int64(index)
	confirmed := new(big.Int)
	for _, v := range []*big.Int{onTime, late} {
		if v != nil {
			confirmed.Add(confirmed, v)
		}
	}
	row := testkit.InsertPayment(t, w.db, testkit.Payment{MerchantID: "mer_1", Status: status, ChainID: chainID,
		Address: deposit, Index: &i, Amount: amount, Received: confirmed, Confirmed: confirmed, ExpiresIn: -time.Minute})
	for n, v := range []*big.Int{onTime, late} {
		if v == nil {
			continue
		}
		detected := "now() - interval '2 minutes'" // before the deadline
		if n == 1 {
			detected = "now()"
		}
		if _, err := w.db.Exec(`INSERT INTO payment_transfers (chain_id, tx_hash, log_index, payment_id, value_base_units,
			block_number, block_hash, status, detected_at, confirmed_at)
			VALUES ($1, $2, -1, $3, $4, 1, '0x01', 'confirmed', `+detected+`, now())`,
			chainID, common.BytesToHash([]byte(row.ID+string(rune('a'+n)))).Hex(), row.ID, v.String()); err != nil {
			t.Fatal(err)
		}
	}
	return payment{ID: row.ID, Index: index, Deposit: deposit,
		Treasury: chaintest.NewAccount("treasury/" + row.ID).Address}
}

// setConfirmed is the confirmer counting a further confirmed transfer of value.
func (w *world) addConfirmed(t *testing.T, id string, v *big.Int) {
	t.Helper()
	if _, err := w.db.Exec(`UPDATE payments SET received_base_units = received_base_units + $2,
		confirmed_base_units = confirmed_base_units + $2 WHERE id = $1`, id, v.String()); err != nil {
		t.Fatal(err)
	}
}

func (w *world) sweptData(t *testing.T, p payment, round int) sweep.Swept {
	t.Helper()
	var out []sweep.Swept
	for _, e := range w.outbox(t, event.SubjectSwept, p.ID) {
		var d sweep.Swept
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatal(err)
		}
		if d.SweepRound == round {
			out = append(out, d)
		}
	}
	if len(out) != 1 {
		t.Fatalf("%d payments.swept of round %d for %s, want 1", len(out), round, p.ID)
	}
	return out[0]
}

// No wei is stranded: value at the address of a payment that expired short, value paid after
// the deadline and value paid after the payment was swept all reach the treasury once
// confirmed, each in its own sweep round; the status stays (expired is never confirmed) and
// payments.swept says what moved, in which round, and how much came late or short.
func TestValueLeftAtDepositAddressesIsSwept(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	fee := big.NewInt(1e15) // a native sweep's fee is far below this on the simulated chain

	short := w.terminalPayment(t, event.StatusExpired, ether10(), big.NewInt(4e18), nil)
	late := w.terminalPayment(t, event.StatusExpired, ether10(), nil, big.NewInt(3e18))
	for _, p := range []payment{short, late} {
		w.fundETH(t, p.Deposit, testkit.BigInt(t, w.confirmedOf(t, p.ID)))
	}
	treasury := chaintest.NewAccount("leftover treasury").Address
	s := w.sweeper(treasury)
	n, err := s.SweepLeftovers(ctx)
	if err != nil || n != 2 {
		t.Fatalf("swept %d payments (%v), want 2", n, err)
	}
	for _, c := range []struct {
		p            payment
		paid         *big.Int
		late, short_ string
	}{
		{short, big.NewInt(4e18), "0", "6000000000000000000"},
		{late, big.NewInt(3e18), "3000000000000000000", "7000000000000000000"},
	} {
		if got := w.status(t, c.p.ID); got != event.StatusExpired {
			t.Errorf("%s: status %s after the sweep, want expired", c.p.ID, got)
		}
		d := w.sweptData(t, c.p, 0)
		moved := testkit.BigInt(t, d.AmountSweptBaseUnits)
		if d.Status != event.StatusExpired || d.LateBaseUnits != c.late || d.ShortBaseUnits != c.short_ ||
			d.AmountSweptTotalBaseUnits != d.AmountSweptBaseUnits || new(big.Int).Sub(c.paid, moved).Cmp(fee) > 0 || moved.Cmp(c.paid) >= 0 {
			t.Errorf("%s: payments.swept %+v, want status expired, late %s, short %s, about %s swept", c.p.ID, d, c.late, c.short_, c.paid)
		}
	}
	// Nothing is swept twice: the rounds cover what was confirmed.
	if n, err := s.SweepLeftovers(ctx); err != nil || n != 0 {
		t.Fatalf("second pass swept %d (%v), want nothing", n, err)
	}

	// Paid again after the sweep: the next confirmed value is round 1, the status stays.
	w.fundETH(t, late.Deposit, big.NewInt(2e18))
	w.addConfirmed(t, late.ID, big.NewInt(2e18))
	if n, err := s.SweepLeftovers(ctx); err != nil || n != 1 {
		t.Fatalf("swept %d (%v) after the further payment, want 1", n, err)
	}
	d := w.sweptData(t, late, 1)
	if d.Status != event.StatusExpired || d.SweepRound != 1 || testkit.BigInt(t, d.AmountSweptBaseUnits).Cmp(big.NewInt(2e18)) >= 0 ||
		testkit.BigInt(t, d.AmountSweptTotalBaseUnits).Cmp(testkit.BigInt(t, d.AmountSweptBaseUnits)) <= 0 {
		t.Errorf("round 1: %+v", d)
	}
	var swept string
	if err := w.db.Get(&swept, `SELECT swept_base_units::text FROM payments WHERE id = $1`, late.ID); err != nil || swept != d.AmountSweptTotalBaseUnits {
		t.Errorf("payment's swept_base_units %s (%v), want %s", swept, err, d.AmountSweptTotalBaseUnits)
	}
	if got, err := w.chain.Client().BalanceAt(ctx, treasury, nil); err != nil || got.Cmp(new(big.Int).Sub(big.NewInt(9e18), big.NewInt(3e15))) < 0 {
		t.Errorf("treasury holds %s (%v), want 9 ETH less three fees", got, err)
	}
}

// A swept payment paid again (an over-payment sent after the sweep) is swept in round 1 and
// stays swept; its first sweep is untouched.
func TestValuePaidAfterTheSweepIsSwept(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	p := w.newPayment(t, nil, ether10())
	w.fundETH(t, p.Deposit, ether10())
	s := w.sweeper(p.Treasury)
	if err := s.Sweep(ctx, p.Body); err != nil {
		t.Fatal(err)
	}
	if got := w.status(t, p.ID); got != event.StatusSwept {
		t.Fatalf("status %s after the sweep", got)
	}
	w.fundETH(t, p.Deposit, big.NewInt(5e17))
	w.addConfirmed(t, p.ID, big.NewInt(5e17))
	if n, err := s.SweepLeftovers(ctx); err != nil || n != 1 {
		t.Fatalf("swept %d (%v), want the late half ETH", n, err)
	}
	first, second := w.sweptData(t, p, 0), w.sweptData(t, p, 1)
	if second.Status != event.StatusSwept || second.LateBaseUnits != "0" || first.SweepRound != 0 ||
		testkit.BigInt(t, second.AmountSweptTotalBaseUnits).Cmp(new(big.Int).Add(testkit.BigInt(t, first.AmountSweptBaseUnits), testkit.BigInt(t, second.AmountSweptBaseUnits))) != 0 {
		t.Errorf("rounds: %+v then %+v", first, second)
	}
	if got := w.status(t, p.ID); got != event.StatusSwept {
		t.Errorf("status %s, want swept", got)
	}
}

func ether10() *big.Int { return new(big.Int).Mul(big.NewInt(10), ether) }

func (w *world) confirmedOf(t *testing.T, id string) string {
	t.Helper()
	var s string
	if err := w.db.Get(&s, `SELECT confirmed_base_units::text FROM payments WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	return s
}

// An over-payment's surplus goes with the rest in the payment's one sweep, and nothing is left
// for a leftover round.
func TestOverPaymentIsSweptWhole(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	p := w.newPayment(t, nil, ether10())
	paid := new(big.Int).Mul(big.NewInt(13), ether)
	w.fundETH(t, p.Deposit, paid)
	s := w.sweeper(p.Treasury)
	if err := s.Sweep(ctx, p.Body); err != nil {
		t.Fatal(err)
	}
	d := w.sweptData(t, p, 0)
	if moved := testkit.BigInt(t, d.AmountSweptBaseUnits); moved.Cmp(paid) >= 0 || new(big.Int).Sub(paid, moved).Cmp(big.NewInt(1e15)) > 0 {
		t.Errorf("swept %s of the %s paid, want all but the fee", moved, paid)
	}
	if n, err := s.SweepLeftovers(ctx); err != nil || n != 0 {
		t.Errorf("leftover pass swept %d (%v), want nothing left", n, err)
	}
}
