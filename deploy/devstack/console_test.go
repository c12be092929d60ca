package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// consoleReceiver is the merchant's server in the console test: it records what it is sent
// and answers 500 while failing is set.
type consoleReceiver struct {
	mu        sync.Mutex
	failing   bool
	delivered map[string]int // event id → 2xx answers
	refused   int
}

func (c *consoleReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var env struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(body, &env) // a body that is not an envelope is still answered
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failing {
		c.refused++
		http.Error(w, "console test: the receiver is failing on purpose", http.StatusInternalServerError)
		return
	}
	c.delivered[env.ID]++
	w.WriteHeader(http.StatusNoContent)
}

func (c *consoleReceiver) setFailing(v bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failing = v
}

func (c *consoleReceiver) deliveries(eventID string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.delivered[eventID]
}

// browserPath finds Debian's chromium (CI installs it); the test fails without it.
func browserPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("the console test needs a headless Chromium: apt-get install chromium")
	return ""
}

// screenshotDir is where the console test leaves its screenshots (test artefacts, not
// committed): $CONSOLE_SCREENSHOTS, else $TMPDIR/ctrip-console-screens.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CONSOLE_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "ctrip-console-screens")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browserLog collects what the page did that the test checks: every request's URL, script
// exceptions and refusals by the Content-Security-Policy.
type browserLog struct {
	mu       sync.Mutex
	requests []string
	problems []string
}

func (b *browserLog) record(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		b.requests = append(b.requests, e.Request.URL)
	case *runtime.EventExceptionThrown:
		d := e.ExceptionDetails
		msg := d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		b.problems = append(b.problems, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, msg))
	case *log.EventEntryAdded:
		if strings.Contains(e.Entry.Text, "Content Security Policy") || strings.Contains(e.Entry.Text, "Refused to") {
			b.problems = append(b.problems, "refused: "+e.Entry.Text)
		}
	}
}

func (b *browserLog) snapshot() ([]string, []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.requests...), append([]string(nil), b.problems...)
}

// consoleDriver drives one tab of the console against the stack's api.
type consoleDriver struct {
	t     *testing.T
	ctx   context.Context
	base  string // <api>/console/
	shots string
	n     int
}

// do runs the steps, failing the test with what was being done.
func (d *consoleDriver) do(what string, steps ...chromedp.Action[chromedp.Void]) error {
	if err := chromedp.Do(d.ctx, steps...); err != nil {
		return fmt.Errorf("console: %s: %w", what, err)
	}
	return nil
}

// waitFor polls the page until the JavaScript expression is true.
func (d *consoleDriver) waitFor(what, expr string, timeout time.Duration) error {
	if _, err := chromedp.Run(d.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout),
		chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		text, _ := chromedp.Run(d.ctx, chromedp.Evaluate[string](`document.querySelector("main").innerText.slice(0, 3000)`))
		d.screenshot("failed-" + strings.ReplaceAll(what, " ", "-"))
		return fmt.Errorf("console: waiting for %s: %w\npage: %s", what, err, text)
	}
	return nil
}

