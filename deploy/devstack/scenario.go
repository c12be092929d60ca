package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

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
	// restarts services there); the payments it makes (s.payETH) are awaited like the first.
	midFlow func(s *stack) ([]string, error)
	// natsNodes ≥ 3 runs NATS as a JetStream cluster of that many nodes (streams at R3).
	natsNodes int
	// replicas runs further processes of a service (scanner: 2 is a leader and a standby).
	replicas map[string]int
	// await is the webhook types every payment must have received before the run ends
	// (default: payment.swept). Deliveries retried after a fault may arrive after the sweep's.
	await []string
	// crash, when set, names a service that is SIGKILLed and restarted at the moment it is
	// most likely to hold the payments' work (see crashAt): the figure is paid → swept.
	crash string
	// ownPostgres starts a private Postgres cluster even when DATABASE_URL is set (the chaos
	// runs restart it); rpcFaults puts a fault proxy between the services and the chain.
	ownPostgres, rpcFaults, logToFiles bool
	// env is added to every service's environment (later entries win).
	env []string
}

// stack is one running dev stack: its infrastructure, the service processes and the merchant.
type stack struct {
	log       *slog.Logger
	work      string
	env       []string
	bins      map[string]string
	procs     map[string]*exec.Cmd
	apiURL    string
	apiURLs   []string // every api process's, apiURL first
	dbURL     string
	natsNodes []*testkit.NATSProcess
	natsURL   string
	// The demo merchant's key and the paying customer, for payETH.
	merchantKey string
	customer    *chaintest.Account
	chain       *devChain
	treasury    common.Address
	token       common.Address
	tt          *chaintest.TestToken
	rcv         *receiver
	hookURL     string
	// rpcURL is the chain's JSON-RPC as the services reach it: through rpcProxy when the run
	// injects RPC faults.
	rpcURL   string
	rpcProxy *faultProxy
	// pg is the stack's own Postgres cluster (nil with DATABASE_URL), for restarts.
	pg *testkit.PostgresCluster
	// procEnv is a process's environment beyond env (a second api's address).
	procEnv map[string][]string
	// logToFiles writes each process's output to <work>/<process>.log instead of the terminal.
	logToFiles bool
	keepWork   bool
	closers    []func()
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
	// Missing lists "<event type>: <field>: <what>" for every way a webhook broke the event
	// contract of DESIGN.md (event.ContractViolations), the seed's fields included.
	Missing []string
}

func run(ctx context.Context, o options) (*result, error) {
	s, err := bringUp(ctx, o)
	if err != nil {
		return nil, err
	}
	defer s.down()
	return s.demo(ctx, o)
}

// bringUp starts everything the pipeline runs on and the services: NATS, Postgres (migrated),
// the chain with the customer's ETH and token, the demo merchant's receiver, the five services
// and their replicas. s.down stops it all in reverse order; on an error bringUp has already.
func bringUp(ctx context.Context, o options) (s *stack, err error) {
	log := o.log
	work, err := os.MkdirTemp("", "ctrip-devstack-")
	if err != nil {
		return nil, err
	}
	s = &stack{log: log, work: work, bins: map[string]string{}, procs: map[string]*exec.Cmd{}, procEnv: map[string][]string{}, logToFiles: o.logToFiles}
	s.onDown(func() {
		if !s.keepWork {
			os.RemoveAll(work)
		}
	})
	defer func() {
		if err != nil {
			s.down()
		}
	}()

	if err := s.startNATS(o.natsPort, o.natsNodes); err != nil {
		return nil, err
	}
	s.onDown(s.stopNATS)
	stopPG, err := s.startPostgres(o.ownPostgres)
	if err != nil {
		return nil, err
	}
	s.onDown(stopPG)
	if err := postgres.MigrateURL(ctx, s.dbURL, log); err != nil {
		return nil, err
	}
	customer, gasTank := chaintest.NewAccount("devstack customer"), chaintest.NewAccount("devstack gas tank")
	s.treasury = chaintest.NewAccount("devstack treasury").Address
	if s.tt, err = s.setUpChain(ctx, customer, gasTank); err != nil {
		return nil, err
	}
	s.onDown(s.chain.Close)
	s.customer = customer
	s.rpcURL = s.chain.rpcURL
	if o.rpcFaults {
		if s.rpcProxy, err = startFaultProxy(strings.TrimPrefix(s.chain.rpcURL, "http://")); err != nil {
			return nil, err
		}
		s.onDown(s.rpcProxy.Close)
		s.rpcURL = "http://" + s.rpcProxy.Addr()
	}

	s.rcv = &receiver{log: log, events: map[string][]string{}}
	hookURL, stopHooks, err := serveReceiver(s.rcv)
	if err != nil {
		return nil, err
	}
	s.hookURL = hookURL
	s.onDown(func() { stopHooks() })

	if err := s.configureServices(gasTank, o.env); err != nil {
		return nil, err
	}
	if err := s.buildAll(ctx); err != nil {
		return nil, err
	}
	// Registered after NATS, Postgres and the chain, so it runs before them: services stop
	// while what they depend on is still up.
	s.onDown(s.stopAll)
	for _, svc := range services {
		if err := s.start(svc); err != nil {
			return nil, err
		}
	}
	if err := waitHTTP(ctx, s.apiURL+"/v1/payments", 60*time.Second); err != nil {
		return nil, err
	}
	if err := s.startReplicas(ctx, o.replicas); err != nil {
		return nil, err
	}
	return s, nil
}

