package wallet

import (
	"strings"
	"testing"

	"github.com/ctrip-pay/pipeline/services/api/internal/wallet/wallettest"
)

func TestPublishedVector(t *testing.T) {
	pub, err := wallettest.Account(t).Neuter()
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
	priv := wallettest.Account(t)
	pub, err := priv.Neuter()
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseXPub(pub.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int64{0, 2, 7, 1000, MaxIndex} {
		want := wallettest.PrivateAddress(t, priv, i)
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
	acct := wallettest.Account(t)
	pub, _ := acct.Neuter()
	parent, _ := wallettest.Account(t).Derive(5) // depth 5
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
