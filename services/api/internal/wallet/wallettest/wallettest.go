// Package wallettest derives the keys of a test mnemonic independently of package wallet (BIP-39
// seed → master → hardened path, with private keys), so that tests can check the addresses the
// api derives from the account's xpub against what the sweeper will control.
package wallettest

import (
	"crypto/pbkdf2"
	"crypto/sha512"
	"testing"

	"github.com/btcsuite/btcd/btcutil/hdkeychain"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// Account is m/44'/60'/0'/0 of testkit.Mnemonic (no passphrase), with its private key.
func Account(tb testing.TB) *hdkeychain.ExtendedKey {
	tb.Helper()
	seed, err := pbkdf2.Key(sha512.New, testkit.Mnemonic, []byte("mnemonic"), 2048, 64)
	if err != nil {
		tb.Fatal(err)
	}
	k, err := hdkeychain.NewMaster(seed, &chaincfg.MainNetParams)
	if err != nil {
		tb.Fatal(err)
	}
	for _, i := range []uint32{hdkeychain.HardenedKeyStart + 44, hdkeychain.HardenedKeyStart + 60, hdkeychain.HardenedKeyStart, 0} {
		if k, err = k.Derive(i); err != nil {
			tb.Fatal(err)
		}
	}
	return k
}

// XPub is Account's extended public key: the api's WALLET_XPUB.
func XPub(tb testing.TB) string {
	tb.Helper()
	pub, err := Account(tb).Neuter()
	if err != nil {
		tb.Fatal(err)
	}
	return pub.String()
}

// PrivateAddress is the address of the private child key at index: what the sweeper controls.
func PrivateAddress(tb testing.TB, acct *hdkeychain.ExtendedKey, index int64) common.Address {
	tb.Helper()
	child, err := acct.Derive(uint32(index))
	if err != nil {
		tb.Fatal(err)
	}
	ec, err := child.ECPrivKey()
	if err != nil {
		tb.Fatal(err)
	}
	return crypto.PubkeyToAddress(ec.ToECDSA().PublicKey)
}
