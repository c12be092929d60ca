package main

import (
	"context"
	"math"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/services/api/internal/console"
	"github.com/ctrip-pay/pipeline/shared/natsbus"
	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
	"github.com/ctrip-pay/pipeline/streams"
)

// Every console file is served under /console/ with the type its name says, with a
// Content-Security-Policy that keeps the page on this origin; anything else under /console/
// is a 404 in the API's error shape.
func TestConsoleServesItsFiles(t *testing.T) {
	h := startHarness(t)
	wantType := map[string]string{".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
		".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
	names := console.Names()
	for _, want := range []string{"index.html", "app.js", "api.js", "amount.js", "console.css", "favicon.svg"} {
		if !slices.Contains(names, want) {
			t.Fatalf("the console has no %s (files: %v)", want, names)
		}
	}
	for _, name := range append(names, "") {
		r := h.call("GET", "/console/"+name, "", nil)
		ext := path.Ext(name)
		if name == "" {
			ext = ".html"
		}
		if r.status != http.StatusOK || r.header.Get("Content-Type") != wantType[ext] {
			t.Errorf("GET /console/%s: %d %q, want 200 %q", name, r.status, r.header.Get("Content-Type"), wantType[ext])
			continue
		}
		csp := r.header.Get("Content-Security-Policy")
		for _, directive := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "style-src 'self'"} {
			if !strings.Contains(csp, directive) {
				t.Errorf("GET /console/%s: Content-Security-Policy %q lacks %q", name, csp, directive)
			}
		}
		if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("ETag") == "" {
			t.Errorf("GET /console/%s: nosniff %q, ETag %q", name, r.header.Get("X-Content-Type-Options"), r.header.Get("ETag"))
		}
		if r.header.Get("Set-Cookie") != "" {
			t.Errorf("GET /console/%s sets a cookie", name)
		}
	}
	if index := h.call("GET", "/console/", "", nil); string(index.body) != string(mustLookup(t, "index.html")) {
		t.Error("GET /console/ is not index.html")
	}
	for _, p := range []string{"/console/nope.js", "/console/index.htm", "/console/assets/app.js", "/console/%2e%2e/console.go", "/console/.hidden.js"} {
		r := h.call("GET", p, "", nil)
		if r.status != http.StatusNotFound || r.apiError(t).Error.Code != "not_found" {
			t.Errorf("GET %s: %d %s, want 404 not_found", p, r.status, r.body)
		}
	}
	// The console's root without its slash is sent to it.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(h.base + "/console")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != "/console/" {
		t.Errorf("GET /console: %d Location %q, want a redirect to /console/", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func mustLookup(tb testing.TB, name string) []byte {
	tb.Helper()
	f, ok := console.Lookup(name)
	if !ok {
		tb.Fatalf("no console file %s", name)
	}
	return f.Body
}

// Every reference in the console's files resolves to one of its own files on this origin:
// the page loads nothing from elsewhere, and every module it imports exists.
func TestConsoleReferencesOnlyItsOwnFiles(t *testing.T) {
	base, _ := url.Parse("http://api.invalid/console/")
	attr := regexp.MustCompile(`(?i)\b(?:src|href|action|srcset|poster|data)\s*=\s*["']([^"']*)["']`)
	imports := regexp.MustCompile(`(?m)(?:^|\s)(?:import|export)\b[^;"']*?\bfrom\s*["']([^"']+)["']|\bimport\s*\(\s*["']([^"']+)["']`)
	cssURL := regexp.MustCompile(`url\(\s*["']?([^"')]+)["']?\s*\)|@import\s+["']([^"']+)["']`)
	absolute := regexp.MustCompile(`(?i)(?:https?:)?//[a-z0-9.-]+`)
	names := console.Names()
	check := func(from, ref string) {
		if strings.HasPrefix(ref, "#") {
			return // a fragment of the page itself: the router's links, the chart's pattern
		}
		u, err := url.Parse(ref)
		if err != nil || u.Scheme != "" || u.Host != "" {
			t.Errorf("%s refers to %q, which is not a path on this origin", from, ref)
			return
		}
		target := base.ResolveReference(u)
		name, ok := strings.CutPrefix(target.Path, "/console/")
		if !ok || !slices.Contains(names, name) {
			t.Errorf("%s refers to %q (%s), which is not a console file", from, ref, target.Path)
		}
	}
	var refs int
	for _, name := range names {
		text := string(mustLookup(t, name))
		switch path.Ext(name) {
		case ".html":
			for _, m := range attr.FindAllStringSubmatch(text, -1) {
				check(name, m[1])
				refs++
			}
		case ".js":
			for _, m := range imports.FindAllStringSubmatch(text, -1) {
				check(name, m[1]+m[2])
				refs++
			}
			// The API is called on this origin: fetch gets paths, never a URL.
			for _, m := range regexp.MustCompile(`fetch\(\s*([^,)]+)`).FindAllStringSubmatch(text, -1) {
				if m[1] != "path" {
					t.Errorf("%s: fetch(%s): the console fetches only the API paths it is given", name, m[1])
				}
			}
		case ".css":
			for _, m := range cssURL.FindAllStringSubmatch(text, -1) {
				check(name, m[1]+m[2])
				refs++
			}
		}
		// No URL of another origin anywhere, but the SVG namespace (a name, never loaded).
		for _, m := range absolute.FindAllString(strings.ReplaceAll(text, "http://www.w3.org/2000/svg", ""), -1) {
			t.Errorf("%s mentions %q: the console must not load or call anything elsewhere", name, m)
		}
	}
	if refs < 10 {
		t.Errorf("found only %d references in the console's files: the patterns no longer match them", refs)
	}
}

// The operator overview is the admin's: no token, a merchant's key or a wrong token is a 401.
func TestOperatorOverviewRefusesAllButTheAdmin(t *testing.T) {
	h := startHarness(t)
	_, key := h.merchant("m")
	for name, token := range map[string]string{"no token": "", "a merchant's key": key, "a wrong token": testAdminToken + "x"} {
		r := h.call("GET", "/v1/operator/overview", token, nil)
		if r.status != http.StatusUnauthorized || r.apiError(t).Error.Code != "unauthorized" {
			t.Errorf("%s: %d %s, want 401 unauthorized", name, r.status, r.body)
		}
	}
	if r := h.call("GET", "/v1/operator/overview", testAdminToken, nil); r.status != http.StatusOK {
		t.Errorf("the admin token: %d %s", r.status, r.body)
	}
}

type overview struct {
	Object    string `json:"object"`
	Consumers []struct {
		Stream        string `json:"stream"`
		Name          string `json:"name"`
		NumPending    uint64 `json:"num_pending"`
		NumAckPending int    `json:"num_ack_pending"`
	} `json:"consumers"`
	Streams []struct {
		Name     string `json:"name"`
		Exists   bool   `json:"exists"`
		Messages uint64 `json:"messages"`
	} `json:"streams"`
	DLQ struct {
		StreamMessages uint64 `json:"stream_messages"`
		Copies         uint64 `json:"dead_lettered_copies"`
		DeadLetters    int    `json:"dead_letters"`
		NeverReplayed  int    `json:"never_replayed"`
	} `json:"dlq"`
	Deliveries struct {
		WindowStart   time.Time `json:"window_start"`
		BucketSeconds int       `json:"bucket_seconds"`
		Endpoints     []struct {
			EndpointID   string  `json:"endpoint_id"`
			URL          string  `json:"url"`
			MerchantID   *string `json:"merchant_id"`
			Attempts     int     `json:"attempts"`
			Delivered    int     `json:"delivered"`
			SuccessRate  float64 `json:"success_rate"`
			LatencyAvgMS float64 `json:"latency_avg_ms"`
			Buckets      []struct {
				Start        time.Time `json:"start"`
				Attempts     int       `json:"attempts"`
				Delivered    int       `json:"delivered"`
				LatencyAvgMS *float64  `json:"latency_avg_ms"`
				LatencyP95MS *float64  `json:"latency_p95_ms"`
			} `json:"buckets"`
		} `json:"endpoints"`
	} `json:"deliveries"`
	Chains []struct {
		ChainID int64 `json:"chain_id"`
		Head    *struct {
			Number     uint64    `json:"number"`
			Hash       string    `json:"hash"`
			Time       time.Time `json:"time"`
			AgeSeconds float64   `json:"age_seconds"`
		} `json:"head"`
		HeadError *string `json:"head_error"`
		Cursor    *struct {
			Number int64 `json:"number"`
		} `json:"cursor"`
		ScannerLag *int64 `json:"scanner_lag_blocks"`
	} `json:"chains"`
}

// The overview's figures for a state the test makes: messages on the streams, one fetched and
// not acknowledged, copies and advisories on DLQ, dead letters, attempts inside and outside
// the hour, a chain whose node answers (scanner two blocks behind) and one whose does not.
func TestOperatorOverviewFigures(t *testing.T) {
	h := newHarness(t)
	chain := chaintest.New(t, chaintest.WithHTTP())
	chain.Mine(5)
	deadNode := "http://" + testkit.FreeAddr(t) // nothing listens there
	h.cfg.ChainsFile = testkit.TempFile(t, "chains.yaml", `
chains:
  - id: 1337
    name: devnet
    rpc_url: `+chain.RPCURL()+`
    confirmations: 3
    native: {symbol: ETH, decimals: 18}
  - id: 137
    name: polygon
    rpc_url: `+deadNode+`
    confirmations: 64
    native: {symbol: POL, decimals: 18}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Every stream and durable consumer, as the services provision them.
	var durables []natsbus.Durable
	for _, d := range [][2]string{{streams.Payments, "api-events"}, {streams.Payments, "confirmer"}, {streams.Chain, "confirmer"},
		{streams.Payments, "sweeper"}, {streams.Payments, "webhook-fanout"}, {streams.Webhooks, "webhook-sender"}, {streams.DLQ, "dlq-processor"}} {
		durables = append(durables, natsbus.Durable{Stream: d[0], Name: d[1]})
	}
	if _, err := natsbus.Provisioner([]string{streams.DLQ, streams.Payments, streams.Chain, streams.Webhooks}, durables, nil)(ctx, h.js, natsbus.Sizing{}); err != nil {
		t.Fatal(err)
	}
	h.start()

	mID, key := h.merchant("m")
	epA, epB := h.endpointFor(key), h.endpointFor(key)
	publish := func(subject string, n int) {
		for range n {
			if _, err := h.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: []byte(`{}`)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish("payments.confirmed", 3)
	publish("dlq.webhooks."+epA, 2)
	publish("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.WEBHOOKS.webhook-sender", 1)
	// The sweeper takes one confirmed payment and has not acknowledged it yet.
	sweeper, err := h.js.Consumer(ctx, streams.Payments, "sweeper")
	if err != nil {
		t.Fatal(err)
	}
	batch, err := sweeper.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var taken int
	for range batch.Messages() {
		taken++
	}
	if taken != 1 {
		t.Fatalf("fetched %d messages from the sweeper's consumer, want 1", taken)
	}

	for i := range 3 {
		h.deadLetter(epA, mID, "webhooks.deliver."+epA, map[string]string{}, []byte(`{}`), time.Now().Add(-time.Duration(i)*time.Minute))
	}
	if _, err := h.db.Exec(`UPDATE webhook_dead_letters SET replay_count = 1 WHERE id = (SELECT min(id) FROM webhook_dead_letters)`); err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	recent, older, stale := now.Add(-time.Second), now.Add(-20*time.Minute), now.Add(-2*time.Hour)
	attempt := func(ep string, at time.Time, code int, delivered bool, latency float64) {
		var status *int
		if code != 0 {
			status = &code
		}
		if _, err := h.db.Exec(`INSERT INTO webhook_attempts (event_id, event_type, payment_id, endpoint_id, stream_seq,
			attempt, status_code, latency_ms, delivered, attempted_at) VALUES ('evt_1', 'payment.confirmed', NULL, $1, 1, 1, $2, $3, $4, $5)`,
			ep, status, latency, delivered, at); err != nil {
			t.Fatal(err)
		}
	}
	attempt(epA, recent, 200, true, 10)
	attempt(epA, recent, 200, true, 20)
	attempt(epA, recent, 500, false, 30)
	attempt(epA, older, 0, false, 100)
	attempt(epA, stale, 200, true, 5) // outside the hour
	attempt(epB, recent, 200, true, 7)

	head := chain.Head()
	if _, err := h.db.Exec(`INSERT INTO chain_cursors (chain_id, block_number, block_hash) VALUES (1337, $1, '0xabc')`, head.Number.Int64()-2); err != nil {
		t.Fatal(err)
	}

	var o overview
	r := h.call("GET", "/v1/operator/overview", testAdminToken, nil)
	if r.status != http.StatusOK {
		t.Fatalf("overview: %d %s", r.status, r.body)
	}
	r.json(t, &o)

	// Consumers and streams.
	pending := map[string][2]int{}
	for _, c := range o.Consumers {
		pending[c.Stream+"/"+c.Name] = [2]int{int(c.NumPending), c.NumAckPending}
	}
	for name, want := range map[string][2]int{
		"PAYMENTS/sweeper": {2, 1}, "PAYMENTS/webhook-fanout": {3, 0}, "PAYMENTS/confirmer": {0, 0}, "PAYMENTS/api-events": {0, 0},
		"CHAIN/confirmer": {0, 0}, "WEBHOOKS/webhook-sender": {0, 0}, "DLQ/dlq-processor": {1, 0},
	} {
		got, ok := pending[name]
		if !ok {
			t.Errorf("consumer %s is missing from %v", name, pending)
		} else if got != want {
			t.Errorf("consumer %s: pending, ack pending %v, want %v", name, got, want)
		}
	}
	if len(o.Consumers) != 7 {
		t.Errorf("%d consumers, want the 7 durables: %v", len(o.Consumers), pending)
	}
	for _, s := range o.Streams {
		if !s.Exists {
			t.Errorf("stream %s reported missing", s.Name)
		}
	}
	if o.DLQ.StreamMessages != 3 || o.DLQ.Copies != 2 || o.DLQ.DeadLetters != 3 || o.DLQ.NeverReplayed != 2 {
		t.Errorf("dlq %+v, want 3 stream messages, 2 copies, 3 dead letters, 2 never replayed", o.DLQ)
	}

	// Deliveries: endpoint A's four attempts in the hour, then B's one.
	d := o.Deliveries
	if d.BucketSeconds != 300 || !d.WindowStart.Before(now.Add(-55*time.Minute)) || d.WindowStart.Before(now.Add(-time.Hour)) {
		t.Errorf("window from %v in %d s buckets, want the last hour (now %v) in 300 s", d.WindowStart, d.BucketSeconds, now)
	}
	if len(d.Endpoints) != 2 || d.Endpoints[0].EndpointID != epA || d.Endpoints[1].EndpointID != epB {
		t.Fatalf("deliveries for %+v, want %s then %s", d.Endpoints, epA, epB)
	}
	a := d.Endpoints[0]
	if a.Attempts != 4 || a.Delivered != 2 || a.SuccessRate != 0.5 || math.Abs(a.LatencyAvgMS-40) > 1e-9 ||
		a.URL != "https://example.com/hook" || a.MerchantID == nil || *a.MerchantID != mID {
		t.Errorf("endpoint A: %d attempts, %d delivered, rate %v, avg %v ms, %q of %v; want 4, 2, 0.5, 40 ms, its URL and merchant",
			a.Attempts, a.Delivered, a.SuccessRate, a.LatencyAvgMS, a.URL, a.MerchantID)
	}
	if len(a.Buckets) != 12 {
		t.Fatalf("endpoint A has %d buckets, want 12", len(a.Buckets))
	}
	bucketOf := func(at time.Time) int { return int(at.Sub(d.WindowStart) / (5 * time.Minute)) }
	for i, b := range a.Buckets {
		if want := d.WindowStart.Add(time.Duration(i) * 5 * time.Minute); !b.Start.Equal(want) {
			t.Errorf("bucket %d starts %v, want %v", i, b.Start, want)
		}
		var wantN, wantOK int
		var wantAvg, wantP95 float64
		switch i {
		case bucketOf(recent):
			wantN, wantOK, wantAvg, wantP95 = 3, 2, 20, 29 // p95 of 10, 20, 30 by linear interpolation
		case bucketOf(older):
			wantN, wantOK, wantAvg, wantP95 = 1, 0, 100, 100
		}
		if b.Attempts != wantN || b.Delivered != wantOK {
			t.Errorf("bucket %d: %d attempts, %d delivered, want %d, %d", i, b.Attempts, b.Delivered, wantN, wantOK)
		}
		if wantN == 0 {
			if b.LatencyAvgMS != nil || b.LatencyP95MS != nil {
				t.Errorf("bucket %d has no attempts but a latency", i)
			}
		} else if b.LatencyAvgMS == nil || b.LatencyP95MS == nil || math.Abs(*b.LatencyAvgMS-wantAvg) > 1e-9 || math.Abs(*b.LatencyP95MS-wantP95) > 1e-9 {
			t.Errorf("bucket %d: latency avg %v p95 %v, want %v and %v", i, b.LatencyAvgMS, b.LatencyP95MS, wantAvg, wantP95)
		}
	}
	if b := d.Endpoints[1]; b.Attempts != 1 || b.SuccessRate != 1 {
		t.Errorf("endpoint B: %d attempts, rate %v; want 1 and 1", b.Attempts, b.SuccessRate)
	}

	// Chains: the node's head, the scanner two behind; the other node unreachable, and said so
	// without its URL.
	if len(o.Chains) != 2 {
		t.Fatalf("%d chains, want 2", len(o.Chains))
	}
	dev, polygon := o.Chains[0], o.Chains[1]
	if dev.ChainID != 1337 || dev.Head == nil || dev.Head.Number != head.Number.Uint64() || dev.Head.Hash != head.Hash().Hex() {
		t.Fatalf("devnet head %+v (error %v), want block %d %s", dev.Head, dev.HeadError, head.Number, head.Hash().Hex())
	}
	// The simulated chain stamps blocks mined in a burst a second apart, ahead of the clock: a
	// head from the future is of age 0.
	wantAge := max(0, time.Since(time.Unix(int64(head.Time), 0)).Seconds())
	if math.Abs(dev.Head.AgeSeconds-wantAge) > 2 {
		t.Errorf("devnet head age %v s, want about %v s", dev.Head.AgeSeconds, wantAge)
	}
	if dev.Cursor == nil || dev.ScannerLag == nil || *dev.ScannerLag != 2 {
		t.Errorf("devnet cursor %+v, lag %v; want 2 blocks behind", dev.Cursor, dev.ScannerLag)
	}
	if polygon.ChainID != 137 || polygon.Head != nil || polygon.HeadError == nil || polygon.Cursor != nil || polygon.ScannerLag != nil {
		t.Fatalf("polygon %+v, want no head, an error, no cursor and no lag", polygon)
	}
	if strings.Contains(*polygon.HeadError, deadNode) || strings.Contains(*polygon.HeadError, "http") {
		t.Errorf("the head error shows the node's URL: %q", *polygon.HeadError)
	}
}
