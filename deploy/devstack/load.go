package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/periodic"
	"github.com/ctrip-pay/pipeline/shared/postgres"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// Load and scale figures (devstack -load, scripts/load.sh). On a dev stack whose demo payments
// are swept it measures, and prints as a table:
//  1. each service process's resident memory (VmRSS) idle, and its peak sampled every 200 ms
//     under the load of 2 and 3;
//  2. end-to-end latency over LOAD_PAYMENTS ETH payments created through the REST API and paid
//     on chain: paid → payments.confirmed stored on PAYMENTS → the merchant's webhook;
//  3. webhook deliveries/s of bursts of LOAD_DELIVERIES deliveries (LOAD_REPEAT of each) with one webhook-sender
//     process, then with two.
//
// It fails (after printing what it measured) when a figure could not be measured: a payment not
// confirmed, a delivery not made, a process gone.

// loadOptions sizes a load run; each comes from a LOAD_* variable.
type loadOptions struct {
	Payments   int           // LOAD_PAYMENTS: payments of the latency figure
	PayEvery   time.Duration // LOAD_PAY_EVERY: one payment every
	Deliveries int           // LOAD_DELIVERIES: deliveries of each burst
	Repeat     int           // LOAD_REPEAT: bursts with each number of senders (the median is the figure)
	Endpoints  int           // LOAD_ENDPOINTS: the burst merchant's endpoints, deliveries spread over them
	Settle     time.Duration // LOAD_SETTLE: quiet time before idle memory is sampled
	Wait       time.Duration // LOAD_WAIT: how long a phase waits for its payments or deliveries
}

// loadWarmUp deliveries go through the senders before each burst, not measured: a fresh
// process's first requests open its HTTP and Postgres connections.
const loadWarmUp = 200

// rssEvery is how often resident memory is sampled; idleWindow how long an idle figure is
// sampled for (its peak is reported).
const (
	rssEvery   = 200 * time.Millisecond
	idleWindow = 2 * time.Second
)

func loadOptionsFromEnv() (loadOptions, error) {
	lo := loadOptions{Payments: 100, PayEvery: 150 * time.Millisecond, Deliveries: 5000, Repeat: 3, Endpoints: 4,
		Settle: 5 * time.Second, Wait: 3 * time.Minute}
	ints := []struct {
		name string
		to   *int
	}{{"LOAD_PAYMENTS", &lo.Payments}, {"LOAD_DELIVERIES", &lo.Deliveries}, {"LOAD_REPEAT", &lo.Repeat}, {"LOAD_ENDPOINTS", &lo.Endpoints}}
	for _, v := range ints {
		if s := os.Getenv(v.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				return lo, fmt.Errorf("%s=%q: want a positive integer", v.name, s)
			}
			*v.to = n
		}
	}
	durations := []struct {
		name string
		to   *time.Duration
	}{{"LOAD_PAY_EVERY", &lo.PayEvery}, {"LOAD_SETTLE", &lo.Settle}, {"LOAD_WAIT", &lo.Wait}}
	for _, v := range durations {
		if s := os.Getenv(v.name); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				return lo, fmt.Errorf("%s=%q: want a positive duration such as 150ms", v.name, s)
			}
			*v.to = d
		}
	}
	return lo, nil
}

// loadRun is one load run's stack and what it measured.
type loadRun struct {
	s    *stack
	opts loadOptions
	rss  *rssSampler
	// failures are the figures that could not be measured; the run fails if there is any.
	failures []string
}

func (l *loadRun) fail(format string, args ...any) {
	l.failures = append(l.failures, fmt.Sprintf(format, args...))
}

