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
	if len(files) != 6 {
		t.Fatalf("want 6 consumer files, got %v", files)
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
