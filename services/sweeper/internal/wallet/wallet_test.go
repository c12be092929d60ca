package wallet

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/btcsuite/btcd/btcutil/hdkeychain"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/tyler-smith/go-bip39"

	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// Known Ethereum addresses of the abandon mnemonic at m/44'/60'/0'/0/i (MetaMask, Ledger and
// ethers.js all show these).
var abandonAddresses = []string{
	"0x9858EfFD232B4033E47d90003D41EC34EcaEda94",
	"0x6Fac4D18c912343BF86fa7049364Dd4E424Ab9C0",
	"0xb6716976A3ebe8D39aCEB04372f22Ff8e6802D7A",
}

func TestMnemonicDerivesTheKnownAddresses(t *testing.T) {
	w, err := FromMnemonic(testkit.Mnemonic)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range abandonAddresses {
		got, err := w.Address(uint32(i))
		if err != nil {
			t.Fatal(err)
		}
		if got != common.HexToAddress(want) {
			t.Errorf("m/44'/60'/0'/0/%d = %s, want %s", i, got.Hex(), want)
		}
	}
	// Extra spaces and line breaks are the same phrase.
	spaced, err := FromMnemonic("  " + strings.ReplaceAll(testkit.Mnemonic, " ", " \n ") + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := spaced.Address(0); a != common.HexToAddress(abandonAddresses[0]) {
		t.Errorf("spaced mnemonic derived %s", a.Hex())
	}
}

func TestXprvAtMasterOrAccountLevelDerivesTheSameAddresses(t *testing.T) {
	master, err := hdkeychain.NewMaster(bip39.NewSeed(testkit.Mnemonic, ""), &chaincfg.MainNetParams)
	if err != nil {
		t.Fatal(err)
	}
	fromPhrase, err := FromMnemonic(testkit.Mnemonic)
	if err != nil {
		t.Fatal(err)
	}
	for name, xprv := range map[string]string{
		"master":  master.String(),
		"account": fromPhrase.account.String(),
	} {
		t.Run(name, func(t *testing.T) {
			w, err := FromXprv(xprv)
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range abandonAddresses {
				if got, _ := w.Address(uint32(i)); got != common.HexToAddress(want) {
					t.Errorf("index %d = %s, want %s", i, got.Hex(), want)
				}
			}
		})
	}
}

// The api derives addresses from the account xpub by public (non-hardened) derivation; the
// private keys here must match those addresses.
func TestKeysMatchTheXpubTheAPIDerivesFrom(t *testing.T) {
	w, err := FromMnemonic(testkit.Mnemonic)
	if err != nil {
		t.Fatal(err)
	}
	xpub, err := w.Xpub()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := hdkeychain.NewKeyFromString(xpub)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []uint32{0, 1, 7, 1000, 1 << 30} {
		child, err := pub.Derive(i)
		if err != nil {
			t.Fatal(err)
		}
		ecpub, err := child.ECPubKey()
		if err != nil {
			t.Fatal(err)
		}
		want := crypto.PubkeyToAddress(*ecpub.ToECDSA())
		key, err := w.Key(i)
		if err != nil {
			t.Fatal(err)
		}
		if got := crypto.PubkeyToAddress(key.PublicKey); got != want {
			t.Errorf("index %d: key address %s, xpub address %s", i, got.Hex(), want.Hex())
		}
	}
}

func TestRefusesBadSecrets(t *testing.T) {
	fromPhrase, _ := FromMnemonic(testkit.Mnemonic)
	purpose, _ := fromPhrase.account.Neuter()
	master, _ := hdkeychain.NewMaster(bip39.NewSeed(testkit.Mnemonic, ""), &chaincfg.MainNetParams)
	depth1, _ := master.Derive(hdkeychain.HardenedKeyStart + 44)
	for name, tc := range map[string]struct {
		mnemonic, xprv string
	}{
		"bad checksum":   {mnemonic: strings.Replace(testkit.Mnemonic, "about", "abandon", 1)},
		"unknown word":   {mnemonic: strings.Replace(testkit.Mnemonic, "about", "aboutt", 1)},
		"too few words":  {mnemonic: "abandon abandon about"},
		"garbage xprv":   {xprv: "xprv-not-a-key"},
		"xpub not xprv":  {xprv: purpose.String()},
		"wrong depth":    {xprv: depth1.String()},
		"empty mnemonic": {mnemonic: " "},
	} {
		t.Run(name, func(t *testing.T) {
			var err error
			if tc.xprv != "" {
				_, err = FromXprv(tc.xprv)
			} else {
				_, err = FromMnemonic(tc.mnemonic)
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, secret := range []string{tc.mnemonic, tc.xprv} {
				if len(secret) > 20 && strings.Contains(err.Error(), secret) {
					t.Errorf("error leaks the secret: %v", err)
				}
			}
		})
	}
	if _, err := fromPhrase.Key(hdkeychain.HardenedKeyStart); err == nil {
		t.Error("hardened index accepted")
	}
}

// Sweeps derive keys concurrently (run with -race).
func TestConcurrentDerivation(t *testing.T) {
	w, err := FromMnemonic(testkit.Mnemonic)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			i := uint32(g % len(abandonAddresses))
			if got, err := w.Address(i); err != nil || got != common.HexToAddress(abandonAddresses[i]) {
				t.Errorf("index %d: %s %v", i, got.Hex(), err)
			}
		})
	}
	wg.Wait()
}

func TestWalletNeverPrintsItsKey(t *testing.T) {
	w, _ := FromMnemonic(testkit.Mnemonic)
	xprv := w.account.String()
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "wallet", w)
	for _, s := range []string{fmt.Sprint(w), fmt.Sprintf("%+v %#v %s %v", w, w, w, w), buf.String()} {
		if strings.Contains(s, xprv[:20]) || !strings.Contains(s, "redacted") {
			t.Errorf("printed %q", s)
		}
	}
}
