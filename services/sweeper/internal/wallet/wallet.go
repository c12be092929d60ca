// Package wallet derives the private keys of deposit addresses: BIP-44 m/44'/60'/0'/0/i, the
// same account whose xpub (WALLET_XPUB) the api derives addresses from.
package wallet

import (
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/btcsuite/btcd/btcutil/hdkeychain"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/tyler-smith/go-bip39"
)

// accountPath is m/44'/60'/0'/0 below the master key: purpose, coin type (Ethereum), account
// 0, external chain. Deposit address i is its non-hardened child i.
var accountPath = []uint32{
	hdkeychain.HardenedKeyStart + 44,
	hdkeychain.HardenedKeyStart + 60,
	hdkeychain.HardenedKeyStart + 0,
	0,
}

// Wallet holds the account-level extended private key. It never prints its key. It is safe for
// concurrent use.
type Wallet struct {
	// mu serialises derivation: a private ExtendedKey memoises its public key on first Derive,
	// a write that races with concurrent sweeps (go test -race found it).
	mu      sync.Mutex
	account *hdkeychain.ExtendedKey
}

// FromMnemonic derives the account from a BIP-39 mnemonic (checksum verified, no passphrase).
func FromMnemonic(mnemonic string) (*Wallet, error) {
	// The seed is PBKDF2 over the exact phrase: normalise the spacing an operator may add.
	phrase := strings.Join(strings.Fields(mnemonic), " ")
	seed, err := bip39.NewSeedWithErrorChecking(phrase, "")
	if err != nil {
		// The library's messages never contain the phrase; keep it that way.
		return nil, fmt.Errorf("wallet: invalid mnemonic: %w", err)
	}
	master, err := hdkeychain.NewMaster(seed, &chaincfg.MainNetParams)
	if err != nil {
		return nil, fmt.Errorf("wallet: master key: %w", err)
	}
	return fromMaster(master)
}

// FromXprv accepts a BIP-32 extended private key either at the master (depth 0) or at the
// account level m/44'/60'/0'/0 (depth 4, child 0) — the private side of WALLET_XPUB.
func FromXprv(xprv string) (*Wallet, error) {
	key, err := hdkeychain.NewKeyFromString(strings.TrimSpace(xprv))
	if err != nil {
		return nil, fmt.Errorf("wallet: invalid xprv: %w", err)
	}
	if !key.IsPrivate() {
		return nil, errors.New("wallet: an extended public key was given where the xprv is needed")
	}
	switch {
	case key.Depth() == 0:
		return fromMaster(key)
	case key.Depth() == uint8(len(accountPath)) && key.ChildIndex() == accountPath[len(accountPath)-1]:
		return &Wallet{account: key}, nil
	default:
		return nil, fmt.Errorf("wallet: xprv at depth %d (child %d): want the master key or m/44'/60'/0'/0", key.Depth(), key.ChildIndex())
	}
}

func fromMaster(master *hdkeychain.ExtendedKey) (*Wallet, error) {
	k := master
	for _, i := range accountPath {
		var err error
		if k, err = k.Derive(i); err != nil {
			return nil, fmt.Errorf("wallet: derive account: %w", err)
		}
	}
	return &Wallet{account: k}, nil
}

// Key returns the private key of deposit address index.
func (w *Wallet) Key(index uint32) (*ecdsa.PrivateKey, error) {
	if index >= hdkeychain.HardenedKeyStart {
		return nil, fmt.Errorf("wallet: index %d out of range", index)
	}
	w.mu.Lock()
	child, err := w.account.Derive(index)
	w.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("wallet: derive %d: %w", index, err)
	}
	priv, err := child.ECPrivKey()
	if err != nil {
		return nil, fmt.Errorf("wallet: key %d: %w", index, err)
	}
	return priv.ToECDSA(), nil
}

// Address returns deposit address index.
func (w *Wallet) Address(index uint32) (common.Address, error) {
	k, err := w.Key(index)
	if err != nil {
		return common.Address{}, err
	}
	return crypto.PubkeyToAddress(k.PublicKey), nil
}

// Xpub is the account-level extended public key, the api's WALLET_XPUB for this wallet.
func (w *Wallet) Xpub() (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	pub, err := w.account.Neuter()
	if err != nil {
		return "", err
	}
	return pub.String(), nil
}

// String, Format and LogValue keep the key out of every print and log line.
func (w *Wallet) String() string             { return "wallet(redacted)" }
func (w *Wallet) Format(f fmt.State, _ rune) { fmt.Fprint(f, w.String()) }
func (w *Wallet) LogValue() slog.Value       { return slog.StringValue(w.String()) }
