package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/postgres"
	"github.com/ctrip-pay/pipeline/shared/signature"
)

// A chaos scenario: a sustained stream of payments (ETH and the token; exact, partial — paid in
// two transfers — and over-payments) into a stack of separate processes while faults run, then
// an account of what the merchant and the treasury got (chaosReport). Faults end before the
// stream's drain, which waits until every payment is swept and every event is delivered or
// dead-lettered.
type chaosScenario struct {
	Name string
	// Stack shape.
	NATSNodes int
	Replicas  map[string]int
	// Flap is how the merchant's endpoint misbehaves for the whole run.
	Flap flapping
	// Faults runs while the payments stream (for Stream), and restores what it broke before it
	// returns.
	Faults func(ctx context.Context, c *chaosRun) error
}

// chaosOptions sizes a chaos run.
type chaosOptions struct {
	// Stream is how long payments are made; Every how often.
	Stream, Every time.Duration
	// Drain bounds the wait for every payment and event after the stream.
	Drain time.Duration
}

// chaosRun is one scenario's running stack, merchant and payments.
type chaosRun struct {
	s     *stack
	opts  chaosOptions
	hooks *merchantHooks
	key   string // the merchant's API key
	// faults is what the scenario did, in order, for the report.
	mu       sync.Mutex
	faults   []string
	payments []*chaosPayment
	nonce    uint64 // the customer's next nonce
	payErrs  []string
}

// chaosPayment is one payment the stream made.
type chaosPayment struct {
	ID, Token, Kind string // Kind: exact, partial, over
	Address         common.Address
	Amount          *big.Int // requested, base units
	Paid            *big.Int // sent, base units
	// PaidAt is when the transfer that completed the payment was sent.
	PaidAt time.Time
}

// chaosReport is one scenario's figures; Failures says why it failed (empty: passed).
type chaosReport struct {
	Scenario                          string
	Faults                            []string
	Payments, Events, Webhooks        int
	Duplicates, Lost, DeadLettered    int
	DoubleConfirmations, DoubleSweeps int
	Unswept, FailedRequests, BadSig   int
	P50, P99                          time.Duration
	TreasuryETH, TreasuryToken        *big.Int
	ExpectedTreasuryETH, PaidToken    *big.Int
	Elapsed                           time.Duration
	DeadLetterReasons                 map[string]int // reason → dead letters
	Failures                          []string
}

// chaosEnv is what the services run with in a chaos run, beyond the dev stack's: a short
// delivery timeout (so a timing-out merchant costs seconds) and RPC timeouts short enough for a
// black-holed node to be noticed within the run.
var chaosEnv = []string{"WEBHOOK_TIMEOUT=2s", "SCAN_RPC_TIMEOUT=3s", "CONFIRMER_RPC_TIMEOUT=3s", "SWEEP_RPC_TIMEOUT=3s"}