// runLoad brings a dev stack up, runs the demo to its sweeps, measures and prints the figures.
func runLoad(ctx context.Context, o options, out io.Writer) error {
	lo, err := loadOptionsFromEnv()
	if err != nil {
		return err
	}
	// Another dev stack may hold the default port: take a free one unless -nats-port was given.
	explicitPort := false
	flag.Visit(func(f *flag.Flag) { explicitPort = explicitPort || f.Name == "nats-port" })
	if !explicitPort {
		if o.natsPort, err = testkit.FreePort(); err != nil {
			return err
		}
	}
	o.logToFiles, o.keep = true, false
	started := time.Now()
	s, err := bringUp(ctx, o)
	if err != nil {
		return err
	}
	defer s.down()
	if _, err := s.demo(ctx, o); err != nil {
		s.keepWork = true
		return fmt.Errorf("demo: %w (service logs kept in %s)", err, s.work)
	}
	l := &loadRun{s: s, opts: lo, rss: newRSSSampler()}
	for _, svc := range services {
		l.rss.watch(svc, s.procs[svc].Process.Pid)
	}
	sampling, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	go l.rss.run(sampling, rssEvery)

	// 1. Idle: the demo swept, nothing but the stack's own polling for a while.
	if !sleep(ctx, lo.Settle) {
		return ctx.Err()
	}
	l.rss.during("idle", idleWindow)

	// 2. Latency, with the memory peak under it.
	l.rss.setPhase("payments")
	lat, err := l.latency(ctx)
	l.rss.setPhase("")
	if err != nil {
		return l.abort(err)
	}

	// 3. Bursts with one and with two webhook-sender processes.
	bursts, probes, err := l.bursts(ctx)
	if err != nil {
		return l.abort(err)
	}
	if !sleep(ctx, lo.Settle) {
		return ctx.Err()
	}
	l.rss.during("after", idleWindow)
	stopSampling()
	l.failures = append(l.failures, l.rss.errors()...)

	l.print(out, lat, bursts, probes, time.Since(started))
	if len(l.failures) > 0 {
		s.keepWork = true
		return fmt.Errorf("figures not measured: %s (service logs kept in %s)", strings.Join(l.failures, "; "), s.work)
	}
	return nil
}

// abort ends a run that could not go on, keeping the service logs.
func (l *loadRun) abort(err error) error {
	l.s.keepWork = true
	return fmt.Errorf("%w (service logs kept in %s)", err, l.s.work)
}

// ---- 1. Resident memory ----

// rssSampler samples the resident memory of the watched processes and keeps each one's peak
// per phase.
type rssSampler struct {
	mu    sync.Mutex
	pids  map[string]int
	order []string
	phase string                      // "" while not recording
	peaks map[string]map[string]int64 // phase → process → peak VmRSS, kB
	errs  []string
}

func newRSSSampler() *rssSampler {
	return &rssSampler{pids: map[string]int{}, peaks: map[string]map[string]int64{}}
}

func (r *rssSampler) watch(name string, pid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pids[name] = pid
	r.order = append(r.order, name)
}

func (r *rssSampler) setPhase(p string) {
	r.mu.Lock()
	r.phase = p
	r.mu.Unlock()
	if p != "" {
		r.sample()
	}
}

// during records phase for d (sampling at its start and every tick).
func (r *rssSampler) during(phase string, d time.Duration) {
	r.setPhase(phase)
	time.Sleep(d)
	r.sample()
	r.setPhase("")
}

func (r *rssSampler) run(ctx context.Context, every time.Duration) {
	periodic.Every(ctx, every, func(context.Context) bool { r.sample(); return true })
}

func (r *rssSampler) sample() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.phase == "" {
		return
	}
	if r.peaks[r.phase] == nil {
		r.peaks[r.phase] = map[string]int64{}
	}
	for name, pid := range r.pids {
		kb, err := vmRSS(pid)
		if err != nil {
			if msg := fmt.Sprintf("%s (pid %d): %v", name, pid, err); !slices.Contains(r.errs, msg) {
				r.errs = append(r.errs, msg)
			}
			continue
		}
		r.peaks[r.phase][name] = max(r.peaks[r.phase][name], kb)
	}
}

// peak is the process's peak in phase, kB (0: not sampled).
func (r *rssSampler) peak(phase, name string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peaks[phase][name]
}

func (r *rssSampler) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.order)
}

func (r *rssSampler) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs)
}

// vmRSS is the process's resident set size in kB, from /proc/<pid>/status.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("VmRSS line %q", line)
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// ---- 2. End-to-end latency ----

// loadPayment is one payment of the latency figure.
type loadPayment struct {
	ID      string
	Address common.Address
	Wei     *big.Int
	Tx      common.Hash
	PaidAt  time.Time // when the transfer was sent
}

// latencies is the latency figure: each series has one entry per payment.
type latencies struct {
	Payments                        int
	Pace                            time.Duration // first paid → last paid
	Floor, ToStream, ToHook, Stream []time.Duration
	DoubleConfirmed                 int
}

