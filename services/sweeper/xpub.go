package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ctrip-pay/pipeline/services/sweeper/internal/wallet"
)

// xpubUsage is printed by "sweeper xpub -h" and after a usage error.
const xpubUsage = `usage: sweeper xpub [MNEMONIC... | XPRV | -]

Prints the account xpub (m/44'/60'/0'/0) of a wallet: the api's WALLET_XPUB for a sweeper that
has this WALLET_MNEMONIC or WALLET_XPRV. The key comes from, in this order:
  arguments    a mnemonic (quoted, or its words as separate arguments) or an xprv
  -            the first line of standard input (keeps the key out of shell history)
  environment  WALLET_MNEMONIC or WALLET_XPRV (exactly one), as the sweeper reads them
Only the public key is printed; the private key is never written anywhere.
`

// isXpubCommand reports whether the binary was started as "sweeper xpub ...".
func isXpubCommand() bool { return len(os.Args) > 1 && os.Args[1] == "xpub" }

// runXpubCommand runs "sweeper xpub" with the process's arguments and environment and exits.
func runXpubCommand() {
	os.Exit(xpubCommand(os.Args[2:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

// xpubCommand is "sweeper xpub": it prints the account xpub of the wallet given by args, stdin
// ("-") or the environment and returns the exit code: 0 printed, 1 the key is unusable, 2 usage.
// No message quotes the key.
func xpubCommand(args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "sweeper xpub: "+format+"\n", a...)
		if code == 2 {
			fmt.Fprint(stderr, xpubUsage)
		}
		return code
	}
	if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprint(stdout, xpubUsage)
		return 0
	}

	var source, key string
	switch {
	case len(args) == 1 && args[0] == "-":
		source = "standard input"
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && err != io.EOF {
			return fail(1, "read standard input: %v", err)
		}
		key = line
	case len(args) > 0:
		source = "the argument"
		key = strings.Join(args, " ")
	default:
		mnemonic, xprv := getenv("WALLET_MNEMONIC"), getenv("WALLET_XPRV")
		switch {
		case mnemonic != "" && xprv != "":
			return fail(2, "set WALLET_MNEMONIC or WALLET_XPRV, not both")
		case mnemonic != "":
			source, key = "WALLET_MNEMONIC", mnemonic
		case xprv != "":
			source, key = "WALLET_XPRV", xprv
		default:
			return fail(2, "no key: give a mnemonic or xprv as the argument, - for standard input, or set WALLET_MNEMONIC or WALLET_XPRV")
		}
	}
	if strings.TrimSpace(key) == "" {
		return fail(2, "%s is empty", source)
	}

	w, err := walletFrom(key)
	if err != nil {
		// The wallet's errors never contain the key (wallet.FromMnemonic, FromXprv).
		return fail(1, "%s: %v", source, err)
	}
	xpub, err := w.Xpub()
	if err != nil {
		return fail(1, "%s: %v", source, err)
	}
	fmt.Fprintln(stdout, xpub)
	return 0
}

// walletFrom reads a single word as an extended key (xprv) and several as a BIP-39 mnemonic,
// which has 12 words or more.
func walletFrom(key string) (*wallet.Wallet, error) {
	if words := strings.Fields(key); len(words) == 1 {
		return wallet.FromXprv(words[0])
	}
	return wallet.FromMnemonic(key)
}
