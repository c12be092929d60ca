// Package wallet derives deposit addresses from the account-level extended public key
// (WALLET_XPUB, m/44'/60'/0'/0): address i is the Ethereum address of child i (non-hardened).
// It never sees a private key: only the sweeper holds the matching xprv / mnemonic.
package wallet

import (
	"errors"
	"fmt"
	"math"

	"github.com/btcsuite/btcd/btcutil/hdkeychain"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// AccountDepth is the depth of m/44'/60'/0'/0, the key WALLET_XPUB must be.
const AccountDepth = 4

// MaxIndex is the last non-hardened child index; above it BIP-32 derives hardened children,
// which need the private key.
const MaxIndex = math.MaxInt32

// ErrInvalidChild means BIP-32 has no key at this index (probability about 2^-127); the caller
// takes the next index.
var ErrInvalidChild = hdkeychain.ErrInvalidChild

// Deriver turns an address index into a deposit address.
type Deriver struct {
	account *hdkeychain.ExtendedKey
}

// ParseXPub accepts a BIP-32 serialized extended public key of depth 4. Error messages never
// repeat the key.
func ParseXPub(s string) (*Deriver, error) {
	if s == "" {
		return nil, errors.New("is required")
	}
	k, err := hdkeychain.NewKeyFromString(s)
	if err != nil {
		return nil, fmt.Errorf("not a BIP-32 extended key: %w", err)
	}
	if k.IsPrivate() {
		// Refuse rather than neuter: a private key in the api's environment is a leak waiting
		// to happen, and the operator must hear about it.
		return nil, errors.New("is an extended private key; the api takes only the public key (xpub) of m/44'/60'/0'/0")
	}
	if k.Depth() != AccountDepth {
		return nil, fmt.Errorf("has depth %d; want the key of m/44'/60'/0'/0 (depth %d), the same account the sweeper signs for", k.Depth(), AccountDepth)
	}
	return &Deriver{account: k}, nil
}

// Address returns the deposit address of child index i (lower-case hex via common.Address.Hex
// is checksummed; callers store strings.ToLower of it).
func (d *Deriver) Address(i int64) (common.Address, error) {
	if i < 0 || i > MaxIndex {
		return common.Address{}, fmt.Errorf("wallet: index %d outside the non-hardened range 0..%d", i, MaxIndex)
	}
	child, err := d.account.Derive(uint32(i))
	if err != nil {
		return common.Address{}, err
	}
	pub, err := child.ECPubKey()
	if err != nil {
		return common.Address{}, fmt.Errorf("wallet: child %d: %w", i, err)
	}
	// The Ethereum address is the last 20 bytes of keccak256 of the uncompressed point without
	// its 0x04 prefix.
	return common.BytesToAddress(crypto.Keccak256(pub.SerializeUncompressed()[1:])[12:]), nil
}