// latency makes the payments, one every PayEvery, waits for their payment.confirmed and
// payment.swept webhooks at the demo merchant and measures them.
func (l *loadRun) latency(ctx context.Context) (*latencies, error) {
	s := l.s
	client := s.chain.backend.Client()
	// The demo's transfers are mined by now (its payments are swept): the pending nonce is
	// settled, and the rest are counted here (the pool's pending nonce lags right after a send).
	nonce, err := client.PendingNonceAt(ctx, s.customer.Address)
	if err != nil {
		return nil, err
	}
	t := time.NewTicker(l.opts.PayEvery)
	defer t.Stop()
	var ps []*loadPayment
	for i := range l.opts.Payments {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-t.C:
			}
		}
		p, err := l.pay(ctx, i, nonce)
		if err != nil {
			return nil, err
		}
		nonce++
		ps = append(ps, p)
	}
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	deadline := time.Now().Add(l.opts.Wait)
	for _, typ := range []string{"payment.confirmed", "payment.swept"} {
		if err := poll(ctx, fmt.Sprintf("%d %s webhooks", len(ids), typ), deadline, 100*time.Millisecond,
			func() (bool, error) { return s.rcv.allHave(ids, typ), nil }); err != nil {
			return nil, err
		}
	}
	onStream, counts, err := confirmedOnStream(ctx, s.natsURL)
	if err != nil {
		return nil, err
	}
	lat := &latencies{Payments: len(ps), Pace: ps[len(ps)-1].PaidAt.Sub(ps[0].PaidAt)}
	for _, p := range ps {
		storedAt, ok := onStream[p.ID]
		if !ok {
			l.fail("payment %s: no payments.confirmed on PAYMENTS", p.ID)
			continue
		}
		if counts[p.ID] > 1 {
			lat.DoubleConfirmed++
		}
		r, err := client.TransactionReceipt(ctx, p.Tx)
		if err != nil {
			return nil, fmt.Errorf("payment %s: receipt of %s: %w", p.ID, p.Tx, err)
		}
		// Confirmed once the block with confirmation 3 (the devstack's CHAINS_FILE) is mined.
		if mined := s.chain.minedAt(r.BlockNumber.Uint64() + 3 - 1); !mined.IsZero() {
			lat.Floor = append(lat.Floor, mined.Sub(p.PaidAt))
		}
		hookAt := s.rcv.arrival(p.ID, "payment.confirmed")
		lat.ToStream = append(lat.ToStream, storedAt.Sub(p.PaidAt))
		lat.ToHook = append(lat.ToHook, hookAt.Sub(p.PaidAt))
		lat.Stream = append(lat.Stream, hookAt.Sub(storedAt))
	}
	return lat, nil
}

// pay creates payment i through the REST API for the demo merchant and pays it in full from
// the customer with nonce.
func (l *loadRun) pay(ctx context.Context, i int, nonce uint64) (*loadPayment, error) {
	s := l.s
	var created struct {
		ID              string `json:"id"`
		Address         string `json:"address"`
		AmountBaseUnits string `json:"amount_base_units"`
	}
	if err := s.call(ctx, "POST", "/v1/payments", s.merchantKey, map[string]any{"chain_id": 1337, "token": "ETH", "amount": "0.01",
		"metadata": map[string]any{"load": i}}, &created); err != nil {
		return nil, err
	}
	wei, ok := new(big.Int).SetString(created.AmountBaseUnits, 10)
	if !ok {
		return nil, fmt.Errorf("payment %s: amount_base_units %q", created.ID, created.AmountBaseUnits)
	}
	p := &loadPayment{ID: created.ID, Address: common.HexToAddress(created.Address), Wei: wei}
	s.chain.mu.Lock()
	defer s.chain.mu.Unlock()
	tx, err := s.chain.sendETHAt(ctx, s.customer.Key, nonce, p.Address, wei)
	if err != nil {
		return nil, fmt.Errorf("pay %s (nonce %d): %w", p.ID, nonce, err)
	}
	p.Tx, p.PaidAt = tx.Hash(), time.Now()
	return p, nil
}

// confirmedOnStream reads every payments.confirmed on PAYMENTS: per payment, when the first was
// stored, and how many there are.
func confirmedOnStream(ctx context.Context, natsURL string) (map[string]time.Time, map[string]int, error) {
	nc, js, err := connectJS(natsURL)
	if err != nil {
		return nil, nil, err
	}
	defer nc.Close()
	stream, err := js.Stream(ctx, "PAYMENTS")
	if err != nil {
		return nil, nil, err
	}
	last, err := stream.GetLastMsgForSubject(ctx, "payments.confirmed")
	if err != nil {
		return nil, nil, err
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"payments.confirmed"}})
	if err != nil {
		return nil, nil, err
	}
	at, counts := map[string]time.Time{}, map[string]int{}
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, nil, err
		}
		var seq uint64
		for m := range batch.Messages() {
			meta, err := m.Metadata()
			if err != nil {
				return nil, nil, err
			}
			seq = meta.Sequence.Stream
			var env struct {
				Data struct {
					PaymentID string `json:"payment_id"`
				} `json:"data"`
			}
			if json.Unmarshal(m.Data(), &env) != nil || env.Data.PaymentID == "" {
				continue
			}
			if counts[env.Data.PaymentID]++; counts[env.Data.PaymentID] == 1 {
				at[env.Data.PaymentID] = meta.Timestamp
			}
		}
		if err := batch.Error(); err != nil {
			return nil, nil, err
		}
		if seq >= last.Sequence {
			return at, counts, nil
		}
		if seq == 0 {
			return nil, nil, fmt.Errorf("PAYMENTS: payments.confirmed read short of sequence %d", last.Sequence)
		}
	}
}

