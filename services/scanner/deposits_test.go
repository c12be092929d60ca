package main

import (
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// TestPaymentCommittedLateIsWatched holds a payment's transaction open after it took its
// address index while a payment with a higher index commits, is paid and detected — the
// scanner has read past the open one's index — then commits it and pays it: it is detected too.
func TestPaymentCommittedLateIsWatched(t *testing.T) {
	h := startHarness(t)
	h.waitScanned(h.head())

	var raw [20]byte
	if _, err := rand.Read(raw[:]); err != nil {
		t.Fatal(err)
	}
	late := payment{ID: event.NewID("pay"), Address: common.BytesToAddress(raw[:]), Token: "ETH"}
	tx, err := h.db.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`INSERT INTO payments (id, merchant_id, chain_id, token, decimals, address, address_index,
			amount_base_units, expires_at)
		VALUES ($1, $2, $3, 'ETH', 18, $4, nextval('deposit_address_index'), 1000000000000000000, now() + interval '1 hour')`,
		late.ID, testMerchant, testChainID, lower(late.Address.Hex())); err != nil {
		t.Fatal(err)
	}

	early := h.newPayment("ETH", ether(1), time.Now().Add(time.Hour))
	h.mine(h.chain.SendETH(h.payer, early.Address, ether(1)))
	testkit.Eventually(t, 20*time.Second, "the later payment detected", func() bool { return len(h.detectedFor(early.ID)) == 1 })

	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	h.mine(h.chain.SendETH(h.payer, late.Address, ether(1)))
	testkit.Eventually(t, 20*time.Second, fmt.Sprintf("payment %s committed late detected", late.ID),
		func() bool { return len(h.detectedFor(late.ID)) == 1 })
}
