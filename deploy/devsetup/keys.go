package main

import (
	"crypto/ecdsa"
	"fmt"
	"strings"

	"github.com/btcsuite/btcd/btcutil/hdkeychain"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/tyler-smith/go-bip39"
)

// DevMnemonic is the well-known BIP-39 test mnemonic. Its keys are PUBLIC: they are for the dev
// chain only and never hold anything of value.
const DevMnemonic = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"

// Key is a private key and its address.
type Key struct {
	Private *ecdsa.PrivateKey
	Address common.Address
}

// Hex is the private key as hex without 0x, the format of GAS_TANK_PRIVATE_KEY.
func (k Key) Hex() string { return common.Bytes2Hex(crypto.FromECDSA(k.Private)) }

// DevKeys are the dev chain's keys, all below m/44'/60'/1'/0 of one mnemonic: account 1, so
// none of them is a deposit address (the api and sweeper derive those below m/44'/60'/0'/0).
type DevKeys struct {
	// Deployer (m/44'/60'/1'/0/0) deploys the token with its first transaction, so the token is
	// at TokenAddress whatever else happened on the chain.
	Deployer Key
	// Treasury (m/44'/60'/1'/0/1) is where the sweeper sends the funds (chains.compose.yaml).
	Treasury Key
	// GasTank (m/44'/60'/1'/0/2) is the default GAS_TANK_PRIVATE_KEY of the compose stack.
	GasTank Key
}

// devAccount is m/44'/60'/1'/0 below the master key.
var devAccount = []uint32{hdkeychain.HardenedKeyStart + 44, hdkeychain.HardenedKeyStart + 60, hdkeychain.HardenedKeyStart + 1, 0}

// DeriveDevKeys derives the dev keys from a BIP-39 mnemonic (checksum verified, no passphrase).
func DeriveDevKeys(mnemonic string) (DevKeys, error) {
	seed, err := bip39.NewSeedWithErrorChecking(strings.Join(strings.Fields(mnemonic), " "), "")
	if err != nil {
		return DevKeys{}, fmt.Errorf("invalid mnemonic: %w", err)
	}
	k, err := hdkeychain.NewMaster(seed, &chaincfg.MainNetParams)
	if err != nil {
		return DevKeys{}, err
	}
	for _, i := range devAccount {
		if k, err = k.Derive(i); err != nil {
			return DevKeys{}, err
		}
	}
	child := func(i uint32) (Key, error) {
		c, err := k.Derive(i)
		if err != nil {
			return Key{}, err
		}
		priv, err := c.ECPrivKey()
		if err != nil {
			return Key{}, err
		}
		key := priv.ToECDSA()
		return Key{Private: key, Address: crypto.PubkeyToAddress(key.PublicKey)}, nil
	}
	var keys DevKeys
	for i, dst := range []*Key{&keys.Deployer, &keys.Treasury, &keys.GasTank} {
		if *dst, err = child(uint32(i)); err != nil {
			return DevKeys{}, fmt.Errorf("derive m/44'/60'/1'/0/%d: %w", i, err)
		}
	}
	return keys, nil
}

// TokenAddress is where the deployer's first transaction (nonce 0) creates the token.
func (k DevKeys) TokenAddress() common.Address { return crypto.CreateAddress(k.Deployer.Address, 0) }
