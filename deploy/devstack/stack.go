package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/postgres"
	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
)

type options struct {
	keep     bool
	natsPort int
	timeout  time.Duration
	log      *slog.Logger
	// midFlow, when set, runs once both payments are detected (the system test kills and
	// restarts services there).
	midFlow func(s *stack) error
	// crash, when set, names a service that is SIGKILLed and restarted at the moment it is
	// most likely to hold the payments' work (see crashPoint): the figure is paid → swept.
	crash string
}

// Services in start order.
var services = []string{"webhook-sender", "api", "scanner", "confirmer", "sweeper"}

type stack struct {
	log      *slog.Logger
	work     string
	env      []string
	bins     map[string]string
	procs    map[string]*exec.Cmd
	apiURL   string
	dbURL    string
	nats     *testkit.NATSProcess
	chain    *devChain
	treasury common.Address
	token    common.Address
	rcv      *receiver
}

// result is what a run proved, for the system test.
type result struct {
	Payments []string
	Events   map[string][]string // payment id → webhook event types, in arrival order
	Treasury struct{ ETH, Token *big.Int }
	DBURL    string
	// From the commit of the block that completed a payment's confirmations to its
	// payments.confirmed being stored on PAYMENTS.
	ConfirmLatency map[string]time.Duration
	// From the customer's payment to the merchant's payment.swept webhook.
	PaidToSwept map[string]time.Duration
	// Missing lists "<event type>: <field>" for every webhook whose data lacks a field the
	// contract requires of every event (DESIGN.md: the seed's fields).
	Missing []string
}

