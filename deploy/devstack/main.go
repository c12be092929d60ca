// Command devstack runs the pipeline on one machine with nothing installed but Go and the
// local Postgres binaries: an embedded nats-server with JetStream, a private Postgres cluster
// (or DATABASE_URL), the services built from this checkout, and a demo merchant receiver that
// verifies every webhook's signature. It publishes a few payment events, shows them delivered
// (some after a deliberate failure, to show the retry schedule), prints a summary and exits.
//
//	go run ./deploy/devstack            # from the repository root; -keep to leave it running
package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/postgres"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

func main() {
	keep := flag.Bool("keep", false, "keep running after the demo until Ctrl-C")
	payments := flag.Int("payments", 3, "demo payments to publish")
	natsPort := flag.Int("nats-port", 14222, "port of the embedded nats-server")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *keep, *payments, *natsPort); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, keep bool, payments, natsPort int) error {
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelInfo}))
	work, err := os.MkdirTemp("", "ctrip-devstack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	// NATS ≥ 2.10 with JetStream, embedded.
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: natsPort, JetStream: true, StoreDir: filepath.Join(work, "nats"), NoSigs: true, NoLog: true})
	if err != nil {
		return err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return fmt.Errorf("nats-server did not start on port %d (in use?)", natsPort)
	}
	defer ns.Shutdown()
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	log.Info("nats-server (embedded, JetStream) ready", "url", natsURL)

	// Postgres: DATABASE_URL, or a private throwaway cluster.
	dbURL := os.Getenv("DATABASE_URL")
	if dbURL == "" {
		url, stopPG, err := testkit.StartPostgres()
		if err != nil {
			return fmt.Errorf("starting a private Postgres (set DATABASE_URL to use yours): %w", err)
		}
		defer stopPG()
		dbURL = url
		log.Info("private Postgres cluster ready", "url", dbURL)
	}
	db, err := postgres.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := postgres.Migrate(ctx, db, log); err != nil {
		return err
	}

	// The demo merchant: verifies Standard Webhooks signatures, fails the first attempt of every
	// second payment's events to show a retry.
	secretKey := make([]byte, 24)
	rand.Read(secretKey)
	secret := "whsec_" + base64.StdEncoding.EncodeToString(secretKey)
	rcv := &receiver{key: secretKey, log: log, attempts: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: rcv, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	hookURL := "http://" + ln.Addr().String() + "/webhooks"
	log.Info("demo merchant receiver listening", "url", hookURL)

	// The services, built from this checkout.
	bin := filepath.Join(work, "bin")
	env := append(os.Environ(),
		"NATS_URL="+natsURL, "DATABASE_URL="+dbURL, "LOG_LEVEL=warn", "OPS_ADDR=127.0.0.1:0",
		"WEBHOOK_URL="+hookURL, "WEBHOOK_SECRET="+secret, "WEBHOOK_ALLOW_HTTP=true", "WEBHOOK_ALLOW_PRIVATE_NETWORKS=true",
		"WEBHOOK_BACKOFF=2s,5s,10s")
	for _, svc := range []string{"webhook-sender"} {
		out := filepath.Join(bin, svc)
		log.Info("building", "service", svc)
		if b, err := exec.CommandContext(ctx, "go", "build", "-o", out, "./services/"+svc).CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s (run from the repository root): %v\n%s", svc, err, b)
		}
		cmd := exec.Command(out)
		cmd.Env, cmd.Stdout, cmd.Stderr = append(env, "OTEL_SERVICE_NAME="+svc), os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			return err
		}
		defer func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}()
	}

	nc, js, err := natsbus.Connect(ctx, natsURL, "devstack", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := waitForConsumer(ctx, js, "PAYMENTS", "webhook-fanout"); err != nil {
		return err
	}

	var sent []string
	for i := range payments {
		pay := event.NewID("pay")
		for _, subject := range []string{event.SubjectCreated, event.SubjectDetected, event.SubjectConfirmed, event.SubjectSwept} {
			id, err := publish(ctx, js, subject, pay, i%2 == 1)
			if err != nil {
				return err
			}
			sent = append(sent, id)
		}
	}
	log.Info("published demo events", "events", len(sent), "payments", payments)

	deadline := time.Now().Add(45 * time.Second)
	for rcv.delivered(sent) < len(sent) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(200 * time.Millisecond)
	}
	if err := summary(ctx, db, sent, rcv); err != nil {
		return err
	}
	if keep {
		log.Info("still running; Ctrl-C to stop", "nats", natsURL, "database", dbURL, "receiver", hookURL)
		<-ctx.Done()
	}
	return nil
}