// runChaos brings a stack up for sc, runs it and returns its report.
func runChaos(ctx context.Context, o options, sc chaosScenario, co chaosOptions) (*chaosReport, error) {
	started := time.Now()
	o.natsNodes, o.replicas = sc.NATSNodes, sc.Replicas
	o.ownPostgres, o.rpcFaults, o.logToFiles = true, true, true
	o.env = append(append([]string(nil), o.env...), chaosEnv...)
	s, err := bringUp(ctx, o)
	if err != nil {
		return nil, err
	}
	defer s.down()
	c := &chaosRun{s: s, opts: co, hooks: newMerchantHooks()}
	c.hooks.setFlapping(sc.Flap)
	if f := sc.Flap; f != (flapping{}) {
		c.note("the merchant answers %.0f%% 503, holds %.0f%% for %v, resets %.0f%% and answers %.0f%% slowly",
			100*f.Fail5xx, 100*f.Timeout, f.Hang, 100*f.Reset, 100*f.Slow)
	}
	hookURL, stopHooks, err := c.hooks.serve()
	if err != nil {
		return nil, err
	}
	defer stopHooks()
	if err := c.setUp(ctx, hookURL); err != nil {
		return nil, err
	}

	streamCtx, stopStream := context.WithTimeout(ctx, co.Stream)
	defer stopStream()
	var wg sync.WaitGroup
	var faultErr error
	if sc.Faults != nil {
		wg.Go(func() { faultErr = sc.Faults(streamCtx, c) })
	}
	streamErr := c.stream(streamCtx)
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if faultErr != nil && !errors.Is(faultErr, context.DeadlineExceeded) {
		return nil, fmt.Errorf("scenario %s: faults: %w", sc.Name, faultErr)
	}
	if streamErr != nil {
		return nil, fmt.Errorf("scenario %s: payments: %w", sc.Name, streamErr)
	}
	c.hooks.setFlapping(flapping{}) // the merchant recovers; what is pending is delivered
	rep, err := c.drain(ctx)
	if err != nil {
		return nil, err
	}
	rep.Scenario, rep.Elapsed = sc.Name, time.Since(started)
	if len(rep.Failures) > 0 {
		s.keepWork = true
		rep.Failures = append(rep.Failures, "service logs kept in "+s.work)
	}
	return rep, nil
}

// note records a fault for the report and the log.
func (c *chaosRun) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.s.log.Info("chaos: " + msg)
	c.mu.Lock()
	c.faults = append(c.faults, msg)
	c.mu.Unlock()
}

// setUp makes the merchant and its endpoint, and reads the customer's nonce.
func (c *chaosRun) setUp(ctx context.Context, hookURL string) error {
	var merchant struct {
		APIKey string `json:"api_key"`
	}
	if err := c.call(ctx, "POST", "/v1/merchants", adminToken, "", map[string]any{"name": "Chaos Shop"}, &merchant); err != nil {
		return err
	}
	c.key = merchant.APIKey
	var ep struct {
		Secret string `json:"secret"`
	}
	if err := c.call(ctx, "POST", "/v1/endpoints", c.key, "", map[string]any{"url": hookURL}, &ep); err != nil {
		return err
	}
	secret, err := signature.ParseSecret(ep.Secret)
	if err != nil {
		return err
	}
	c.hooks.secret = secret
	nonce, err := c.s.chain.backend.Client().PendingNonceAt(ctx, c.s.customer.Address)
	if err != nil {
		return err
	}
	c.nonce = nonce
	return nil
}

// call makes a REST call through the api processes in turn until one answers, for up to a
// minute (an api may be down in the run): connection errors and 5xx are tried again, with the
// same Idempotency-Key, so a payment is created once however often it is asked for.
func (c *chaosRun) call(ctx context.Context, method, path, token, idemKey string, body, out any) error {
	raw, _ := json.Marshal(body)
	deadline := time.Now().Add(time.Minute)
	var last error
	for i := 0; ; i++ {
		base := c.s.apiURLs[i%len(c.s.apiURLs)]
		req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(raw))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		if idemKey != "" {
			req.Header.Set("Idempotency-Key", idemKey)
		}
		cl := http.Client{Timeout: 10 * time.Second}
		resp, err := cl.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return json.Unmarshal(b, out)
			}
			err = fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
			if resp.StatusCode < 500 {
				return err
			}
		}
		last = err
		if time.Now().After(deadline) {
			return last
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// The stream's payments in turn: token, kind, amount in token units.
var chaosMix = []struct{ token, kind, amount string }{
	{"ETH", "exact", "0.05"}, {"USDC", "exact", "12.5"}, {"ETH", "partial", "0.08"},
	{"ETH", "over", "0.02"}, {"USDC", "partial", "7.25"}, {"USDC", "over", "3"},
}

// stream makes a payment every opts.Every until ctx ends; the second transfers of partial
// payments are sent two seconds after the first, even after the stream ends.
func (c *chaosRun) stream(ctx context.Context) error {
	t := time.NewTicker(c.opts.Every)
	defer t.Stop()
	var rest sync.WaitGroup
	defer rest.Wait()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		m := chaosMix[i%len(chaosMix)]
		// Creation and payment outlive the stream's context: a payment asked for is made.
		p, err := c.create(context.WithoutCancel(ctx), i, m.token, m.kind, m.amount)
		if err != nil {
			return err
		}
		switch m.kind {
		case "exact":
			err = c.pay(p, p.Amount, true)
		case "over":
			err = c.pay(p, new(big.Int).Div(new(big.Int).Mul(p.Amount, big.NewInt(3)), big.NewInt(2)), true)
		case "partial":
			first := new(big.Int).Div(new(big.Int).Mul(p.Amount, big.NewInt(2)), big.NewInt(5))
			if err = c.pay(p, first, false); err == nil {
				rest.Go(func() {
					time.Sleep(2 * time.Second)
					if err := c.pay(p, new(big.Int).Sub(p.Amount, first), true); err != nil {
						c.mu.Lock()
						c.payErrs = append(c.payErrs, err.Error())
						c.mu.Unlock()
					}
				})
			}
		}
		if err != nil {
			return err
		}
	}
}