func run(ctx context.Context, o options) (*result, error) {
	log := o.log
	work, err := os.MkdirTemp("", "ctrip-devstack-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	s := &stack{log: log, work: work, bins: map[string]string{}, procs: map[string]*exec.Cmd{}}

	// nats-server as a process of its own, the pinned release built from the workspace's module,
	// as a deployment runs it (and outside the race-instrumented test binary).
	s.nats, err = testkit.StartNATSProcess(o.natsPort, filepath.Join(work, "nats"), filepath.Join(work, "nats-server.log"))
	if err != nil {
		return nil, fmt.Errorf("nats-server on port %d (in use? try -nats-port): %w", o.natsPort, err)
	}
	defer s.nats.Shutdown()
	natsURL := s.nats.URL()
	log.Info("nats-server (JetStream) ready", "url", natsURL, "version", testkit.NATSServerVersion)

	s.dbURL = os.Getenv("DATABASE_URL")
	if s.dbURL == "" {
		url, stopPG, err := testkit.StartPostgres()
		if err != nil {
			return nil, fmt.Errorf("starting a private Postgres (set DATABASE_URL to use yours): %w", err)
		}
		defer stopPG()
		s.dbURL = url
		log.Info("private Postgres cluster ready", "url", s.dbURL)
	}
	if err := postgres.MigrateURL(ctx, s.dbURL, log); err != nil {
		return nil, err
	}

	// The chain: a customer with ETH, a gas tank for token sweeps, a 6-decimal token.
	customer, gasTank := chaintest.NewAccount("devstack customer"), chaintest.NewAccount("devstack gas tank")
	s.treasury = chaintest.NewAccount("devstack treasury").Address
	eth := new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)
	s.chain, err = startChain(types.GenesisAlloc{
		customer.Address: {Balance: new(big.Int).Mul(big.NewInt(1000), eth)},
		gasTank.Address:  {Balance: new(big.Int).Mul(big.NewInt(100), eth)},
	}, time.Second)
	if err != nil {
		return nil, err
	}
	defer s.chain.Close()
	token, tt, err := s.chain.deployToken(ctx, customer.Key, "USDC", 6)
	if err != nil {
		return nil, fmt.Errorf("deploy token: %w", err)
	}
	s.token = token
	tx, err := s.chain.tokenCall(ctx, customer.Key, func(o2 *bindOpts) (*types.Transaction, error) {
		return tt.Mint(o2, customer.Address, big.NewInt(1_000_000_000_000))
	})
	if err != nil {
		return nil, err
	}
	if _, err := s.chain.waitMined(ctx, tx); err != nil {
		return nil, err
	}
	log.Info("simulated chain ready", "rpc_url", s.chain.rpcURL, "chain_id", 1337, "block_interval", "1s", "token", token.Hex())

	chainsFile := filepath.Join(work, "chains.yaml")
	if err := os.WriteFile(chainsFile, []byte(fmt.Sprintf(`chains:
  - id: 1337
    name: devnet
    rpc_url: %s
    confirmations: 3
    native: {symbol: ETH, decimals: 18}
    treasury: "%s"
    tokens:
      - {symbol: USDC, contract: "%s", decimals: 6}
`, s.chain.rpcURL, s.treasury.Hex(), token.Hex())), 0o600); err != nil {
		return nil, err
	}
	xpub, err := accountXPub(devMnemonic)
	if err != nil {
		return nil, err
	}

	s.rcv = &receiver{log: log, events: map[string][]string{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hookSrv := &http.Server{Handler: s.rcv, ReadHeaderTimeout: 5 * time.Second}
	go hookSrv.Serve(ln)
	defer hookSrv.Close()
	hookURL := "http://" + ln.Addr().String() + "/webhooks"

	apiPort, err := testkit.FreePort()
	if err != nil {
		return nil, err
	}
	apiAddr := fmt.Sprintf("127.0.0.1:%d", apiPort)
	s.apiURL = "http://" + apiAddr
	const adminToken = "devstack-admin-token-not-secret"
	s.env = append(os.Environ(),
		"NATS_URL="+natsURL, "DATABASE_URL="+s.dbURL, "LOG_LEVEL=warn", "OPS_ADDR=127.0.0.1:0",
		"CHAINS_FILE="+chainsFile, "API_ADDR="+apiAddr, "ADMIN_TOKEN="+adminToken, "WALLET_XPUB="+xpub,
		"WALLET_MNEMONIC="+devMnemonic, "GAS_TANK_PRIVATE_KEY="+common.Bytes2Hex(crypto.FromECDSA(gasTank.Key)),
		"WEBHOOK_ALLOW_HTTP=true", "WEBHOOK_ALLOW_PRIVATE_NETWORKS=true", "WEBHOOK_BACKOFF=1s,2s,5s,10s",
		"SCAN_POLL_INTERVAL=250ms", "SCAN_START_BLOCK=0", "CONFIRMER_EXPIRY_INTERVAL=1s", "SWEEP_POLL_INTERVAL=250ms",
		"OUTBOX_INTERVAL=100ms")

	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	for _, svc := range services {
		out := filepath.Join(work, "bin", svc)
		log.Info("building", "service", svc)
		build := exec.CommandContext(ctx, "go", "build", "-o", out, "./services/"+svc)
		build.Dir = root
		if b, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %v\n%s", svc, err, b)
		}
		s.bins[svc] = out
	}
	// Deferred after NATS, Postgres and the chain, so it runs before them: services stop while
	// what they depend on is still up.
	defer s.stopAll()
	for _, svc := range services {
		if err := s.start(svc); err != nil {
			return nil, err
		}
	}
	if err := waitHTTP(ctx, s.apiURL+"/v1/payments", 60*time.Second); err != nil {
		return nil, err
	}

	// A merchant, its endpoint and two payments, through the REST API.
	var merchant struct {
		ID     string `json:"id"`
		APIKey string `json:"api_key"`
	}
	if err := s.call(ctx, "POST", "/v1/merchants", adminToken, map[string]any{"name": "Demo Shop"}, &merchant); err != nil {
		return nil, err
	}
	var ep struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if err := s.call(ctx, "POST", "/v1/endpoints", merchant.APIKey, map[string]any{"url": hookURL}, &ep); err != nil {
		return nil, err
	}
	if err := s.rcv.setSecret(ep.Secret); err != nil {
		return nil, err
	}
	type payment struct {
		ID              string `json:"id"`
		Address         string `json:"address"`
		AmountBaseUnits string `json:"amount_base_units"`
	}
	var ethPay, tokenPay payment
	if err := s.call(ctx, "POST", "/v1/payments", merchant.APIKey, map[string]any{"chain_id": 1337, "token": "ETH", "amount": "12.5",
		"metadata": map[string]any{"order": "A-1001"}}, &ethPay); err != nil {
		return nil, err
	}
	if err := s.call(ctx, "POST", "/v1/payments", merchant.APIKey, map[string]any{"chain_id": 1337, "token": "USDC", "amount": "25.75",
		"metadata": map[string]any{"order": "A-1002"}}, &tokenPay); err != nil {
		return nil, err
	}
	log.Info("payments created", "eth_payment", ethPay.ID, "eth_address", ethPay.Address, "usdc_payment", tokenPay.ID, "usdc_address", tokenPay.Address)

	// The customer pays.
	wei, _ := new(big.Int).SetString(ethPay.AmountBaseUnits, 10)
	if _, err := s.chain.sendETH(ctx, customer.Key, common.HexToAddress(ethPay.Address), wei); err != nil {
		return nil, fmt.Errorf("pay ETH: %w", err)
	}
	units, _ := new(big.Int).SetString(tokenPay.AmountBaseUnits, 10)
	if _, err := s.chain.tokenCall(ctx, customer.Key, func(o2 *bindOpts) (*types.Transaction, error) {
		return tt.Transfer(o2, common.HexToAddress(tokenPay.Address), units)
	}); err != nil {
		return nil, fmt.Errorf("pay USDC: %w", err)
	}
	log.Info("customer paid", "eth", "12.5", "usdc", "25.75")
	paidAt := time.Now()

	ids := []string{ethPay.ID, tokenPay.ID}
	deadline := time.Now().Add(o.timeout)
	if o.crash != "" {
		if err := s.crashAt(ctx, o.crash, ids, deadline); err != nil {
			return nil, err
		}
	}
	if o.midFlow != nil {
		if err := s.waitFor(ctx, ids, "payment.detected", deadline); err != nil {
			return nil, err
		}
		if err := o.midFlow(s); err != nil {
			return nil, err
		}
	}
	if err := s.waitFor(ctx, ids, "payment.swept", deadline); err != nil {
		return nil, err
	}

	res := &result{Payments: ids, Events: s.rcv.snapshot(), DBURL: s.dbURL, PaidToSwept: map[string]time.Duration{}, Missing: s.rcv.missingFields()}
	for _, id := range ids {
		res.PaidToSwept[id] = s.rcv.arrival(id, "payment.swept").Sub(paidAt)
	}
	if res.ConfirmLatency, err = s.confirmLatency(ctx, natsURL, ids); err != nil {
		return nil, err
	}
	client := s.chain.backend.Client()
	if res.Treasury.ETH, err = client.BalanceAt(ctx, s.treasury, nil); err != nil {
		return nil, err
	}
	if res.Treasury.Token, err = tt.BalanceOf(nil, s.treasury); err != nil {
		return nil, err
	}
	fmt.Printf("\n== demo summary ==\n")
	for _, id := range ids {
		fmt.Printf("%s: webhooks %s\n", id, strings.Join(res.Events[id], " → "))
	}
	for _, id := range ids {
		fmt.Printf("%s: confirming block mined → payments.confirmed on PAYMENTS: %v\n", id, res.ConfirmLatency[id].Round(time.Millisecond))
	}
	for _, id := range ids {
		fmt.Printf("%s: paid → payment.swept webhook: %.1fs (crashed: %s)\n", id, res.PaidToSwept[id].Seconds(), orNone(o.crash))
	}
	fmt.Printf("treasury %s on chain: %s wei ETH (12.5 ETH paid, minus the sweep fee), %s USDC base units (25.75 USDC paid)\n",
		s.treasury.Hex(), res.Treasury.ETH, res.Treasury.Token)
	if o.keep {
		log.Info("still running; Ctrl-C to stop", "api", s.apiURL, "admin_token", adminToken, "nats", natsURL, "database", s.dbURL, "rpc", s.chain.rpcURL)
		<-ctx.Done()
	}
	return res, nil
}

// repoRoot is the nearest directory above the working directory holding go.work.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.work above the working directory: run from the repository")
		}
		dir = parent
	}
}