func waitForConsumer(ctx context.Context, js jetstream.JetStream, stream, durable string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := js.Consumer(ctx, stream, durable); err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("consumer %s on %s never appeared: is the sender running?", durable, stream)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func publish(ctx context.Context, js jetstream.JetStream, subject, paymentID string, failFirst bool) (string, error) {
	status := strings.TrimPrefix(subject, "payments.")
	env, err := event.New(event.TypeForSubject(subject), map[string]any{
		"payment_id": paymentID, "merchant_id": "m_demo", "status": status, "chain_id": 1337, "chain": "devnet",
		"address": "0x0000000000000000000000000000000000001337", "token": "ETH", "token_contract": nil,
		"amount": "12.5", "amount_base_units": "12500000000000000000", "amount_received_base_units": "12500000000000000000",
		"metadata": map[string]any{"order": "demo", "fail_first_attempt": failFirst},
	})
	if err != nil {
		return "", err
	}
	body, _ := json.Marshal(env)
	m := nats.NewMsg(subject)
	m.Data = body
	m.Header.Set(event.HeaderMsgID, paymentID+"."+status)
	m.Header.Set(event.HeaderEventType, env.Type)
	if _, err := js.PublishMsg(ctx, m); err != nil {
		return "", fmt.Errorf("publish %s: %w", subject, err)
	}
	return env.ID, nil
}

type receiver struct {
	key []byte
	log *slog.Logger

	mu       sync.Mutex
	attempts map[string]int
	ok       map[string]bool
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	id, ts := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp")
	mac := hmac.New(sha256.New, r.key)
	fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	valid := false
	for _, sig := range strings.Fields(req.Header.Get("webhook-signature")) {
		valid = valid || hmac.Equal([]byte(sig), []byte(want))
	}
	var env struct {
		Type string `json:"type"`
		Data struct {
			PaymentID string         `json:"payment_id"`
			Metadata  map[string]any `json:"metadata"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &env)
	r.mu.Lock()
	r.attempts[id]++
	n := r.attempts[id]
	failFirst, _ := env.Data.Metadata["fail_first_attempt"].(bool)
	fail := !valid || (failFirst && n == 1)
	if !fail {
		if r.ok == nil {
			r.ok = map[string]bool{}
		}
		r.ok[id] = true
	}
	r.mu.Unlock()
	code := http.StatusOK
	if fail {
		code = http.StatusServiceUnavailable
	}
	r.log.Info("merchant received webhook", "type", env.Type, "webhook_id", id, "payment_id", env.Data.PaymentID,
		"attempt", n, "signature_valid", valid, "answered", code)
	w.WriteHeader(code)
}

func (r *receiver) delivered(ids []string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, id := range ids {
		if r.ok[id] {
			n++
		}
	}
	return n
}

func summary(ctx context.Context, db *sqlx.DB, sent []string, rcv *receiver) error {
	var rows []struct {
		Attempts  int `db:"attempts"`
		Delivered int `db:"delivered"`
		Failed    int `db:"failed"`
	}
	if err := db.SelectContext(ctx, &rows, `SELECT count(*) AS attempts, count(*) FILTER (WHERE delivered) AS delivered,
		count(*) FILTER (WHERE NOT delivered) AS failed FROM webhook_attempts`); err != nil {
		return err
	}
	fmt.Printf("\n== demo summary ==\nevents published: %d\nevents delivered and signature-verified: %d\nattempts recorded in Postgres: %d (%d delivered, %d failed then retried)\n",
		len(sent), rcv.delivered(sent), rows[0].Attempts, rows[0].Delivered, rows[0].Failed)
	if rcv.delivered(sent) != len(sent) {
		return fmt.Errorf("only %d of %d events delivered", rcv.delivered(sent), len(sent))
	}
	return nil
}
