package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Types are the merchant-facing event types, one per PAYMENTS subject.
var Types = []string{
	TypeForSubject(SubjectCreated), TypeForSubject(SubjectDetected), TypeForSubject(SubjectConfirmed),
	TypeForSubject(SubjectExpired), TypeForSubject(SubjectReorged), TypeForSubject(SubjectSwept),
	TypeForSubject(SubjectSweepFailed),
}

var (
	baseUnits = regexp.MustCompile(`^(0|[1-9][0-9]*)$`)
	decimal   = regexp.MustCompile(`^(0|[1-9][0-9]*)(\.[0-9]*[1-9])?$`)
	hexAddr   = regexp.MustCompile(`^0x[0-9a-f]{40}$`)
	hexHash   = regexp.MustCompile(`^0x[0-9a-f]{64}$`)
)

// ContractViolations checks an event's JSON — as stored on PAYMENTS and posted to merchants —
// against the envelope of DESIGN.md, field by field, and says what is wrong ("data.token_id:
// missing"); nil when it holds. Every event type must pass it: consumers, merchants and the
// nats CLI rely on these fields.
func ContractViolations(body []byte) []string {
	var out []string
	bad := func(field, format string, args ...any) { out = append(out, field+": "+fmt.Sprintf(format, args...)) }
	var env map[string]json.RawMessage
	if err := json.Unmarshal(body, &env); err != nil {
		return []string{"envelope: " + err.Error()}
	}
	var id, typ, ts string
	str(env, "id", &id, bad)
	str(env, "type", &typ, bad)
	str(env, "timestamp", &ts, bad)
	if id != "" && !strings.HasPrefix(id, "evt_") {
		bad("id", "%q does not start with evt_", id)
	}
	if typ != "" && !slices.Contains(Types, typ) {
		bad("type", "%q is not an event type", typ)
	}
	if ts != "" {
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			bad("timestamp", "%q is not RFC 3339", ts)
		}
	}
	var data map[string]json.RawMessage
	if raw, ok := env["data"]; !ok {
		bad("data", "missing")
		return out
	} else if err := json.Unmarshal(raw, &data); err != nil || data == nil {
		bad("data", "not an object")
		return out
	}
	d := func(f string) string { return "data." + f }
	dbad := func(field, format string, args ...any) { bad(d(field), format, args...) }
	var s string
	for _, f := range []string{"payment_id", "merchant_id", "chain", "token", "token_id", "expires_at"} {
		if str(data, f, &s, dbad) && s == "" {
			dbad(f, "empty")
		}
	}
	if str(data, "status", &s, dbad) && !slices.Contains([]string{StatusPending, StatusDetected, StatusConfirmed, StatusSwept, StatusExpired}, s) {
		dbad("status", "%q is not a payment status", s)
	}
	if str(data, "address", &s, dbad) && !hexAddr.MatchString(s) {
		dbad("address", "%q is not a lower-case 0x address", s)
	}
	if str(data, "amount", &s, dbad) && !decimal.MatchString(s) {
		dbad("amount", "%q is not a decimal amount", s)
	}
	for _, f := range []string{"amount_base_units", "amount_received_base_units"} {
		if str(data, f, &s, dbad) && !baseUnits.MatchString(s) {
			dbad(f, "%q is not an amount in base units", s)
		}
	}
	if raw, ok := data["token_contract"]; !ok {
		dbad("token_contract", "missing (null for the native coin)")
	} else if !bytes.Equal(raw, []byte("null")) {
		if err := json.Unmarshal(raw, &s); err != nil || !hexAddr.MatchString(s) {
			dbad("token_contract", "%s is neither null nor a lower-case 0x address", raw)
		}
	}
	for _, f := range []string{"chain_id", "confirmations"} {
		var n int64
		if raw, ok := data[f]; !ok {
			dbad(f, "missing")
		} else if err := json.Unmarshal(raw, &n); err != nil || n < 0 {
			dbad(f, "%s is not a non-negative integer", raw)
		}
	}
	var txs []map[string]json.RawMessage
	if raw, ok := data["transactions"]; !ok {
		dbad("transactions", "missing")
	} else if err := json.Unmarshal(raw, &txs); err != nil || txs == nil {
		dbad("transactions", "%s is not an array", raw)
	}
	for i, tx := range txs {
		tbad := func(field, format string, args ...any) {
			dbad(fmt.Sprintf("transactions[%d].%s", i, field), format, args...)
		}
		if str(tx, "tx_hash", &s, tbad) && !hexHash.MatchString(s) {
			tbad("tx_hash", "%q is not a lower-case 0x hash", s)
		}
		if str(tx, "value_base_units", &s, tbad) && !baseUnits.MatchString(s) {
			tbad("value_base_units", "%q is not an amount in base units", s)
		}
		var n *int64
		if raw, ok := tx["log_index"]; !ok {
			tbad("log_index", "missing (null for a native transfer)")
		} else if err := json.Unmarshal(raw, &n); err != nil {
			tbad("log_index", "%s is neither null nor an integer", raw)
		}
		if raw, ok := tx["block_number"]; !ok {
			tbad("block_number", "missing")
		} else if err := json.Unmarshal(raw, new(uint64)); err != nil {
			tbad("block_number", "%s is not a block number", raw)
		}
	}
	return out
}

// str reads the string field f of m into s; it reports a missing or non-string field and
// returns whether s holds the field.
func str(m map[string]json.RawMessage, f string, s *string, bad func(field, format string, args ...any)) bool {
	raw, ok := m[f]
	if !ok {
		bad(f, "missing")
		return false
	}
	if err := json.Unmarshal(raw, s); err != nil {
		bad(f, "%s is not a string", raw)
		return false
	}
	return true
}
