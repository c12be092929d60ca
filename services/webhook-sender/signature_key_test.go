package main

import (
	"encoding/base64"
	"strings"
)

func signatureKey(secret string) ([]byte, error) {
	if rest, ok := strings.CutPrefix(secret, "whsec_"); ok {
		return base64.StdEncoding.DecodeString(rest)
	}
	return []byte(secret), nil
}