// onDown registers f to run at s.down, before everything registered earlier.
func (s *stack) onDown(f func()) { s.closers = append(s.closers, f) }

// down stops and removes what bringUp started, last started first.
func (s *stack) down() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// demo is the demo's flow on a stack brought up: a merchant, its endpoint and two payments,
// paid by the customer and awaited until swept (see options for the system tests' hooks).
func (s *stack) demo(ctx context.Context, o options) (*result, error) {
	log, customer, tt, hookURL := s.log, s.customer, s.tt, s.hookURL
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
	s.merchantKey = merchant.APIKey
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
		more, err := o.midFlow(s)
		if err != nil {
			return nil, err
		}
		ids = append(ids, more...)
	}
	await := o.await
	if len(await) == 0 {
		await = []string{"payment.swept"}
	}
	for _, typ := range await {
		if err := s.waitFor(ctx, ids, typ, deadline); err != nil {
			return nil, err
		}
	}

	var err error
	res := &result{Payments: ids, Events: s.rcv.snapshot(), DBURL: s.dbURL, PaidToSwept: map[string]time.Duration{}, Missing: s.rcv.missingFields()}
	for _, id := range ids {
		res.PaidToSwept[id] = s.rcv.arrival(id, "payment.swept").Sub(paidAt)
	}
	if res.ConfirmLatency, err = s.confirmLatency(ctx, ids); err != nil {
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
		fmt.Printf("\nconsole: %s/console/ — sign in with the merchant key %s, or the admin token %s for the operator view\n",
			s.apiURL, s.merchantKey, adminToken)
		log.Info("still running; Ctrl-C to stop", "api", s.apiURL, "console", s.apiURL+"/console/", "merchant_key", s.merchantKey,
			"admin_token", adminToken, "nats", s.natsURL, "database", s.dbURL, "rpc", s.chain.rpcURL)
		<-ctx.Done()
	}
	return res, nil
}

// confirmLatency measures, per payment, from the commit of block (transfer block +
// confirmations − 1) to the time JetStream stored its payments.confirmed.
func (s *stack) confirmLatency(ctx context.Context, ids []string) (map[string]time.Duration, error) {
	db, err := postgres.Open(ctx, s.dbURL)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	nc, js, err := connectJS(s.natsURL)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
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

func (s *stack) waitFor(ctx context.Context, ids []string, typ string, deadline time.Time) error {
	err := poll(ctx, typ, deadline, 200*time.Millisecond, func() (bool, error) { return s.rcv.allHave(ids, typ), nil })
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("%w; webhooks so far: %v", err, s.rcv.snapshot())
	}
	return err
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
	if err := poll(ctx, "-crash "+svc+": its moment", deadline, 10*time.Millisecond, ready); err != nil {
		return err
	}
	s.log.Info("crashing", "service", svc)
	s.kill(svc)
	return s.start(svc)
}