// ---- 3. Deliveries/s ----

// burstReceiver is the burst's merchant: it answers 200 at once, without checking signatures,
// and notes per webhook-id the first arrival and how many requests it took.
type burstReceiver struct {
	mu       sync.Mutex
	first    map[string]time.Time
	requests map[string]int
	unsigned int
}

func (b *burstReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	if r.URL.Path == "/raw" { // the capacity probe's: not a webhook
		w.WriteHeader(http.StatusOK)
		return
	}
	now, id := time.Now(), r.Header.Get("webhook-id")
	b.mu.Lock()
	if _, ok := b.first[id]; !ok {
		b.first[id] = now
	}
	b.requests[id]++
	if r.Header.Get("webhook-signature") == "" {
		b.unsigned++
	}
	b.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// received is how many of ids have arrived, the latest first arrival among them, and the
// requests beyond the first for them (duplicates).
func (b *burstReceiver) received(ids []string) (n int, last time.Time, duplicates int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range ids {
		at, ok := b.first[id]
		if !ok {
			continue
		}
		n++
		duplicates += b.requests[id] - 1
		if at.After(last) {
			last = at
		}
	}
	return n, last, duplicates
}

// burstFigures is one burst's measurement.
type burstFigures struct {
	Replicas, Deliveries                int
	Publish, Took                       time.Duration // publishing alone; first publish → last first arrival
	PerSec                              float64
	Duplicates, Attempts, Delivered     int
	DeadLetters                         int
	MachineBusy, SenderCPU, SenderCores float64 // share of all cores busy; senders' CPU seconds; senders' cores
	// Others is the share of all cores used by processes outside the stack (the processes' time
	// minus the stack's own: this process, the services, nats-server and a private Postgres).
	Others float64
}

// rawProbe is the burst receiver's own capacity: plain POSTs from a Go client in this process.
type rawProbe struct {
	Requests, Concurrency int
	PerSec                float64
}

// burstMerchant is the burst's merchant and its endpoints, all at one burstReceiver.
type burstMerchant struct {
	id        string
	endpoints []string
	url       string
	rcv       *burstReceiver
}

// bursts measures Repeat bursts with the one webhook-sender process, then starts a second and
// measures Repeat more of the same size: out[i] are the bursts with i+1 senders. The receiver's
// own capacity is probed before and after.
func (l *loadRun) bursts(ctx context.Context) (out [][]burstFigures, probes []rawProbe, err error) {
	s := l.s
	m := &burstMerchant{rcv: &burstReceiver{first: map[string]time.Time{}, requests: map[string]int{}}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{Handler: m.rcv, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	m.url = "http://" + ln.Addr().String()
	var merchant struct {
		ID     string `json:"id"`
		APIKey string `json:"api_key"`
	}
	if err := s.call(ctx, "POST", "/v1/merchants", adminToken, map[string]any{"name": "Load Shop"}, &merchant); err != nil {
		return nil, nil, err
	}
	m.id = merchant.ID
	for i := range l.opts.Endpoints {
		var ep struct {
			ID string `json:"id"`
		}
		if err := s.call(ctx, "POST", "/v1/endpoints", merchant.APIKey, map[string]any{"url": fmt.Sprintf("%s/hooks/%d", m.url, i)}, &ep); err != nil {
			return nil, nil, err
		}
		m.endpoints = append(m.endpoints, ep.ID)
	}
	nc, _, err := connectJS(s.natsURL)
	if err != nil {
		return nil, nil, err
	}
	defer nc.Close()
	pub, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, nil, err
	}
	db, err := postgres.Open(ctx, s.dbURL)
	if err != nil {
		return nil, nil, err
	}
	defer db.Close()

	probes = append(probes, probeReceiver(ctx, m.url+"/raw", l.opts.Deliveries, 64))
	senders := []string{"webhook-sender"}
	for replicas := 1; replicas <= 2; replicas++ {
		if replicas == 2 {
			if err := l.startSecondSender(ctx); err != nil {
				return nil, nil, err
			}
			senders = append(senders, "webhook-sender-2")
		}
		if _, err := l.burst(ctx, pub, db, m, loadWarmUp, senders, false); err != nil {
			return nil, nil, fmt.Errorf("warm-up of %d deliveries with %d sender(s): %w", loadWarmUp, replicas, err)
		}
		var runs []burstFigures
		for i := range l.opts.Repeat {
			l.rss.setPhase("bursts")
			f, err := l.burst(ctx, pub, db, m, l.opts.Deliveries, senders, true)
			l.rss.setPhase("")
			if err != nil {
				return nil, nil, fmt.Errorf("burst %d with %d sender(s): %w", i+1, replicas, err)
			}
			f.Replicas = replicas
			runs = append(runs, *f)
		}
		out = append(out, runs)
	}
	probes = append(probes, probeReceiver(ctx, m.url+"/raw", l.opts.Deliveries, 64))
	return out, probes, nil
}

// startSecondSender starts webhook-sender-2 with an ops listener of its own and waits until
// its /readyz answers (its consumers bound), then samples its idle memory.
func (l *loadRun) startSecondSender(ctx context.Context) error {
	const name = "webhook-sender-2"
	port, err := testkit.FreePort()
	if err != nil {
		return err
	}
	ops := fmt.Sprintf("127.0.0.1:%d", port)
	l.s.procEnv[name] = []string{"OPS_ADDR=" + ops}
	if err := l.s.start(name); err != nil {
		return err
	}
	if err := poll(ctx, name+" ready", time.Now().Add(time.Minute), 100*time.Millisecond, func() (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+ops+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	}); err != nil {
		return err
	}
	l.rss.watch(name, l.s.procs[name].Process.Pid)
	if !sleep(ctx, l.opts.Settle) {
		return ctx.Err()
	}
	l.rss.during("idle "+name, idleWindow)
	return nil
}

// loadTestData is the data of the burst's events: what POST /v1/endpoints/{id}/test sends.
type loadTestData struct {
	EndpointID string `json:"endpoint_id"`
	MerchantID string `json:"merchant_id"`
	Message    string `json:"message"`
}

// burst publishes n deliveries straight onto WEBHOOKS, spread over the merchant's endpoints,
// each in the shape the api's endpoint test publishes (an endpoint.test event, Nats-Msg-Id
// <event id>.<endpoint id>; the fan-out's messages differ only in the event), and waits until
// every one has reached the receiver and its attempt row is written.
func (l *loadRun) burst(ctx context.Context, pub jetstream.JetStream, db *sqlx.DB, m *burstMerchant, n int, senders []string, measure bool) (*burstFigures, error) {
	msgs := make([]*nats.Msg, n)
	ids := make([]string, n)
	for i := range msgs {
		ep := m.endpoints[i%len(m.endpoints)]
		env, err := event.New("endpoint.test", loadTestData{EndpointID: ep, MerchantID: m.id, Message: "load burst delivery " + strconv.Itoa(i)})
		if err != nil {
			return nil, err
		}
		body, err := json.Marshal(env)
		if err != nil {
			return nil, err
		}
		msg := nats.NewMsg("webhooks.deliver." + ep)
		msg.Data = body
		msg.Header.Set(event.HeaderMsgID, env.ID+"."+ep)
		msg.Header.Set(event.HeaderEventType, env.Type)
		msgs[i], ids[i] = msg, env.ID
	}
	stackPids := l.stackPids(ctx, db)
	senderPids := make([]int, 0, len(senders))
	for _, name := range senders {
		senderPids = append(senderPids, l.s.procs[name].Process.Pid)
	}
	cpu0, cpuErr0 := machineCPU()
	stack0, sender0 := processTicks(stackPids), processTicks(senderPids)
	start := time.Now()
	acks := make([]jetstream.PubAckFuture, n)
	for i, msg := range msgs {
		ack, err := pub.PublishMsgAsync(msg, jetstream.WithStallWait(time.Minute))
		if err != nil {
			return nil, fmt.Errorf("publish delivery %d: %w", i, err)
		}
		acks[i] = ack
	}
	for i, ack := range acks {
		select {
		case <-ack.Ok():
		case err := <-ack.Err():
			return nil, fmt.Errorf("publish delivery %d: %w", i, err)
		case <-time.After(time.Minute):
			return nil, fmt.Errorf("publish delivery %d: no ack from WEBHOOKS", i)
		}
	}
	published := time.Since(start)
	var got int
	var last time.Time
	err := poll(ctx, fmt.Sprintf("%d deliveries at the receiver", n), time.Now().Add(l.opts.Wait), 5*time.Millisecond, func() (bool, error) {
		got, last, _ = m.rcv.received(ids)
		return got == n, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %d of %d arrived, %d lost", err, got, n, n-got)
	}
	cpu1, cpuErr1 := machineCPU()
	stack1, sender1 := processTicks(stackPids), processTicks(senderPids)
	f := &burstFigures{Deliveries: n, Publish: published, Took: last.Sub(start)}
	f.PerSec = float64(n) / f.Took.Seconds()
	if cpuErr0 == nil && cpuErr1 == nil && cpu1.total > cpu0.total {
		total := float64(cpu1.total - cpu0.total)
		f.MachineBusy = float64(cpu1.busy-cpu0.busy) / total
		f.Others = max(0, float64(cpu1.processes-cpu0.processes)-float64(stack1-stack0)) / total
	}
	f.SenderCPU = float64(sender1-sender0) / userHZ
	f.SenderCores = f.SenderCPU / f.Took.Seconds()
	// Every delivery's attempt row is written before it is acked, after the POST: wait for them.
	arr := pq.Array(ids)
	if err := poll(ctx, "the burst's attempt rows", time.Now().Add(time.Minute), 50*time.Millisecond, func() (bool, error) {
		err := db.GetContext(ctx, &f.Delivered, `SELECT count(*) FROM webhook_attempts WHERE delivered AND event_id = ANY($1)`, arr)
		return f.Delivered >= n, err
	}); err != nil {
		return nil, fmt.Errorf("%w: %d delivered attempt rows of %d", err, f.Delivered, n)
	}
	if err := db.GetContext(ctx, &f.Attempts, `SELECT count(*) FROM webhook_attempts WHERE event_id = ANY($1)`, arr); err != nil {
		return nil, err
	}
	if err := db.GetContext(ctx, &f.DeadLetters, `SELECT count(*) FROM webhook_dead_letters WHERE event_id = ANY($1)`, arr); err != nil {
		return nil, err
	}
	_, _, f.Duplicates = m.rcv.received(ids)
	if measure {
		m.rcv.mu.Lock()
		unsigned := m.rcv.unsigned
		m.rcv.mu.Unlock()
		if unsigned > 0 {
			l.fail("%d burst deliveries without a webhook-signature header", unsigned)
		}
	}
	return f, nil
}

// probeReceiver measures how fast the burst receiver takes n plain POSTs of a webhook-sized
// body from concurrency goroutines of this process: the sender's rate is well below it when the
// receiver is not the bottleneck.
func probeReceiver(ctx context.Context, url string, n, concurrency int) rawProbe {
	body := bytes.Repeat([]byte("x"), 300)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency}}
	defer c.CloseIdleConnections()
	var next, done atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range concurrency {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				req, _ := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
				resp, err := c.Do(req)
				if err != nil {
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				done.Add(1)
			}
		})
	}
	wg.Wait()
	return rawProbe{Requests: int(done.Load()), Concurrency: concurrency, PerSec: float64(done.Load()) / time.Since(start).Seconds()}
}