func (c *chaosRun) create(ctx context.Context, i int, token, kind, amount string) (*chaosPayment, error) {
	var p struct {
		ID              string `json:"id"`
		Address         string `json:"address"`
		AmountBaseUnits string `json:"amount_base_units"`
	}
	if err := c.call(ctx, "POST", "/v1/payments", c.key, fmt.Sprintf("chaos-%d", i),
		map[string]any{"chain_id": 1337, "token": token, "amount": amount, "metadata": map[string]any{"kind": kind}}, &p); err != nil {
		return nil, err
	}
	units, ok := new(big.Int).SetString(p.AmountBaseUnits, 10)
	if !ok {
		return nil, fmt.Errorf("payment %s: amount_base_units %q", p.ID, p.AmountBaseUnits)
	}
	cp := &chaosPayment{ID: p.ID, Token: token, Kind: kind, Address: common.HexToAddress(p.Address), Amount: units, Paid: new(big.Int)}
	c.mu.Lock()
	c.payments = append(c.payments, cp)
	c.mu.Unlock()
	return cp, nil
}

// pay sends units of p's token from the customer to p's address, with the customer's nonce
// tracked here (the simulated pool's pending nonce lags right after a send).
func (c *chaosRun) pay(p *chaosPayment, units *big.Int, completes bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ch := c.s.chain
	ch.mu.Lock()
	defer ch.mu.Unlock()
	c.mu.Lock()
	nonce := c.nonce
	c.mu.Unlock()
	var err error
	if p.Token == "ETH" {
		_, err = ch.sendETHAt(ctx, c.s.customer.Key, nonce, p.Address, units)
	} else {
		var opts *bindOpts
		if opts, err = ch.transactor(ctx, c.s.customer.Key); err != nil {
			return err
		}
		opts.Nonce = new(big.Int).SetUint64(nonce)
		_, err = c.s.tt.Transfer(opts, p.Address, units)
	}
	if err != nil {
		return fmt.Errorf("pay %s %s %s (nonce %d): %w", p.ID, units, p.Token, nonce, err)
	}
	c.mu.Lock()
	c.nonce = nonce + 1
	p.Paid.Add(p.Paid, units)
	if completes {
		p.PaidAt = time.Now()
	}
	c.mu.Unlock()
	return nil
}

// merchantEvent is one event of the merchant's on PAYMENTS.
type merchantEvent struct {
	ID, Type, PaymentID string
}

