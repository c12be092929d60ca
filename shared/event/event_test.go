package event

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestNewIDSortsByTimeAndIsUnique(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for i := 0; i < 1000; i++ {
		id := NewID("evt")
		if !strings.HasPrefix(id, "evt_") || len(id) != 30 {
			t.Fatalf("bad id %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
		if i%100 == 0 {
			time.Sleep(2 * time.Millisecond)
			if prev != "" && id[:14] < prev[:14] {
				t.Fatalf("ids not time ordered: %s after %s", id, prev)
			}
			prev = id
		}
	}
}

func TestEnvelopeRoundTripAndValidate(t *testing.T) {
	env, err := New("payment.confirmed", Payment{PaymentID: "pay_1", AmountBaseUnits: "123456789012345678901234567890"})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(env)
	var back Envelope
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if err := back.Validate(); err != nil {
		t.Fatal(err)
	}
	var p Payment
	if err := json.Unmarshal(back.Data, &p); err != nil || p.AmountBaseUnits != "123456789012345678901234567890" {
		t.Fatalf("data lost: %v %+v", err, p)
	}
	for name, bad := range map[string]Envelope{
		"no id":   {Type: "t", Timestamp: time.Now(), Data: []byte(`{}`)},
		"no type": {ID: "x", Timestamp: time.Now(), Data: []byte(`{}`)},
		"no time": {ID: "x", Type: "t", Data: []byte(`{}`)},
		"array":   {ID: "x", Type: "t", Timestamp: time.Now(), Data: []byte(`[]`)},
	} {
		if bad.Validate() == nil {
			t.Errorf("%s: expected error", name)
		}
	}
	if got := TypeForSubject("payments.sweep_failed"); got != "payment.sweep_failed" {
		t.Fatalf("TypeForSubject = %q", got)
	}
}

// TestIDForIsStable: the same key and time give the same id, another key or a later time
// another one, and ids keep NewID's form and order by time.
func TestIDForIsStable(t *testing.T) {
	at := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	a, b := IDFor("evt", at, "detected.1.0xab.-1.0xcd"), IDFor("evt", at, "detected.1.0xab.-1.0xcd")
	other, later := IDFor("evt", at, "detected.1.0xab.-1.0xce"), IDFor("evt", at.Add(time.Millisecond), "detected.1.0xab.-1.0xcd")
	switch {
	case a != b:
		t.Fatalf("%s and %s for the same key and time", a, b)
	case a == other || a == later:
		t.Fatalf("%s repeats for another key (%s) or time (%s)", a, other, later)
	case !strings.HasPrefix(a, "evt_") || len(a) != 30:
		t.Fatalf("bad id %q", a)
	case later[:14] < a[:14]:
		t.Fatalf("ids not time ordered: %s after %s", later, a)
	}
}
