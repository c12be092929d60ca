package chaintest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// Fault is how Proxy fails a request.
type Fault int

const (
	// FaultHTTP answers 502 Bad Gateway, like a load balancer whose node is down.
	FaultHTTP Fault = iota
	// FaultRPCError answers 200 with a JSON-RPC error (code -32000) for each call in the
	// request, batch or not, like a node that is up but cannot serve.
	FaultRPCError
)

// RPCErrorCode is the code FaultRPCError answers with.
const RPCErrorCode = -32000

// Proxy reverse-proxies JSON-RPC over HTTP to a node and fails every Nth request while failing
// is on. It counts every request it receives, failed or not.
type Proxy struct {
	srv   *httptest.Server
	proxy *httputil.ReverseProxy

	requests atomic.Int64
	failures atomic.Int64

	mu        sync.Mutex
	failing   bool
	failEvery int
	fault     Fault
}

// FlakyProxy starts a proxy to targetURL (an http:// JSON-RPC endpoint such as Chain.RPCURL)
// that fails the failEvery-th, 2*failEvery-th, ... request it receives with FaultHTTP; failing
// starts on, and failEvery <= 0 never fails. It is closed at test cleanup.
func FlakyProxy(tb testing.TB, targetURL string, failEvery int) *Proxy {
	tb.Helper()
	target, err := url.Parse(targetURL)
	if err != nil || target.Scheme == "" || target.Host == "" {
		tb.Fatalf("chaintest: proxy target %q is not a URL (err %v)", targetURL, err)
	}
	p := &Proxy{
		proxy:     httputil.NewSingleHostReverseProxy(target),
		failing:   true,
		failEvery: failEvery,
		fault:     FaultHTTP,
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	tb.Cleanup(p.srv.Close)
	return p
}

// URL is the proxy's endpoint, for ethclient.Dial or a binary's rpc_url.
func (p *Proxy) URL() string { return p.srv.URL }

// Requests is how many requests the proxy has received, the failed ones included.
func (p *Proxy) Requests() int64 { return p.requests.Load() }

// Failures is how many requests the proxy has failed.
func (p *Proxy) Failures() int64 { return p.failures.Load() }

// SetFailing switches fault injection on or off; counting goes on either way.
func (p *Proxy) SetFailing(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failing = on
}

// SetFailEvery changes N: from now on, a request fails when its number (counted since the proxy
// started) is a multiple of n. n == 1 fails every request; n <= 0 none.
func (p *Proxy) SetFailEvery(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failEvery = n
}

// SetFault chooses how requests fail.
func (p *Proxy) SetFault(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault = f
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	n := p.requests.Add(1)
	p.mu.Lock()
	fail := p.failing && p.failEvery > 0 && n%int64(p.failEvery) == 0
	fault := p.fault
	p.mu.Unlock()
	if !fail {
		p.proxy.ServeHTTP(w, r)
		return
	}
	p.failures.Add(1)
	switch fault {
	case FaultRPCError:
		writeRPCErrors(w, r)
	default:
		http.Error(w, "chaintest: injected fault", http.StatusBadGateway)
	}
}

// writeRPCErrors answers each call in the request with a JSON-RPC error carrying its id.
func writeRPCErrors(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "chaintest: read request", http.StatusBadRequest)
		return
	}
	type call struct {
		ID json.RawMessage `json:"id"`
	}
	type rpcError struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	type answer struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   rpcError        `json:"error"`
	}
	errorFor := func(c call) answer {
		id := c.ID
		if len(id) == 0 {
			id = json.RawMessage("null")
		}
		return answer{JSONRPC: "2.0", ID: id, Error: rpcError{Code: RPCErrorCode, Message: "chaintest: injected fault"}}
	}

	var out any
	if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 && trimmed[0] == '[' {
		var calls []call
		if err := json.Unmarshal(trimmed, &calls); err != nil {
			http.Error(w, "chaintest: bad batch", http.StatusBadRequest)
			return
		}
		answers := make([]answer, 0, len(calls))
		for _, c := range calls {
			answers = append(answers, errorFor(c))
		}
		out = answers
	} else {
		var c call
		if err := json.Unmarshal(trimmed, &c); err != nil {
			http.Error(w, "chaintest: bad request", http.StatusBadRequest)
			return
		}
		out = errorFor(c)
	}
	w.Header().Set("Content-Type", "application/json")
	// An error here means the client went away: there is no one left to tell.
	_ = json.NewEncoder(w).Encode(out)
}
