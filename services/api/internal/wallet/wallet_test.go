package wallet

import (
	"crypto/pbkdf2"
	"crypto/sha512"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcutil/hdkeychain"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/ethereum/go-ethereum/crypto"
)

// The BIP-39 test mnemonic every wallet documents; its first Ethereum account on
// m/44'/60'/0'/0/0 is the published 0x9858EfFD232B4033E47d90003D41EC34EcaEda94.
const testMnemonic = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"

// accountKey derives m/44'/60'/0'/0 from the mnemonic (BIP-39 seed without passphrase).
func accountKey(t *testing.T) *hdkeychain.ExtendedKey {
	t.Helper()
	seed, err := pbkdf2.Key(sha512.New, testMnemonic, []byte("mnemonic"), 2048, 64)
	if err != nil {
		t.Fatal(err)
	}
	k, err := hdkeychain.NewMaster(seed, &chaincfg.MainNetParams)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []uint32{hdkeychain.HardenedKeyStart + 44, hdkeychain.HardenedKeyStart + 60, hdkeychain.HardenedKeyStart, 0} {
		if k, err = k.Derive(i); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

func TestPublishedVector(t *testing.T) {
	pub, err := accountKey(t).Neuter()
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseXPub(pub.String())
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range map[int64]string{
		0: "0x9858EfFD232B4033E47d90003D41EC34EcaEda94",
		1: "0x6Fac4D18c912343BF86fa7049364Dd4E424Ab9C0",
	} {
		got, err := d.Address(i)
		if err != nil {
			t.Fatal(err)
		}
		if got.Hex() != want {
			t.Errorf("address %d = %s, want %s", i, got.Hex(), want)
		}
	}
}

// The public derivation the api does must give the address of the private key the sweeper
// derives for the same index.
func TestPublicDerivationMatchesPrivate(t *testing.T) {
	priv := accountKey(t)
	pub, err := priv.Neuter()
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseXPub(pub.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int64{0, 2, 7, 1000, MaxIndex} {
		child, err := priv.Derive(uint32(i))
		if err != nil {
			t.Fatal(err)
		}
		ec, err := child.ECPrivKey()
		if err != nil {
			t.Fatal(err)
		}
		want := crypto.PubkeyToAddress(ec.ToECDSA().PublicKey)
		got, err := d.Address(i)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("index %d: public derivation %s, private %s", i, got.Hex(), want.Hex())
		}
	}
}

func TestParseXPubRefuses(t *testing.T) {
	acct := accountKey(t)
	pub, _ := acct.Neuter()
	parent, _ := accountKey(t).Derive(5) // depth 5
	parentPub, _ := parent.Neuter()
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "required"},
		{"garbage", "not-a-key", "not a BIP-32"},
		{"bad checksum", pub.String()[:len(pub.String())-1] + "x", "not a BIP-32"},
		{"private key", acct.String(), "private key"},
		{"wrong depth", parentPub.String(), "depth 5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseXPub(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseXPub error = %v, want it to mention %q", err, tc.want)
			}
			if tc.in != "" && strings.Contains(err.Error(), tc.in) {
				t.Fatalf("error repeats the key: %v", err)
			}
		})
	}
	d, err := ParseXPub(pub.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int64{-1, MaxIndex + 1} {
		if _, err := d.Address(i); err == nil {
			t.Errorf("Address(%d): no error for an index outside the non-hardened range", i)
		}
	}
}