// drain waits, for up to opts.Drain, until every payment is swept and every merchant event on
// PAYMENTS was delivered or dead-lettered, then accounts for the run.
func (c *chaosRun) drain(ctx context.Context) (*chaosReport, error) {
	db, err := postgres.Open(ctx, c.s.dbURL)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	nc, js, err := connectJS(c.s.natsURL)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	var rep *chaosReport
	err = poll(ctx, "every payment swept and every event delivered or dead-lettered", time.Now().Add(c.opts.Drain), time.Second,
		func() (bool, error) {
			var err error
			if rep, err = c.account(ctx, db, js); err != nil {
				// A stream read can fail while a node is still catching up; the next poll reads again.
				c.s.log.Warn("chaos: accounting", "error", err)
				return false, nil
			}
			return rep.Unswept == 0 && rep.Lost == 0, nil
		})
	if err != nil && ctx.Err() != nil {
		return nil, err
	}
	if rep == nil {
		return nil, err
	}
	// Room for a late duplicate, a second confirmation or a second sweep to show up.
	time.Sleep(3 * time.Second)
	if rep, err = c.accountSettled(ctx, db, js); err != nil {
		return nil, err
	}
	if err := c.selfCheck(ctx, db, js, rep); err != nil {
		return nil, err
	}
	c.mu.Lock()
	rep.Faults = slices.Clone(c.faults)
	rep.Failures = append(rep.Failures, c.payErrs...)
	c.mu.Unlock()
	return rep, nil
}

// selfCheck proves the accounting sees a loss: with one delivered event struck from the
// merchant's record, it must count one event lost more and fail.
func (c *chaosRun) selfCheck(ctx context.Context, db *sqlx.DB, js jetstream.JetStream, rep *chaosReport) error {
	c.hooks.mu.Lock()
	var struck string
	var h *hook
	for id, k := range c.hooks.got {
		struck, h = id, k
		break
	}
	delete(c.hooks.got, struck)
	c.hooks.mu.Unlock()
	if h == nil {
		rep.Failures = append(rep.Failures, "self-check: the merchant received nothing")
		return nil
	}
	check, err := c.accountSettled(ctx, db, js)
	c.hooks.mu.Lock()
	c.hooks.got[struck] = h
	c.hooks.mu.Unlock()
	if err != nil {
		return err
	}
	if check.Lost != rep.Lost+1 || len(check.Failures) == 0 {
		rep.Failures = append(rep.Failures, fmt.Sprintf("self-check: with event %s struck from the merchant's record the run counts %d lost (before: %d)",
			struck, check.Lost, rep.Lost))
	}
	return nil
}

// accountSettled is account, tried again for up to 30 s while the stack cannot answer: right
// after a cluster node is back, the JetStream API may have no responders until the meta leader
// is elected again.
func (c *chaosRun) accountSettled(ctx context.Context, db *sqlx.DB, js jetstream.JetStream) (*chaosReport, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		rep, err := c.account(ctx, db, js)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return rep, err
		}
		c.s.log.Warn("chaos: accounting", "error", err)
		time.Sleep(time.Second)
	}
}