// confirmLatency measures, per payment, from the commit of block (transfer block +
// confirmations − 1) to the time JetStream stored its payments.confirmed.
func (s *stack) confirmLatency(ctx context.Context, natsURL string, ids []string) (map[string]time.Duration, error) {
	db, err := postgres.Open(ctx, s.dbURL)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	stream, err := js.Stream(ctx, "PAYMENTS")
	if err != nil {
		return nil, err
	}
	out := map[string]time.Duration{}
	for _, id := range ids {
		var block uint64
		if err := db.GetContext(ctx, &block, `SELECT max(block_number) FROM payment_transfers WHERE payment_id = $1 AND status = 'confirmed'`, id); err != nil {
			return nil, fmt.Errorf("confirmed transfer of %s: %w", id, err)
		}
		mined := s.chain.minedAt(block + 3 - 1) // confirmations: 3 in the devstack's CHAINS_FILE
		msg, err := stream.GetLastMsgForSubject(ctx, "payments.confirmed")
		if err != nil {
			return nil, err
		}
		// Find this payment's confirmed event by walking back over the subject.
		for seq := msg.Sequence; seq > 0; seq-- {
			m, err := stream.GetMsg(ctx, seq)
			if err != nil || m.Subject != "payments.confirmed" {
				continue
			}
			var env struct {
				Data struct {
					PaymentID string `json:"payment_id"`
				} `json:"data"`
			}
			if json.Unmarshal(m.Data, &env) == nil && env.Data.PaymentID == id {
				if !mined.IsZero() {
					out[id] = m.Time.Sub(mined)
				}
				break
			}
		}
	}
	return out, nil
}

