package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcutil/hdkeychain"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/tyler-smith/go-bip39"

	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// devXpub is the account xpub (m/44'/60'/0'/0) of the abandon mnemonic (testkit.Mnemonic): the
// api's WALLET_XPUB default in deploy/docker-compose.yml, beside the sweeper's WALLET_MNEMONIC
// default, that mnemonic.
const devXpub = "xpub6EF8jXqFeFEW5bwMU7RpQtHkzE4KJxcqJtvkCjJumzW8CPpacXkb92ek4WzLQXjL93HycJwTPUAcuNxCqFPKKU5m5Z2Vq4nCyh5CyPeBFFr"

// xpubRun calls the subcommand with args, env (the whole environment) and stdin.
func xpubRun(args []string, env map[string]string, stdin string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = xpubCommand(args, func(k string) string { return env[k] }, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestXpubOfTheDevMnemonic(t *testing.T) {
	master, err := hdkeychain.NewMaster(bip39.NewSeed(testkit.Mnemonic, ""), &chaincfg.MainNetParams)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		args  []string
		env   map[string]string
		stdin string
	}{
		"WALLET_MNEMONIC":   {env: map[string]string{"WALLET_MNEMONIC": testkit.Mnemonic}},
		"WALLET_XPRV":       {env: map[string]string{"WALLET_XPRV": master.String()}},
		"quoted argument":   {args: []string{testkit.Mnemonic}},
		"words as args":     {args: strings.Fields(testkit.Mnemonic)},
		"xprv argument":     {args: []string{master.String()}},
		"stdin":             {args: []string{"-"}, stdin: testkit.Mnemonic + "\n"},
		"argument over env": {args: []string{testkit.Mnemonic}, env: map[string]string{"WALLET_MNEMONIC": "not a mnemonic at all"}},
	} {
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := xpubRun(c.args, c.env, c.stdin)
			if code != 0 || stdout != devXpub+"\n" || stderr != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and %s", code, stdout, stderr, devXpub)
			}
		})
	}
}

// The compose stack's api and sweeper defaults are the same wallet: WALLET_XPUB is the xpub of
// WALLET_MNEMONIC.
func TestComposeDefaultsAreOneWallet(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	compose := string(raw)
	for _, want := range []string{
		"WALLET_XPUB: ${WALLET_XPUB:-" + devXpub + "}",
		"WALLET_MNEMONIC: ${WALLET_MNEMONIC-" + testkit.Mnemonic + "}",
	} {
		if !strings.Contains(compose, want) {
			t.Errorf("deploy/docker-compose.yml has no %q", want)
		}
	}
}

func TestXpubRefusesBadInput(t *testing.T) {
	bad := "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon"
	for name, c := range map[string]struct {
		args     []string
		env      map[string]string
		code     int
		contains string
	}{
		"bad checksum":   {env: map[string]string{"WALLET_MNEMONIC": bad}, code: 1, contains: "WALLET_MNEMONIC: wallet: invalid mnemonic"},
		"bad argument":   {args: strings.Fields(bad), code: 1, contains: "the argument: wallet: invalid mnemonic"},
		"xpub for xprv":  {args: []string{devXpub}, code: 1, contains: "an extended public key was given"},
		"not a key":      {env: map[string]string{"WALLET_XPRV": "xprvnonsense"}, code: 1, contains: "WALLET_XPRV: wallet: invalid xprv"},
		"both variables": {env: map[string]string{"WALLET_MNEMONIC": testkit.Mnemonic, "WALLET_XPRV": "xprv"}, code: 2, contains: "not both"},
		"nothing":        {code: 2, contains: "no key"},
		"empty stdin":    {args: []string{"-"}, code: 2, contains: "standard input is empty"},
		"blank argument": {args: []string{"  "}, code: 2, contains: "the argument is empty"},
		"help":           {args: []string{"-h"}, code: 0},
	} {
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := xpubRun(c.args, c.env, "")
			if code != c.code {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", code, c.code, stdout, stderr)
			}
			if code == 0 {
				if !strings.Contains(stdout, "usage: sweeper xpub") {
					t.Errorf("help printed %q", stdout)
				}
				return
			}
			if stdout != "" {
				t.Errorf("printed %q on stdout on failure", stdout)
			}
			if !strings.Contains(stderr, c.contains) {
				t.Errorf("stderr %q does not say %q", stderr, c.contains)
			}
			// A typo'd phrase may be one word from the real one: never echo it.
			if strings.Contains(stderr, "abandon abandon") {
				t.Errorf("stderr quotes the mnemonic: %q", stderr)
			}
		})
	}
}

// The hook in main: the real binary entry point ("sweeper xpub", as the image runs it) prints
// the xpub, and exits non-zero on a bad mnemonic, without reading any other configuration.
func TestXpubSubcommandOfTheBinary(t *testing.T) {
	if os.Getenv("SWEEPER_XPUB_HELPER") == "1" {
		os.Args = append([]string{"sweeper", "xpub"}, strings.Fields(os.Getenv("SWEEPER_XPUB_ARGS"))...)
		main()
		t.Fatal("main returned after sweeper xpub")
	}
	run := func(mnemonic string) (int, string, string) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestXpubSubcommandOfTheBinary$", "-test.count=1")
		// No NATS_URL, DATABASE_URL or CHAINS_FILE: the subcommand needs none.
		cmd.Env = []string{"SWEEPER_XPUB_HELPER=1", "WALLET_MNEMONIC=" + mnemonic, "PATH=" + os.Getenv("PATH")}
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return 0, out.String(), errOut.String()
		case errors.As(err, &exit):
			return exit.ExitCode(), out.String(), errOut.String()
		default:
			t.Fatal(err)
			return 0, "", ""
		}
	}
	if code, stdout, stderr := run(testkit.Mnemonic); code != 0 || stdout != devXpub+"\n" {
		t.Errorf("sweeper xpub: exit %d, stdout %q, stderr %q; want 0 and %s", code, stdout, stderr, devXpub)
	}
	code, stdout, stderr := run("abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "sweeper xpub: WALLET_MNEMONIC: wallet: invalid mnemonic") {
		t.Errorf("bad mnemonic: exit %d, stdout %q, stderr %q; want exit 1 naming WALLET_MNEMONIC", code, stdout, stderr)
	}
}