// click clicks the first element matching the CSS selector, once it is visible.
func (d *consoleDriver) click(sel string) error {
	return d.do("click "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

func (d *consoleDriver) eval(expr string) (string, error) {
	return chromedp.Run(d.ctx, chromedp.Evaluate[string](expr))
}

// screenshot writes the whole page as <n>-<name>.png.
func (d *consoleDriver) screenshot(name string) string {
	buf, err := chromedp.Run(d.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		d.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	d.n++
	p := filepath.Join(d.shots, fmt.Sprintf("%02d-%s.png", d.n, name))
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		d.t.Logf("screenshot %s: %v", name, err)
	}
	return p
}

// signIn signs in on the console's form with a merchant key or the admin token.
func (d *consoleDriver) signIn(token, then string) error {
	return inOrder(func() error {
		return d.do("sign in", chromedp.WaitVisible(chromedp.ID("token")), chromedp.SendKeys(chromedp.ID("token"), token),
			chromedp.Click(chromedp.CSS(`#signin button[type="submit"]`)))
	}, func() error { return d.waitFor("the view after signing in", then, 20*time.Second) })
}

// inOrder runs the steps in order and stops at the first that fails.
func inOrder(steps ...func() error) error {
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// The console end to end, in headless Chromium against the dev stack: a merchant signs in,
// creates an endpoint on a server of the test's, pays and watches the payment's timeline reach
// swept; the server fails, the attempts fail and a dead letter appears; the server recovers,
// the letter is replayed and delivered. Then the operator signs in and sees the consumers and
// the charts. The page never requests anything from another origin, throws no exception and
// breaks no rule of its Content-Security-Policy. Screenshots of every page go to
// $CONSOLE_SCREENSHOTS (default $TMPDIR/ctrip-console-screens).
func TestConsoleEndToEnd(t *testing.T) {
	ctx := systemTest(t, "builds and runs every service and drives Chromium", 10*time.Minute)
	chromium := browserPath(t)
	shots := screenshotDir(t)
	t.Logf("console screenshots: %s", shots)
	old, _ := filepath.Glob(filepath.Join(shots, "[0-9][0-9]-*.png"))
	for _, f := range old {
		_ = os.Remove(f) // an earlier run's: every screenshot left is this run's
	}
	t.Setenv("DATABASE_URL", testkit.MustDatabaseURL(t))
	natsPort, err := testkit.FreePort()
	if err != nil {
		t.Fatal(err)
	}

	rcv := &consoleReceiver{delivered: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rcv, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	hookURL := "http://" + ln.Addr().String() + "/console-hooks"

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 900))...)
	defer cancelAlloc()
	tab, cancelTab := chromedp.NewContext(allocCtx)
	defer cancelTab()
	blog := &browserLog{}
	if err := chromedp.Listen(tab, blog.record); err != nil {
		t.Fatalf("start Chromium (%s): %v", chromium, err)
	}

	var apiURL string
	_, err = run(ctx, options{
		natsPort: natsPort,
		timeout:  5 * time.Minute,
		log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		midFlow: func(s *stack) ([]string, error) {
			apiURL = s.apiURL
			d := &consoleDriver{t: t, ctx: tab, base: s.apiURL + "/console/", shots: shots}
			return driveConsole(d, s, rcv, hookURL)
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	requests, problems := blog.snapshot()
	for _, p := range problems {
		t.Errorf("the page: %s", p)
	}
	var api, console int
	for _, u := range requests {
		switch {
		case strings.HasPrefix(u, apiURL+"/console/"):
			console++
		case strings.HasPrefix(u, apiURL+"/v1/"):
			api++
		case strings.HasPrefix(u, "data:"):
			// Chromium's own images for form controls (the date picker's icon): no request.
		default:
			t.Errorf("the console requested %s, which is not the api's origin %s", u, apiURL)
		}
	}
	if console < 8 || api < 20 {
		t.Errorf("the page made %d requests for console files and %d API calls: the listener saw too few to prove anything", console, api)
	}
	t.Logf("%d console file requests and %d API calls, all to %s", console, api, apiURL)
}

// driveConsole is the test's walk through the console, run while the stack is up.
func driveConsole(d *consoleDriver, s *stack, rcv *consoleReceiver, hookURL string) ([]string, error) {
	// Sign in with the merchant's key: the demo's two payments are listed.
	if err := d.do("open the console", chromedp.Navigate(d.base)); err != nil {
		return nil, err
	}
	if err := d.waitFor("the sign-in form", `document.querySelector("#token") !== null`, 20*time.Second); err != nil {
		return nil, err
	}
	d.screenshot("sign-in")
	if err := d.signIn(s.merchantKey, `document.querySelectorAll("#payments tbody tr").length >= 2`); err != nil {
		return nil, err
	}
	// The demo's amounts, formatted from base units with the tokens' decimals.
	if err := d.waitFor("the demo's amounts", `["12.5 ETH", "25.75 USDC"].every(a => document.querySelector("#payments").textContent.includes(a))`, 10*time.Second); err != nil {
		return nil, err
	}
	d.screenshot("payments")
	if err := d.checkAmounts(); err != nil {
		return nil, err
	}

	// An endpoint on the test's receiver; its secret is shown once.
	if err := d.click(`#nav a[href="#/endpoints"]`); err != nil {
		return nil, err
	}
	if err := inOrder(func() error {
		return d.do("fill the new endpoint", chromedp.WaitVisible(chromedp.ID("ep-url")), chromedp.SendKeys(chromedp.ID("ep-url"), hookURL))
	}, func() error { return d.click(`#create-endpoint button[type="submit"]`) }, func() error {
		return d.waitFor("the new endpoint's secret", `(document.querySelector("#secret code") || {}).textContent?.startsWith("whsec_")`, 20*time.Second)
	}, func() error {
		return d.waitFor("the new endpoint's card", `[...document.querySelectorAll("#endpoints article h3")].some(h => h.textContent === `+js(hookURL)+`)`, 10*time.Second)
	}); err != nil {
		return nil, err
	}
	epID, err := d.eval(`[...document.querySelectorAll("#endpoints article")].find(a => a.querySelector("h3").textContent === ` + js(hookURL) + `).dataset.id`)
	if err != nil || !strings.HasPrefix(epID, "ep_") {
		return nil, fmt.Errorf("console: the new endpoint's id: %q, %v", epID, err)
	}
	d.screenshot("endpoints")
	if err := d.endpointActions(epID, rcv); err != nil {
		return nil, err
	}

	// A payment, paid on the chain: its timeline, open in the console, reaches swept and shows
	// the swept event delivered to the new endpoint.
	paid, err := s.payETH(d.ctx, "0.1")
	if err != nil {
		return nil, err
	}
	if err := d.openPayment(paid); err != nil {
		return nil, err
	}
	if err := inOrder(func() error {
		return d.waitFor("the payment to reach swept", `document.querySelector('#payment-status [data-status="swept"]') !== null`, 3*time.Minute)
	}, func() error {
		return d.waitFor("payment.swept delivered to the endpoint", `[...document.querySelectorAll('#timeline li[data-kind="attempt"][data-delivered="true"][data-endpoint-id=`+js(epID)+`]')].some(li => li.textContent.includes("payment.swept"))`, time.Minute)
	}); err != nil {
		return nil, err
	}
	d.screenshot("payment-timeline")
	// At 375 px the timeline fits the width: nothing scrolls sideways.
	if err := d.do("narrow the window", chromedp.EmulateViewport(375, 812)); err != nil {
		return nil, err
	}
	if err := d.waitFor("the timeline to fit 375 px", `document.documentElement.scrollWidth <= window.innerWidth`, 5*time.Second); err != nil {
		return nil, err
	}
	d.screenshot("payment-timeline-375px")
	if err := d.do("widen the window", chromedp.EmulateViewport(1280, 900)); err != nil {
		return nil, err
	}

	// The receiver fails: a second payment's deliveries fail in its timeline, and once the
	// retries (WEBHOOK_BACKOFF=1s,2s,5s,10s: five attempts over about 18 s) are spent, its
	// dead letter appears.
	rcv.setFailing(true)
	failing, err := s.payETH(d.ctx, "0.2")
	if err != nil {
		return nil, err
	}
	if err := d.openPayment(failing); err != nil {
		return nil, err
	}
	if err := d.waitFor("a failed attempt to the endpoint", `[...document.querySelectorAll('#timeline li[data-kind="attempt"][data-delivered="false"][data-endpoint-id=`+js(epID)+`]')].some(li => li.textContent.includes("HTTP 500"))`, time.Minute); err != nil {
		return nil, err
	}
	d.screenshot("payment-timeline-failing")
	if err := d.click(`#nav a[href="#/dead-letters"]`); err != nil {
		return nil, err
	}
	row := `[...document.querySelectorAll("#dead-letters tbody tr")].find(tr => tr.textContent.includes(` + js(failing) + `) && tr.textContent.includes(` + js(epID) + `))`
	if err := d.waitFor("the failing payment's dead letter", row+` !== undefined`, 2*time.Minute); err != nil {
		return nil, err
	}
	d.screenshot("dead-letters")
	dlID, err := d.eval(row + `.dataset.id`)
	if err != nil || dlID == "" {
		return nil, fmt.Errorf("console: the dead letter's id: %q, %v", dlID, err)
	}
	if err := inOrder(func() error { return d.click(`#dead-letters a[href="#/dead-letters/` + dlID + `"]`) }, func() error {
		return d.waitFor("the dead letter's page", `document.querySelector("#dead-letter button.replay") !== null`, 10*time.Second)
	}); err != nil {
		return nil, err
	}
	eventID, err := d.eval(`JSON.parse(document.querySelector("#dead-letter pre").textContent).id`)
	if err != nil || !strings.HasPrefix(eventID, "evt_") {
		return nil, fmt.Errorf("console: the dead letter's event id: %q, %v", eventID, err)
	}
	d.screenshot("dead-letter")

	// The receiver recovers; the letter is replayed from its page and delivered: the receiver
	// gets the event, and the payment's timeline shows the delivered attempt.
	rcv.setFailing(false)
	before := rcv.deliveries(eventID)
	if err := inOrder(func() error { return d.click(`#dead-letter button.replay`) }, func() error {
		return d.waitFor("the replay to be counted", `document.querySelector("#replay-count").textContent.startsWith("1")`, 10*time.Second)
	}); err != nil {
		return nil, err
	}
	if err := poll(d.ctx, "the replayed event at the receiver", time.Now().Add(time.Minute), 100*time.Millisecond,
		func() (bool, error) { return rcv.deliveries(eventID) > before, nil }); err != nil {
		return nil, err
	}
	if err := d.openPayment(failing); err != nil {
		return nil, err
	}
	if err := d.waitFor("the replayed event delivered in the timeline",
		`document.querySelector('#timeline li[data-kind="attempt"][data-delivered="true"][data-endpoint-id=`+js(epID)+`][data-event-id=`+js(eventID)+`]') !== null`, time.Minute); err != nil {
		return nil, err
	}
	d.screenshot("payment-timeline-replayed")

	// The operator: the durable consumers and the delivery charts of the endpoint.
	if err := inOrder(func() error { return d.click("#signout") }, func() error {
		return d.waitFor("the sign-in form", `document.querySelector("#token") !== null`, 10*time.Second)
	}); err != nil {
		return nil, err
	}
	if err := d.signIn(adminToken, `document.querySelector("#consumers") !== null`); err != nil {
		return nil, err
	}
	if err := inOrder(func() error {
		return d.waitFor("the consumers", `["webhook-sender", "webhook-fanout", "confirmer", "sweeper", "dlq-processor"].every(n => [...document.querySelectorAll("#consumers tbody tr")].some(tr => tr.dataset.id.endsWith("/" + n)))`, 20*time.Second)
	}, func() error {
		return d.waitFor("the endpoint's charts", `document.querySelectorAll('.endpoint-stats[data-id=`+js(epID)+`] svg.chart').length === 2`, 20*time.Second)
	}, func() error {
		return d.waitFor("the chain's head", `/^[0-9]+$/.test((document.querySelector('#chains tbody tr[data-id="1337"] td[data-label="Head"]') || {}).textContent)`, 20*time.Second)
	}); err != nil {
		return nil, err
	}
	d.screenshot("operator")
	rate, err := d.eval(`document.querySelector('.endpoint-stats[data-id=` + js(epID) + `] .success-rate').textContent`)
	if err != nil {
		return nil, err
	}
	d.t.Logf("operator view, endpoint %s: %s", epID, rate)
	if !strings.Contains(rate, "attempts") || strings.HasPrefix(rate, "100 %") {
		return nil, fmt.Errorf("console: the endpoint's success rate %q: its failed attempts are not counted", rate)
	}
	return []string{paid, failing}, nil
}

// endpointActions uses the endpoint's buttons: a test event reaches the receiver, a rotation
// shows a new secret once, and a disabled endpoint says so and is enabled again.
func (d *consoleDriver) endpointActions(epID string, rcv *consoleReceiver) error {
	card := `#endpoints article[data-id="` + epID + `"]`
	state := `document.querySelector(` + js(card+" .ep-state") + `).textContent`
	if err := inOrder(
		func() error { return d.click(card + ` button[data-action="test"]`) },
		func() error {
			return d.waitFor("the test event's notice", `/Test event evt_\w+ sent/.test(document.querySelector("#toast").textContent)`, 10*time.Second)
		},
	); err != nil {
		return err
	}
	testEvent, err := d.eval(`document.querySelector("#toast").textContent.match(/evt_\w+/)[0]`)
	if err != nil {
		return err
	}
	if err := poll(d.ctx, "the test event at the receiver", time.Now().Add(30*time.Second), 100*time.Millisecond,
		func() (bool, error) { return rcv.deliveries(testEvent) > 0, nil }); err != nil {
		return err
	}
	first, err := d.eval(`document.querySelector("#secret code").textContent`)
	if err != nil {
		return err
	}
	return inOrder(
		func() error { return d.click(card + ` button[data-action="rotate"]`) },
		func() error {
			return d.waitFor("the rotated secret", `document.querySelector("#secret").textContent.startsWith("New signing secret") && document.querySelector("#secret code").textContent.startsWith("whsec_") && document.querySelector("#secret code").textContent !== `+js(first), 10*time.Second)
		},
		func() error { return d.click(card + ` button[data-action="disable"]`) },
		func() error { return d.waitFor("the endpoint disabled", state+`.includes("disabled")`, 10*time.Second) },
		func() error {
			d.screenshot("endpoint-disabled")
			return d.click(card + ` button[data-action="enable"]`)
		},
		func() error {
			return d.waitFor("the endpoint enabled again", state+`.includes("enabled") && !`+state+`.includes("disabled")`, 10*time.Second)
		},
	)
}

// checkAmounts runs the console's own amount formatting in the page on amounts no float64
// holds exactly: BigInt arithmetic must give every digit.
func (d *consoleDriver) checkAmounts() error {
	cases := []struct {
		base, want string
		decimals   int
	}{
		{"123456789012345678901234567890", "123,456,789,012.34567890123456789", 18},
		{"1", "0.000000000000000001", 18},
		{"12500000000000000000", "12.5", 18},
		{"9007199254740993", "9,007,199,254.740993", 6}, // 2^53 + 1
		{"-5000000", "-5", 6},
		{"0", "0", 6},
		{"42", "42", 0},
	}
	for _, c := range cases {
		got, err := chromedp.Run(d.ctx, chromedp.Evaluate[string](
			fmt.Sprintf(`import("./amount.js").then(m => m.formatUnits(%s, %d))`, js(c.base), c.decimals), chromedp.EvalAwaitPromise))
		if err != nil {
			return fmt.Errorf("console: formatUnits(%s, %d): %w", c.base, c.decimals, err)
		}
		if got != c.want {
			return fmt.Errorf("console: formatUnits(%s, %d) = %q, want %q", c.base, c.decimals, got, c.want)
		}
	}
	return nil
}

// openPayment opens the payment from the list, as a user would: the link in its row.
func (d *consoleDriver) openPayment(id string) error {
	link := `#payments a[href="#/payments/` + id + `"]`
	return inOrder(func() error { return d.click(`#nav a[href="#/payments"]`) }, func() error {
		return d.waitFor("payment "+id+" in the list", `document.querySelector(`+js(link)+`) !== null`, 20*time.Second)
	}, func() error { return d.click(link) }, func() error {
		return d.waitFor("payment "+id+"'s timeline", `document.querySelector("#timeline") !== null && location.hash === `+js("#/payments/"+id), 20*time.Second)
	})
}