func (s *stack) start(svc string) error {
	cmd := exec.Command(s.bins[svc])
	cmd.Env = append(append([]string(nil), s.env...), "OTEL_SERVICE_NAME="+svc)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", svc, err)
	}
	s.procs[svc] = cmd
	return nil
}

// kill stops a service with SIGKILL: no graceful shutdown, as in a crash.
func (s *stack) kill(svc string) {
	if p := s.procs[svc]; p != nil {
		p.Process.Signal(syscall.SIGKILL)
		p.Wait()
		delete(s.procs, svc)
	}
}

func (s *stack) stopAll() {
	for _, p := range s.procs {
		p.Process.Signal(syscall.SIGTERM)
	}
	for svc, p := range s.procs {
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			// SIGQUIT: the Go runtime prints every goroutine's stack, then exits.
			s.log.Warn("service did not stop in time; dumping its goroutines", "service", svc)
			p.Process.Signal(syscall.SIGQUIT)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				p.Process.Kill()
			}
		}
	}
}

func (s *stack) waitFor(ctx context.Context, ids []string, typ string, deadline time.Time) error {
	for {
		if s.rcv.allHave(ids, typ) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s; webhooks so far: %v", typ, s.rcv.snapshot())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *stack) call(ctx context.Context, method, path, token string, body, out any) error {
	raw, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, method, s.apiURL+path, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	return json.Unmarshal(b, out)
}

func waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not answering after %v", url, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// receiver is the demo merchant: it verifies the Standard Webhooks signature with the endpoint's
// secret and records each payment's event types in arrival order (first delivery only).
type receiver struct {
	log *slog.Logger

	mu     sync.Mutex
	key    []byte
	seen   map[string]bool
	events map[string][]string
	at     map[string]time.Time // "<payment id> <event type>" → first arrival
	// missing: "<event type>: <field>" for each required data field a webhook lacked.
	missing []string
}

// seedFields are the fields DESIGN.md requires in the data of every event.
var seedFields = []string{"payment_id", "status", "address", "amount", "chain", "token_id"}

func (r *receiver) setSecret(secret string) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return fmt.Errorf("endpoint secret: %w", err)
	}
	r.mu.Lock()
	r.key = key
	r.mu.Unlock()
	return nil
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	id, ts := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp")
	r.mu.Lock()
	key := r.key
	r.mu.Unlock()
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	valid := false
	for _, sig := range strings.Fields(req.Header.Get("webhook-signature")) {
		valid = valid || hmac.Equal([]byte(sig), []byte(want))
	}
	if !valid {
		r.log.Warn("merchant rejected a webhook with a bad signature", "webhook_id", id)
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
	var data struct {
		Data map[string]any `json:"data"`
	}
	_ = json.Unmarshal(body, &data)
	var missing []string
	for _, f := range seedFields {
		if v, ok := data.Data[f]; !ok || v == nil || v == "" {
			missing = append(missing, env.Type+": "+f)
		}
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

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// crashAt waits for the moment svc most likely holds the payments' work, then SIGKILLs and
// restarts it at once (a supervisor's restart):
//   - api, scanner: right after the customer paid (the scanner has the payments' blocks ahead);
//   - confirmer: when the first payment.detected webhook arrives (it holds heads and detections);
//   - sweeper: when the first sweep transaction is recorded, i.e. signed and about to be
//     broadcast (the case that used to hold payment.swept for the 120 s ack wait);
//   - webhook-sender: when the first payment reaches swept (its payments.swept is being fanned
//     out or delivered).
func (s *stack) crashAt(ctx context.Context, svc string, ids []string, deadline time.Time) error {
	if _, ok := s.bins[svc]; !ok {
		return fmt.Errorf("-crash %q: not a service (%s)", svc, strings.Join(services, ", "))
	}
	var ready func() (bool, error)
	switch svc {
	case "api", "scanner":
		ready = func() (bool, error) { return true, nil }
	case "confirmer":
		ready = func() (bool, error) {
			for _, id := range ids {
				if !s.rcv.arrival(id, "payment.detected").IsZero() {
					return true, nil
				}
			}
			return false, nil
		}
	case "sweeper", "webhook-sender":
		db, err := postgres.Open(ctx, s.dbURL)
		if err != nil {
			return err
		}
		defer db.Close()
		q := `SELECT count(*) FROM sweeps`
		if svc == "webhook-sender" {
			q = `SELECT count(*) FROM payments WHERE status = 'swept'`
		}
		ready = func() (bool, error) {
			var n int
			err := db.GetContext(ctx, &n, q)
			return n > 0, err
		}
	}
	for {
		ok, err := ready()
		if err != nil {
			return err
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("-crash %s: its moment never came", svc)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	s.log.Info("crashing", "service", svc)
	s.kill(svc)
	return s.start(svc)
}
