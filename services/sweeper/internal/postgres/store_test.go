package postgres_test

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/jmoiron/sqlx"

	"github.com/ctrip-pay/pipeline/services/sweeper/internal/postgres"
	"github.com/ctrip-pay/pipeline/services/sweeper/internal/sweep"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func insertPayment(t *testing.T, db *sqlx.DB, i int) string {
	t.Helper()
	id := fmt.Sprintf("pay_%d", i)
	if _, err := db.Exec(`INSERT INTO payments (id, merchant_id, status, chain_id, token, decimals, address, address_index,
		amount_base_units, expires_at) VALUES ($1, 'mer_1', 'confirmed', 1337, 'ETH', 18, $2, $3, 1, now())`,
		id, fmt.Sprintf("0x%040x", i), i); err != nil {
		t.Fatal(err)
	}
	return id
}

// ledgerFixture is a fresh database with merchant mer_1, its store, and a sender's key and
// signer on chain 1337.
func ledgerFixture(t *testing.T) (*sqlx.DB, *postgres.Store, *ecdsa.PrivateKey, types.Signer) {
	t.Helper()
	db, _ := testkit.MustDB(t)
	if _, err := db.Exec(`INSERT INTO merchants (id, name) VALUES ('mer_1', 'm')`); err != nil {
		t.Fatal(err)
	}
	key, _ := crypto.GenerateKey()
	return db, postgres.New(db), key, types.LatestSignerForChainID(big.NewInt(1337))
}