// cpuTimes is the machine's CPU time from /proc/stat, in clock ticks: busy includes interrupt
// handling, which is charged to no process; processes is user + nice + system time, what the
// processes' own utime + stime add up to.
type cpuTimes struct{ busy, processes, total uint64 }

func machineCPU() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("/proc/stat: %q", line)
	}
	var t cpuTimes
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return cpuTimes{}, err
		}
		if i == 7 { // steal: taken by the hypervisor, not ours; guest times are in user already
			break
		}
		t.total += n
		if i != 3 && i != 4 { // idle, iowait
			t.busy += n
		}
		if i <= 2 {
			t.processes += n
		}
	}
	return t, nil
}

// userHZ is the kernel's clock tick for /proc CPU times (USER_HZ, 100 on Linux).
const userHZ = 100

// procStat is a process's parent and the CPU it has used (utime + stime, in ticks), from
// /proc/<pid>/stat.
func procStat(pid int) (ppid int, ticks uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The fields after the command, which is in parentheses and may hold spaces.
	i := bytes.LastIndex(b, []byte(") "))
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no command", pid)
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ppid, err = strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, err
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, err
	}
	return ppid, utime + stime, nil
}

// processTicks is the CPU the processes have used, in ticks (one that is gone counts 0).
func processTicks(pids []int) uint64 {
	var total uint64
	for _, pid := range pids {
		if _, t, err := procStat(pid); err == nil {
			total += t
		}
	}
	return total
}

