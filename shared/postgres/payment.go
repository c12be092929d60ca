package postgres

import (
	"strings"
	"time"

	"github.com/ctrip-pay/pipeline/shared/event"
)

// PaymentRow is the part of a payments row (the one table, in migrations/) that every service
// reads. A store scans it with sqlx, embedded in its own row type beside the columns only that
// service reads, and selects PaymentColumns plus those.
type PaymentRow struct {
	ID            string  `db:"id"`
	MerchantID    string  `db:"merchant_id"`
	Status        string  `db:"status"`
	ChainID       int64   `db:"chain_id"`
	Token         string  `db:"token"`
	TokenContract *string `db:"token_contract"` // nil for the native coin
	Decimals      int     `db:"decimals"`
	Address       string  `db:"address"`
	AddressIndex  int64   `db:"address_index"`
	Amount        Numeric `db:"amount_base_units"`
	Received      Numeric `db:"received_base_units"`
	Confirmed     Numeric `db:"confirmed_base_units"`
	// Swept is what the sweeps moved to the treasury, all rounds; SweepRounds the rounds
	// completed and SweepCovered the confirmed value the last one accounted for (migration 0009).
	Swept        Numeric   `db:"swept_base_units"`
	SweepRounds  int       `db:"sweep_rounds"`
	SweepCovered Numeric   `db:"sweep_covered_base_units"`
	Metadata     []byte    `db:"metadata"`
	ExpiresAt    time.Time `db:"expires_at"`
}

// Core is the row as the services' domain reads it (amounts as big.Int, times in UTC).
func (r PaymentRow) Core() event.PaymentCore {
	return event.PaymentCore{
		ID: r.ID, MerchantID: r.MerchantID, Status: r.Status, ChainID: r.ChainID, Token: r.Token,
		TokenContract: r.TokenContract, Decimals: r.Decimals, Address: r.Address, AddressIndex: r.AddressIndex,
		Amount: r.Amount.Int(), Received: r.Received.Int(), Confirmed: r.Confirmed.Int(), Swept: r.Swept.Int(),
		Metadata: r.Metadata, ExpiresAt: r.ExpiresAt.UTC(),
	}
}

// PaymentColumns are PaymentRow's columns, for a SELECT.
const PaymentColumns = `id, merchant_id, status, chain_id, token, token_contract, decimals, address, address_index,
	amount_base_units, received_base_units, confirmed_base_units, swept_base_units, sweep_rounds,
	sweep_covered_base_units, metadata, expires_at`

// TransferRow is the part of a payment_transfers row that the api and the confirmer read,
// embedded like PaymentRow; TransferColumns selects it.
type TransferRow struct {
	ChainID       int64   `db:"chain_id"`
	PaymentID     string  `db:"payment_id"`
	TxHash        string  `db:"tx_hash"`
	LogIndex      int64   `db:"log_index"`
	TokenContract *string `db:"token_contract"`
	Value         Numeric `db:"value_base_units"`
	BlockNumber   int64   `db:"block_number"`
	BlockHash     string  `db:"block_hash"`
	Status        string  `db:"status"`
}

// TransferColumns are TransferRow's columns, each qualified with the table's alias in the query
// ("t"), or not when alias is "".
func TransferColumns(alias string) string {
	cols := []string{"chain_id", "payment_id", "tx_hash", "log_index", "token_contract", "value_base_units",
		"block_number", "block_hash", "status"}
	if alias != "" {
		for i, c := range cols {
			cols[i] = alias + "." + c
		}
	}
	return strings.Join(cols, ", ")
}
