package main

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ctrip-pay/pipeline/shared/signature"
)

// flapping is how often a chaos merchant misbehaves, each a fraction of the requests.
type flapping struct {
	Fail5xx, Timeout, Slow, Reset float64
	// Hang is how long a timed-out request is held (beyond the sender's WEBHOOK_TIMEOUT).
	Hang time.Duration
}

// merchantHooks is the chaos runs' merchant endpoint: it verifies every webhook's signature and
// records, per webhook-id, the deliveries it answered 2xx — the figures a merchant would count
// — while failing a share of the requests as flapping says.
type merchantHooks struct {
	secret signature.Secret

	mu        sync.Mutex
	flap      flapping
	rnd       *rand.Rand
	got       map[string]*hook // webhook-id → what arrived
	badSig    int
	failed    int // requests answered otherwise than 2xx, or not at all
	delivered int // requests answered 2xx
}

// hook is one event as the merchant received it.
type hook struct {
	Type      string
	PaymentID string
	OK        int       // deliveries answered 2xx
	First     time.Time // the first one
}

func newMerchantHooks() *merchantHooks {
	return &merchantHooks{rnd: rand.New(rand.NewPCG(1, 2)), got: map[string]*hook{}}
}

// serve serves h on a free local port until stop; url is the endpoint to register.
func (h *merchantHooks) serve() (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String() + "/hooks", func() { srv.Close() }, nil
}

func (h *merchantHooks) setFlapping(f flapping) {
	h.mu.Lock()
	h.flap = f
	h.mu.Unlock()
}

// fault draws what this request gets: "", "5xx", "timeout", "slow" or "reset".
func (h *merchantHooks) fault() (string, time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, x := h.flap, h.rnd.Float64()
	switch {
	case x < f.Fail5xx:
		return "5xx", 0
	case x < f.Fail5xx+f.Timeout:
		return "timeout", f.Hang
	case x < f.Fail5xx+f.Timeout+f.Slow:
		return "slow", time.Duration(300+h.rnd.IntN(900)) * time.Millisecond
	case x < f.Fail5xx+f.Timeout+f.Slow+f.Reset:
		return "reset", 0
	}
	return "", 0
}

func (h *merchantHooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	id := r.Header.Get("webhook-id")
	if err := signature.Verify(h.secret, id, r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature"),
		body, time.Now(), signature.DefaultTolerance); err != nil {
		h.mu.Lock()
		h.badSig++
		h.failed++
		h.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	switch fault, d := h.fault(); fault {
	case "5xx":
		h.fail()
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	case "timeout":
		h.fail()
		select {
		case <-r.Context().Done():
		case <-time.After(d):
		}
		return
	case "reset":
		h.fail()
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // RST, not FIN
			}
			c.Close()
		}
		return
	case "slow":
		time.Sleep(d)
	}
	var env struct {
		Type string `json:"type"`
		Data struct {
			PaymentID string `json:"payment_id"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &env)
	h.mu.Lock()
	h.delivered++
	k := h.got[id]
	if k == nil {
		k = &hook{Type: env.Type, PaymentID: env.Data.PaymentID, First: time.Now()}
		h.got[id] = k
	}
	k.OK++
	h.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// fail counts a request the merchant failed on purpose.
func (h *merchantHooks) fail() {
	h.mu.Lock()
	h.failed++
	h.mu.Unlock()
}

// snapshot copies what arrived.
func (h *merchantHooks) snapshot() (got map[string]hook, badSig, failed, delivered int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	got = make(map[string]hook, len(h.got))
	for id, k := range h.got {
		got[id] = *k
	}
	return got, h.badSig, h.failed, h.delivered
}
