package chaintest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// MethodNotFoundCode is the JSON-RPC error code a Meter answers hidden methods with, the code
// geth and RPC providers answer a method they do not serve with.
const MethodNotFoundCode = -32601

// InvalidParamsCode is the JSON-RPC error code for parameters a method does not take.
const InvalidParamsCode = -32602

// Meter is a JSON-RPC over HTTP proxy to a node that counts the calls of each method and the
// time the node took to answer the requests carrying them. With HideDebug it also plays a node
// without the debug API, as most RPC providers are: it answers every debug_* call itself with
// "method not found" and passes the rest of a batch on; with RefuseStateOverride it plays a
// node whose eth_call takes no state override.
type Meter struct {
	srv    *httptest.Server
	target string
	client *http.Client

	hideDebug      atomic.Bool
	refuseOverride atomic.Bool

	mu    sync.Mutex
	calls map[string]int64
	reqs  map[string]int64
	spent map[string]time.Duration
}

// NewMeter starts a Meter in front of targetURL (an http:// JSON-RPC endpoint such as
// Chain.RPCURL); it is closed at test cleanup.
func NewMeter(tb testing.TB, targetURL string) *Meter {
	tb.Helper()
	if !strings.HasPrefix(targetURL, "http://") && !strings.HasPrefix(targetURL, "https://") {
		tb.Fatalf("chaintest: meter target %q is not an http(s) URL", targetURL)
	}
	m := &Meter{
		target: targetURL, client: &http.Client{Timeout: callTimeout},
		calls: map[string]int64{}, reqs: map[string]int64{}, spent: map[string]time.Duration{},
	}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	tb.Cleanup(m.srv.Close)
	return m
}

// URL is the meter's endpoint, for ethclient.Dial or a binary's rpc_url.
func (m *Meter) URL() string { return m.srv.URL }

// HideDebug makes the meter answer debug_* calls with "method not found" from now on.
func (m *Meter) HideDebug() { m.hideDebug.Store(true) }

// RefuseStateOverride makes the meter answer every eth_call with a third parameter (a state
// override) with "too many arguments", as a node without overrides does, from now on.
func (m *Meter) RefuseStateOverride() { m.refuseOverride.Store(true) }

// Calls is how many calls of method the meter has received (hidden ones included).
func (m *Meter) Calls(method string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[method]
}

// Requests is how many HTTP requests carried at least one call of method to the node.
func (m *Meter) Requests(method string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reqs[method]
}

// Spent is the time the node took, added up over the requests that carried a call of method
// (a batch mixing methods counts for each of them).
func (m *Meter) Spent(method string) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.spent[method]
}

// rpcCall is one JSON-RPC request object; only the fields the meter reads are decoded.
type rpcCall struct {
	ID     json.RawMessage   `json:"id"`
	Method string            `json:"method"`
	Params []json.RawMessage `json:"params"`
}

func (m *Meter) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "chaintest: read request", http.StatusBadRequest)
		return
	}
	trimmed := bytes.TrimSpace(body)
	batch := len(trimmed) > 0 && trimmed[0] == '['
	var raws []json.RawMessage
	if batch {
		err = json.Unmarshal(trimmed, &raws)
	} else {
		raws = []json.RawMessage{trimmed}
	}
	calls := make([]rpcCall, len(raws))
	for i := range raws {
		if err == nil {
			err = json.Unmarshal(raws[i], &calls[i])
		}
	}
	if err != nil {
		http.Error(w, "chaintest: bad JSON-RPC request", http.StatusBadRequest)
		return
	}

	// The calls the node answers, and the answers the meter gives itself by position.
	answers := make([]json.RawMessage, len(calls))
	var forward []json.RawMessage
	var forwarded []int
	methods := map[string]bool{}
	m.mu.Lock()
	for i, c := range calls {
		m.calls[c.Method]++
		if m.hideDebug.Load() && strings.HasPrefix(c.Method, "debug_") {
			answers[i] = errorAnswer(c, MethodNotFoundCode, fmt.Sprintf("the method %s does not exist/is not available", c.Method))
			continue
		}
		if m.refuseOverride.Load() && c.Method == "eth_call" && len(c.Params) > 2 {
			answers[i] = errorAnswer(c, InvalidParamsCode, "too many arguments, want at most 2")
			continue
		}
		forward = append(forward, raws[i])
		forwarded = append(forwarded, i)
		methods[c.Method] = true
	}
	m.mu.Unlock()

	if len(forward) > 0 {
		payload := forward[0]
		if batch {
			if payload, err = json.Marshal(forward); err != nil {
				http.Error(w, "chaintest: encode batch", http.StatusInternalServerError)
				return
			}
		}
		start := time.Now()
		resp, err := m.post(r, payload)
		spent := time.Since(start)
		if err != nil {
			http.Error(w, "chaintest: meter: "+err.Error(), http.StatusBadGateway)
			return
		}
		m.mu.Lock()
		for method := range methods {
			m.reqs[method]++
			m.spent[method] += spent
		}
		m.mu.Unlock()
		if !batch {
			answers[0] = resp
		} else if err := matchAnswers(resp, forward, forwarded, calls, answers); err != nil {
			http.Error(w, "chaintest: meter: "+err.Error(), http.StatusBadGateway)
			return
		}
	}

	w.Header().Set("Content-Type", "application/json")
	out := answers[0]
	if batch {
		if out, err = json.Marshal(answers); err != nil {
			http.Error(w, "chaintest: encode answers", http.StatusInternalServerError)
			return
		}
	}
	// An error here means the client went away: there is no one left to tell.
	_, _ = w.Write(out)
}

// post sends payload to the node and returns its answer's body.
func (m *Meter) post(r *http.Request, payload []byte) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, m.target, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("node answered %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return body, nil
}

// matchAnswers puts the node's batch answers (in any order, matched by id) at the positions of
// the calls they answer.
func matchAnswers(resp json.RawMessage, forward []json.RawMessage, forwarded []int, calls []rpcCall, answers []json.RawMessage) error {
	var got []json.RawMessage
	if err := json.Unmarshal(resp, &got); err != nil {
		return fmt.Errorf("node's batch answer: %w", err)
	}
	if len(got) != len(forward) {
		return fmt.Errorf("node answered %d of %d calls", len(got), len(forward))
	}
	byID := map[string]int{}
	for _, i := range forwarded {
		byID[string(calls[i].ID)] = i
	}
	for _, a := range got {
		var id struct {
			ID json.RawMessage `json:"id"`
		}
		if err := json.Unmarshal(a, &id); err != nil {
			return fmt.Errorf("node's answer: %w", err)
		}
		i, ok := byID[string(id.ID)]
		if !ok {
			return fmt.Errorf("node answered unknown id %s", id.ID)
		}
		answers[i] = a
	}
	return nil
}

// errorAnswer is a JSON-RPC error answer to c, as geth words one.
func errorAnswer(c rpcCall, code int, message string) json.RawMessage {
	id := c.ID
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	out, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "error": map[string]any{"code": code, "message": message}})
	return out
}
