package streams

import (
	"io/fs"
	"strings"
	"testing"
	"time"
)

func TestEveryDefinitionLoads(t *testing.T) {
	for _, name := range []string{Payments, Chain, Webhooks, DLQ} {
		cfg, err := Stream(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Subjects) == 0 || cfg.MaxAge == 0 {
			t.Errorf("%s: subjects %v max_age %v", name, cfg.Subjects, cfg.MaxAge)
		}
	}
	files, _ := fs.Glob(files, "consumers/*.json")
	if len(files) != 7 {
		t.Fatalf("want 7 consumer files, got %v", files)
	}
	for _, f := range files {
		stream, durable, _ := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(f, "consumers/"), ".json"), ".")
		if _, err := Stream(stream); err != nil {
			t.Errorf("%s: unknown stream: %v", f, err)
		}
		if _, err := Consumer(stream, durable); err != nil {
			t.Error(err)
		}
	}
}

func TestContractValues(t *testing.T) {
	p, _ := Stream(Payments)
	if p.MaxAge != 30*24*time.Hour || p.Duplicates != 10*time.Minute {
		t.Errorf("PAYMENTS max_age %v duplicates %v", p.MaxAge, p.Duplicates)
	}
	w, _ := Consumer(Webhooks, "webhook-sender")
	want := []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}
	if len(w.BackOff) != len(want) || w.MaxDeliver != len(want)+1 || w.AckWait != want[0] {
		t.Fatalf("webhook-sender backoff %v max_deliver %d ack_wait %v", w.BackOff, w.MaxDeliver, w.AckWait)
	}
	for i := range want {
		if w.BackOff[i] != want[i] {
			t.Errorf("backoff[%d] = %v, want %v", i, w.BackOff[i], want[i])
		}
	}
	d, _ := Stream(DLQ)
	if d.Subjects[0] != "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.WEBHOOKS.webhook-sender" {
		t.Errorf("DLQ subjects %v", d.Subjects)
	}
}

// Every consumer's ack wait is sized to its heartbeat, not to its longest job (the pull loops
// heartbeat a message every AckWait/3 while it is handled), so a crashed service's messages come
// back within seconds. The webhook-sender's ack wait is its first backoff step.
func TestAckWaitsAreShort(t *testing.T) {
	files, _ := fs.Glob(files, "consumers/*.json")
	for _, f := range files {
		stream, durable, _ := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(f, "consumers/"), ".json"), ".")
		c, err := Consumer(stream, durable)
		if err != nil {
			t.Fatal(err)
		}
		if c.AckWait <= 0 || c.AckWait > 10*time.Second {
			t.Errorf("%s: ack_wait %v, want at most 10s", f, c.AckWait)
		}
	}
}
