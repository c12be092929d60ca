package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/signature"
)

// receiver is the demo merchant: it verifies the Standard Webhooks signature with the endpoint's
// secret and records each payment's event types in arrival order (first delivery only).
type receiver struct {
	log *slog.Logger

	mu     sync.Mutex
	secret signature.Secret
	seen   map[string]bool
	events map[string][]string
	at     map[string]time.Time // "<payment id> <event type>" → first arrival
	// missing: "<event type>: <field>: <what is wrong>" for each way a webhook broke the event
	// contract (event.ContractViolations).
	missing []string
}

// serveReceiver serves r on a free local port until stop; url is the endpoint to register.
func serveReceiver(r *receiver) (url string, stop func() error, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String() + "/webhooks", srv.Close, nil
}

func (r *receiver) setSecret(secret string) error {
	s, err := signature.ParseSecret(secret)
	if err != nil {
		return fmt.Errorf("endpoint secret: %w", err)
	}
	r.mu.Lock()
	r.secret = s
	r.mu.Unlock()
	return nil
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	secret := r.secret
	r.mu.Unlock()
	if err := signature.Verify(secret, id, req.Header.Get("webhook-timestamp"), req.Header.Get("webhook-signature"),
		body, time.Now(), signature.DefaultTolerance); err != nil {
		r.log.Warn("merchant rejected a webhook with a bad signature", "webhook_id", id, "error", err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var env struct {
		Type string `json:"type"`
		Data struct {
			PaymentID string `json:"payment_id"`
			Status    string `json:"status"`
			Received  string `json:"amount_received_base_units"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &env)
	var missing []string
	for _, v := range event.ContractViolations(body) {
		missing = append(missing, env.Type+": "+v)
	}
	r.mu.Lock()
	r.missing = append(r.missing, missing...)
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	if !r.seen[id] {
		r.seen[id] = true
		r.events[env.Data.PaymentID] = append(r.events[env.Data.PaymentID], env.Type)
		if r.at == nil {
			r.at = map[string]time.Time{}
		}
		r.at[env.Data.PaymentID+" "+env.Type] = time.Now()
	}
	r.mu.Unlock()
	r.log.Info("merchant received webhook", "type", env.Type, "payment_id", env.Data.PaymentID, "status", env.Data.Status,
		"received_base_units", env.Data.Received, "webhook_id", id)
	w.WriteHeader(http.StatusOK)
}

func (r *receiver) allHave(ids []string, typ string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		found := false
		for _, t := range r.events[id] {
			found = found || t == typ
		}
		if !found {
			return false
		}
	}
	return true
}

// arrival is when a payment's event type first arrived (zero if it did not).
func (r *receiver) arrival(paymentID, typ string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.at[paymentID+" "+typ]
}

func (r *receiver) missingFields() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.missing...)
}

func (r *receiver) snapshot() map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]string{}
	for k, v := range r.events {
		out[k] = append([]string(nil), v...)
	}
	return out
}
