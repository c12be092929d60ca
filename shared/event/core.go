package event

import (
	"encoding/json"
	"math/big"
	"time"
)

// PaymentCore is the payment every service works from, as its row holds it: identity, status,
// chain, token, deposit address and amounts in base units. Each service's Payment embeds it
// beside what only that service needs; postgres.PaymentRow.Core reads it from the row.
type PaymentCore struct {
	ID, MerchantID, Status string
	ChainID                int64
	Token                  string  // the token's id in CHAINS_FILE ("ETH", "USDC")
	TokenContract          *string // lower-case contract; nil for the native coin
	Decimals               int
	Address                string // lower-case deposit address
	AddressIndex           int64
	// Amount is requested; Received counts detected and confirmed transfers, Confirmed those
	// with their confirmations; Swept is what the sweeps moved to the treasury.
	Amount, Received, Confirmed, Swept *big.Int
	Metadata                           json.RawMessage
	ExpiresAt                          time.Time // UTC
}