// Nonces: the larger of the stored next nonce and the node's pending nonce, consecutive under
// concurrency, and not consumed by a record that fails.
func TestRecordAllocatesNonces(t *testing.T) {
	db, store, key, signer := ledgerFixture(t)
	ctx, sender := context.Background(), crypto.PubkeyToAddress(key.PublicKey)
	draft := func(kind string, pending uint64) sweep.Draft {
		to := common.Address{0xaa}
		return sweep.Draft{Kind: kind, From: sender, To: to, Value: big.NewInt(1), PendingNonce: pending,
			Sign: func(n uint64) (*types.Transaction, error) {
				return types.SignNewTx(key, signer, &types.DynamicFeeTx{ChainID: big.NewInt(1337), Nonce: n, Gas: 21000,
					GasTipCap: big.NewInt(1), GasFeeCap: big.NewInt(2), To: &to, Value: big.NewInt(1)})
			}}
	}
	record := func(paymentID string, pending uint64) (uint64, error) {
		txs, err := store.Record(ctx, paymentID, 1337, []sweep.Draft{draft(sweep.TxNative, pending)})
		if err != nil {
			return 0, err
		}
		return txs[0].Nonce, nil
	}

	for i, tc := range []struct {
		name    string
		pending uint64
		want    uint64
	}{
		{"first send takes the node's pending nonce", 0, 0},
		{"the node lags right after a send: the stored nonce wins", 0, 1},
		{"someone else sent from the address: the node's nonce wins", 7, 7},
		{"and the stored one follows it", 3, 8},
	} {
		got, err := record(insertPayment(t, db, i), tc.pending)
		if err != nil || got != tc.want {
			t.Errorf("%s: nonce %d (%v), want %d", tc.name, got, err, tc.want)
		}
	}

	// A second transaction of the same kind for a payment is refused and uses up no nonce.
	if _, err := record("pay_0", 0); !errors.Is(err, sweep.ErrAlreadyRecorded) {
		t.Fatalf("second native sweep of pay_0: %v, want ErrAlreadyRecorded", err)
	}
	const workers = 8
	nonces := make([]uint64, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i := range workers {
		id := insertPayment(t, db, 100+i)
		wg.Go(func() {
			nonces[i], errs[i] = record(id, 0)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	slices.Sort(nonces)
	for i, n := range nonces {
		if n != uint64(9+i) {
			t.Fatalf("concurrent nonces %v, want 9..16", nonces)
		}
	}

	// The recorded transaction is the one signed, byte for byte.
	txs, err := store.Sweeps(ctx, "pay_2")
	if err != nil || len(txs) != 1 {
		t.Fatalf("%v %v", txs, err)
	}
	var tx types.Transaction
	if err := tx.UnmarshalBinary(txs[0].Raw); err != nil || tx.Hash() != txs[0].Hash || tx.Nonce() != 7 || txs[0].Status != sweep.StatusSigned {
		t.Fatalf("recorded %+v decodes to nonce %d hash %s (%v)", txs[0], tx.Nonce(), tx.Hash(), err)
	}
}

// A replacement takes the nonce of the version it replaces (allocating none) and marks it
// replaced; a stale replacement is refused; a mined version marks the earlier ones replaced
// and the later ones dropped, and no nonce is ever used by two mined versions.
func TestReplacementsKeepTheNonce(t *testing.T) {
	db, store, key, signer := ledgerFixture(t)
	ctx, sender := context.Background(), crypto.PubkeyToAddress(key.PublicKey)
	to := common.Address{0xaa}
	draft := func(seq int, feeCap int64, replaces *sweep.Tx) sweep.Draft {
		return sweep.Draft{Kind: sweep.TxNative, Seq: seq, From: sender, To: to, Value: big.NewInt(1), Replaces: replaces,
			Sign: func(n uint64) (*types.Transaction, error) {
				return types.SignNewTx(key, signer, &types.DynamicFeeTx{ChainID: big.NewInt(1337), Nonce: n, Gas: 21000,
					GasTipCap: big.NewInt(1), GasFeeCap: big.NewInt(feeCap), To: &to, Value: big.NewInt(1)})
			}}
	}
	record := func(paymentID string, d sweep.Draft) (sweep.Tx, error) {
		txs, err := store.Record(ctx, paymentID, 1337, []sweep.Draft{d})
		if err != nil {
			return sweep.Tx{}, err
		}
		return txs[0], nil
	}
	pay := insertPayment(t, db, 1)
	v0, err := record(pay, draft(0, 10, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SetStatus(ctx, v0.ID, sweep.StatusBroadcast, ""); err != nil {
		t.Fatal(err)
	}
	v1, err := record(pay, draft(1, 11, &v0))
	if err != nil || v1.Nonce != v0.Nonce || v1.Seq != 1 {
		t.Fatalf("replacement %+v (%v), want nonce %d seq 1", v1, err, v0.Nonce)
	}
	// Replacing v0 again (a handler that had not seen v1) or recording seq 1 twice is refused.
	if _, err := record(pay, draft(2, 12, &v0)); !errors.Is(err, sweep.ErrAlreadyRecorded) {
		t.Errorf("second replacement of v0: %v, want ErrAlreadyRecorded", err)
	}
	if _, err := record(pay, draft(1, 13, &v1)); !errors.Is(err, sweep.ErrAlreadyRecorded) {
		t.Errorf("seq 1 again: %v, want ErrAlreadyRecorded", err)
	}
	v2, err := record(pay, draft(2, 14, &v1))
	if err != nil {
		t.Fatal(err)
	}
	// The replacements allocated no nonce: the sender's next transaction takes v0's + 1.
	other, err := record(insertPayment(t, db, 2), draft(0, 10, nil))
	if err != nil || other.Nonce != v0.Nonce+1 {
		t.Fatalf("next nonce %d (%v), want %d", other.Nonce, err, v0.Nonce+1)
	}

	status := func() []string {
		txs, err := store.Sweeps(ctx, pay)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, tx := range txs {
			out = append(out, fmt.Sprintf("%d:%s", tx.Seq, tx.Status))
		}
		return out
	}
	if got := status(); !slices.Equal(got, []string{"0:replaced", "1:replaced", "2:signed"}) {
		t.Fatalf("before settling %v", got)
	}
	txs, _ := store.Sweeps(ctx, pay)
	if txs[0].BroadcastAt.IsZero() || !txs[2].BroadcastAt.IsZero() {
		t.Errorf("broadcast_at %v / %v, want set for the broadcast version only", txs[0].BroadcastAt, txs[2].BroadcastAt)
	}
	// The middle version is mined: v0 was replaced, v2 dropped.
	if err := store.SetStatus(ctx, v1.ID, sweep.StatusMined, ""); err != nil {
		t.Fatal(err)
	}
	if got := status(); !slices.Equal(got, []string{"0:replaced", "1:mined", "2:dropped"}) {
		t.Fatalf("after v1 mined %v", got)
	}
	// After a reorg v2 is mined instead: v1 steps back, and the nonce is still used once.
	if err := store.SetStatus(ctx, v2.ID, sweep.StatusMined, ""); err != nil {
		t.Fatal(err)
	}
	if got := status(); !slices.Equal(got, []string{"0:replaced", "1:replaced", "2:mined"}) {
		t.Fatalf("after v2 mined %v", got)
	}
	if _, err := db.Exec(`UPDATE sweeps SET status = 'mined' WHERE id = $1`, v0.ID); err == nil {
		t.Error("two mined versions of one nonce accepted")
	}
}