// account counts what the run produced, and what failed.
func (c *chaosRun) account(ctx context.Context, db *sqlx.DB, js jetstream.JetStream) (*chaosReport, error) {
	c.mu.Lock()
	payments := slices.Clone(c.payments)
	c.mu.Unlock()
	ours := map[string]*chaosPayment{}
	for _, p := range payments {
		ours[p.ID] = p
	}
	events, err := merchantEvents(ctx, js, ours)
	if err != nil {
		return nil, err
	}
	got, badSig, failedReqs, _ := c.hooks.snapshot()
	var deadLettered []struct {
		EventID string `db:"event_id"`
		Reason  string `db:"reason"`
	}
	if err := db.SelectContext(ctx, &deadLettered, `SELECT event_id, reason FROM webhook_dead_letters WHERE event_id IS NOT NULL`); err != nil {
		return nil, err
	}
	dead := map[string]bool{}
	reasons := map[string]int{}
	for _, d := range deadLettered {
		dead[d.EventID] = true
		reasons[d.Reason]++
	}
	r := &chaosReport{Payments: len(payments), Events: len(events), BadSig: badSig, FailedRequests: failedReqs, DeadLetterReasons: reasons}
	var lost []string
	byType := map[string]map[string]int{} // payment → type → distinct events
	for _, e := range events {
		if byType[e.PaymentID] == nil {
			byType[e.PaymentID] = map[string]int{}
		}
		byType[e.PaymentID][e.Type]++
		h, ok := got[e.ID]
		switch {
		case ok:
			r.Webhooks++
			r.Duplicates += h.OK - 1
		case dead[e.ID]:
			r.DeadLettered++
		default:
			r.Lost++
			lost = append(lost, e.Type+" "+e.ID+" ("+e.PaymentID+")")
		}
	}
	var rows []struct {
		ID       string `db:"id"`
		Status   string `db:"status"`
		Received string `db:"received_base_units"`
		Swept    string `db:"swept_base_units"`
	}
	if err := db.SelectContext(ctx, &rows, `SELECT id, status, received_base_units::text, swept_base_units::text FROM payments WHERE id = ANY($1)`,
		pqArray(payments)); err != nil {
		return nil, err
	}
	status := map[string]string{}
	for _, row := range rows {
		status[row.ID] = row.Status
	}
	var unswept []string
	for _, p := range payments {
		if status[p.ID] != "swept" {
			r.Unswept++
			unswept = append(unswept, p.ID+" "+p.Kind+" "+p.Token+" "+orNone(status[p.ID]))
		}
	}
	// Double confirmations: two payments.confirmed events, or two changes into confirmed.
	var confirmations []struct {
		PaymentID string `db:"payment_id"`
		N         int    `db:"n"`
	}
	if err := db.SelectContext(ctx, &confirmations, `SELECT payment_id, count(*) AS n FROM payment_status_changes
		WHERE to_status = 'confirmed' AND payment_id = ANY($1) GROUP BY payment_id HAVING count(*) > 1`, pqArray(payments)); err != nil {
		return nil, err
	}
	doubleConf := map[string]bool{}
	for _, x := range confirmations {
		doubleConf[x.PaymentID] = true
	}
	for id, ts := range byType {
		if ts["payment.confirmed"] > 1 || ts["payment.swept"] > 1 {
			doubleConf[id] = true
		}
	}
	r.DoubleConfirmations = len(doubleConf)
	// Double sweeps: more than one mined value transfer out of a deposit address, in the
	// database or on the chain (the address's nonce counts every transaction it sent).
	var sweeps []struct {
		PaymentID string `db:"payment_id"`
		Kind      string `db:"kind"`
		Value     string `db:"value_base_units"`
	}
	if err := db.SelectContext(ctx, &sweeps, `SELECT payment_id, kind, value_base_units::text FROM sweeps
		WHERE status = 'mined' AND kind IN ('native', 'token') AND payment_id = ANY($1)`, pqArray(payments)); err != nil {
		return nil, err
	}
	mined := map[string]int{}
	r.ExpectedTreasuryETH, r.PaidToken = new(big.Int), new(big.Int)
	for _, sw := range sweeps {
		mined[sw.PaymentID]++
		if sw.Kind == "native" {
			v, _ := new(big.Int).SetString(sw.Value, 10)
			r.ExpectedTreasuryETH.Add(r.ExpectedTreasuryETH, v)
		}
	}
	client := c.s.chain.backend.Client()
	for _, p := range payments {
		nonce, err := client.NonceAt(ctx, p.Address, nil)
		if err != nil {
			return nil, err
		}
		if mined[p.ID] > 1 || nonce > 1 {
			r.DoubleSweeps++
		}
		if p.Token != "ETH" {
			r.PaidToken.Add(r.PaidToken, p.Paid)
		}
	}
	if r.TreasuryETH, err = client.BalanceAt(ctx, c.s.treasury, nil); err != nil {
		return nil, err
	}
	if r.TreasuryToken, err = c.s.tt.BalanceOf(nil, c.s.treasury); err != nil {
		return nil, err
	}
	// Latency: the transfer that completed a payment → its payment.confirmed webhook.
	var lat []time.Duration
	for _, e := range events {
		if h, ok := got[e.ID]; ok && e.Type == "payment.confirmed" && !ours[e.PaymentID].PaidAt.IsZero() {
			lat = append(lat, h.First.Sub(ours[e.PaymentID].PaidAt))
		}
	}
	r.P50, r.P99 = percentile(lat, 50), percentile(lat, 99)

	if r.Lost > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%d events neither delivered nor dead-lettered: %s", r.Lost, firstFew(lost)))
	}
	if r.Unswept > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%d payments not swept: %s", r.Unswept, firstFew(unswept)))
	}
	if r.DoubleConfirmations > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%d payments confirmed or swept twice", r.DoubleConfirmations))
	}
	if r.DoubleSweeps > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%d payments swept by more than one transaction", r.DoubleSweeps))
	}
	if r.BadSig > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%d webhooks with a bad signature", r.BadSig))
	}
	if r.TreasuryETH.Cmp(r.ExpectedTreasuryETH) != 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("treasury holds %s wei, the mined native sweeps moved %s", r.TreasuryETH, r.ExpectedTreasuryETH))
	}
	if r.TreasuryToken.Cmp(r.PaidToken) != 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("treasury holds %s token base units, customers paid %s", r.TreasuryToken, r.PaidToken))
	}
	for _, want := range []string{"payment.created", "payment.confirmed", "payment.swept"} {
		for _, p := range payments {
			if byType[p.ID][want] == 0 && status[p.ID] == "swept" {
				r.Failures = append(r.Failures, fmt.Sprintf("payment %s is swept but no %s event is on PAYMENTS", p.ID, want))
				r.Lost++
			}
		}
	}
	return r, nil
}

