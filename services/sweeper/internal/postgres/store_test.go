package postgres_test

import (
	"context"
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

// Nonces: the larger of the stored next nonce and the node's pending nonce, consecutive under
// concurrency, and not consumed by a record that fails.
func TestRecordAllocatesNonces(t *testing.T) {
	db, _ := testkit.MustDB(t)
	if _, err := db.Exec(`INSERT INTO merchants (id, name) VALUES ('mer_1', 'm')`); err != nil {
		t.Fatal(err)
	}
	store := postgres.New(db)
	ctx := context.Background()
	key, _ := crypto.GenerateKey()
	sender := crypto.PubkeyToAddress(key.PublicKey)
	signer := types.LatestSignerForChainID(big.NewInt(1337))
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			nonces[i], errs[i] = record(id, 0)
		}()
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