// stackPids are the processes of the stack: this one and its descendants (the services and
// nats-server) and, when the stack runs its own Postgres, the postmaster (the parent of this
// connection's backend) and its children.
func (l *loadRun) stackPids(ctx context.Context, db *sqlx.DB) []int {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, err := procStat(pid); err == nil {
			children[ppid] = append(children[ppid], pid)
		}
	}
	roots := []int{os.Getpid()}
	var backend int
	if l.s.pg != nil && db.GetContext(ctx, &backend, `SELECT pg_backend_pid()`) == nil {
		if postmaster, _, err := procStat(backend); err == nil {
			roots = append(roots, postmaster)
		}
	}
	var out []int
	for len(roots) > 0 {
		pid := roots[0]
		roots = append(roots[1:], children[pid]...)
		out = append(out, pid)
	}
	return out
}

// ---- The table ----

func (l *loadRun) print(w io.Writer, lat *latencies, bursts [][]burstFigures, probes []rawProbe, took time.Duration) {
	fmt.Fprintf(w, "\n== load and scale figures ==\n")
	fmt.Fprintf(w, "measured %s · nproc %d · %s %s/%s · chain: a block every 1 s, 3 confirmations · run took %v\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH, took.Round(time.Second))

	mib := func(kb int64) string {
		if kb == 0 {
			return "—"
		}
		return fmt.Sprintf("%.1f", float64(kb)/1024)
	}
	fmt.Fprintf(w, "1. Resident memory per service process, MiB (VmRSS of /proc/<pid>/status, sampled every %v; idle: the peak over %v after %v quiet)\n",
		rssEvery, idleWindow, l.opts.Settle)
	fmt.Fprintf(w, "   %-18s %8s %16s %14s %16s  %s\n", "process", "idle", "peak: payments", "peak: bursts", "idle after load", "idle ≤ 64 MiB")
	for _, name := range l.rss.names() {
		idle := l.rss.peak("idle", name)
		note := ""
		if idle == 0 {
			idle, note = l.rss.peak("idle "+name, name), " (idle: after it started, before its burst)"
		}
		target := "yes"
		if idle == 0 {
			target = "—"
		} else if idle > 64*1024 {
			target = "NO"
		}
		fmt.Fprintf(w, "   %-18s %8s %16s %14s %16s  %s%s\n", name, mib(idle), mib(l.rss.peak("payments", name)),
			mib(l.rss.peak("bursts", name)), mib(l.rss.peak("after", name)), target, note)
	}

	fmt.Fprintf(w, "\n2. End-to-end latency over %d ETH payments (created through the REST API and paid on chain, one every %v: %v first → last paid)\n",
		lat.Payments, l.opts.PayEvery, lat.Pace.Round(time.Millisecond))
	fmt.Fprintf(w, "   %-50s %8s %8s %8s\n", "", "p50", "p99", "max")
	row := func(what string, ds []time.Duration) {
		if len(ds) == 0 {
			fmt.Fprintf(w, "   %-50s %8s %8s %8s\n", what, "—", "—", "—")
			return
		}
		r := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
		fmt.Fprintf(w, "   %-50s %8s %8s %8s\n", what, r(percentile(ds, 50)), r(percentile(ds, 99)), r(slices.Max(ds)))
	}
	row("paid → payments.confirmed stored on PAYMENTS", lat.ToStream)
	row("paid → merchant's payment.confirmed webhook", lat.ToHook)
	row("payments.confirmed on PAYMENTS → webhook", lat.Stream)
	row("(chain floor) paid → block of confirmation 3 mined", lat.Floor)
	fmt.Fprintf(w, "   paid → confirmed is bounded below by the chain, not the pipeline: the transfer waits up to 1 s for its block,\n")
	fmt.Fprintf(w, "   then 2 more 1 s blocks for 3 confirmations (~2-3 s, the floor row); the rest is scan, confirm and publish.\n")
	fmt.Fprintf(w, "   Webhooks to the demo merchant, which verifies every signature; payments confirmed more than once: %d\n", lat.DoubleConfirmed)

	fmt.Fprintf(w, "\n3. Webhook deliveries/s: bursts of %d deliveries published at once straight onto WEBHOOKS (endpoint.test events,\n", l.opts.Deliveries)
	fmt.Fprintf(w, "   as POST /v1/endpoints/{id}/test publishes them), spread over %d endpoints of one merchant, delivered to a local\n", l.opts.Endpoints)
	fmt.Fprintf(w, "   receiver that answers 200 at once without checking signatures (not the demo's verifying receiver); %d bursts\n", l.opts.Repeat)
	fmt.Fprintf(w, "   with each number of senders after a warm-up of %d. Timed from the first publish to the first arrival of the last\n", loadWarmUp)
	fmt.Fprintf(w, "   webhook-id; the median burst is the figure.\n")
	fmt.Fprintf(w, "   %-9s %5s %10s %9s %9s %13s %11s %13s %12s %17s %14s %15s\n", "senders", "burst", "deliveries", "publish", "took",
		"deliveries/s", "duplicates", "attempt rows", "dead letters", "busy: all/others", "senders' CPU", "CPU/delivery")
	var medians []float64
	for _, runs := range bursts {
		rates := make([]float64, len(runs))
		for i, b := range runs {
			rates[i] = b.PerSec
			fmt.Fprintf(w, "   %-9d %5d %10d %9s %9s %13.0f %11d %13d %12d %17s %8.2f cores %12.0f µs\n", b.Replicas, i+1, b.Deliveries,
				b.Publish.Round(time.Millisecond), b.Took.Round(time.Millisecond), b.PerSec, b.Duplicates, b.Attempts, b.DeadLetters,
				fmt.Sprintf("%.0f%% / %.0f%%", 100*b.MachineBusy, 100*b.Others), b.SenderCores, 1e6*b.SenderCPU/float64(b.Deliveries))
		}
		slices.Sort(rates)
		medians = append(medians, rates[len(rates)/2])
		fmt.Fprintf(w, "   %-9d %5s %10s %9s %9s %13.0f   (range %.0f-%.0f)\n", runs[0].Replicas, "median", "", "", "", rates[len(rates)/2],
			rates[0], rates[len(rates)-1])
	}
	if len(medians) == 2 {
		fmt.Fprintf(w, "   deliveries/s: one sender %.0f, two senders %.0f; ratio two / one: %.2f\n", medians[0], medians[1], medians[1]/medians[0])
	}
	if len(probes) > 0 {
		slowest := slices.MinFunc(probes, func(a, b rawProbe) int { return cmp.Compare(a.PerSec, b.PerSec) })
		var rates []string
		for _, p := range probes {
			rates = append(rates, fmt.Sprintf("%.0f", p.PerSec))
		}
		// The probe's client runs in this process too: its rate is a lower bound of what the
		// receiver alone can take.
		fastest := 0.0
		for _, runs := range bursts {
			for _, b := range runs {
				fastest = max(fastest, b.PerSec)
			}
		}
		verdict := "above the fastest burst: the receiver is not the bottleneck"
		if slowest.PerSec <= fastest {
			verdict = "NOT above the fastest burst: the receiver may be what limits the bursts"
		}
		fmt.Fprintf(w, "   the receiver took %s plain POSTs/s (before, after the bursts: %d requests from %d goroutines of this process,\n",
			strings.Join(rates, ", "), slowest.Requests, slowest.Concurrency)
		fmt.Fprintf(w, "   whose client costs CPU here too, so a lower bound of the receiver's own rate), %s\n", verdict)
	}
	fmt.Fprintf(w, "   On %d cores the second replica competes for CPU with the first, nats-server, Postgres, the chain and this\n", runtime.NumCPU())
	fmt.Fprintf(w, "   process (publisher and receiver), and with whatever else runs on the machine (listed above the figures): the\n")
	fmt.Fprintf(w, "   figure is as measured, not what a second machine would add. Busy: the share of all cores in use during a burst, by\n")
	fmt.Fprintf(w, "   anything / by processes outside this stack (its own: this process, the services, nats-server, its Postgres).\n")
	fmt.Fprintf(w, "   Senders' CPU: what the webhook-sender processes got (utime+stime), per delivery in the last column, which depends\n")
	fmt.Fprintf(w, "   less than deliveries/s on what else the machine is doing.\n")
	for _, runs := range bursts {
		for i, b := range runs {
			if b.Duplicates > 0 || b.DeadLetters > 0 || b.Attempts != b.Deliveries {
				fmt.Fprintf(w, "   NOTE: burst %d with %d sender(s): %d duplicates, %d dead letters, %d attempt rows for %d deliveries\n",
					i+1, b.Replicas, b.Duplicates, b.DeadLetters, b.Attempts, b.Deliveries)
			}
		}
	}
	if len(l.failures) > 0 {
		fmt.Fprintf(w, "\nNOT MEASURED: %s\n", strings.Join(l.failures, "; "))
	}
}