// merchantEvents reads every merchant-visible event of the payments in ours from PAYMENTS.
func merchantEvents(ctx context.Context, js jetstream.JetStream, ours map[string]*chaosPayment) ([]merchantEvent, error) {
	visible := map[string]bool{"payments.created": true, "payments.detected": true, "payments.confirmed": true,
		"payments.expired": true, "payments.reorged": true, "payments.swept": true}
	stream, err := js.Stream(ctx, "PAYMENTS")
	if err != nil {
		return nil, err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, err
	}
	if info.State.Msgs == 0 {
		return nil, nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []merchantEvent
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, err
		}
		n := 0
		var last uint64
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			last = meta.Sequence.Stream
			if !visible[m.Subject()] {
				continue
			}
			var env struct {
				ID   string `json:"id"`
				Type string `json:"type"`
				Data struct {
					PaymentID string `json:"payment_id"`
				} `json:"data"`
			}
			if json.Unmarshal(m.Data(), &env) != nil || ours[env.Data.PaymentID] == nil || seen[env.ID] {
				continue
			}
			seen[env.ID] = true
			out = append(out, merchantEvent{ID: env.ID, Type: env.Type, PaymentID: env.Data.PaymentID})
		}
		if err := batch.Error(); err != nil {
			return nil, err
		}
		if last >= info.State.LastSeq || n == 0 {
			if last < info.State.LastSeq {
				return nil, fmt.Errorf("PAYMENTS read to %d of %d", last, info.State.LastSeq)
			}
			return out, nil
		}
	}
}

func pqArray(ps []*chaosPayment) any {
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	return pq.Array(ids)
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func firstFew(xs []string) string {
	sort.Strings(xs)
	if len(xs) > 5 {
		return strings.Join(xs[:5], "; ") + fmt.Sprintf("; and %d more", len(xs)-5)
	}
	return strings.Join(xs, "; ")
}
