package chains

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/rpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/ctrip-pay/pipeline/shared/telemetry"
)

// DialRPC connects to the chain's rpc_url. Over HTTP(S) every request is measured (RPCMetrics);
// a ws:// or IPC endpoint is dialled as it is, unmeasured. m nil: no metrics.
func DialRPC(ctx context.Context, c Chain, m metric.Meter) (*rpc.Client, error) {
	if !strings.HasPrefix(c.RPCURL, "http://") && !strings.HasPrefix(c.RPCURL, "https://") {
		return rpc.DialContext(ctx, c.RPCURL)
	}
	t, err := NewRPCMetrics(m, c.ID, http.DefaultTransport)
	if err != nil {
		return nil, err
	}
	return rpc.DialOptions(ctx, c.RPCURL, rpc.WithHTTPClient(&http.Client{Transport: t}))
}

// RPCMetrics is an http.RoundTripper for a JSON-RPC client that measures every request, after
// OpenTelemetry's RPC conventions:
//
//	rpc.client.duration     histogram (s): request sent to response body read
//	ctrip.rpc.client.errors counter: requests that failed
//
// both labelled rpc.system=jsonrpc, rpc.method, chain_id (and error.type on failures). A batch
// is one HTTP request and so one measurement: its method is the elements' method when they all
// share one (a batch of eth_getBlockByNumber is labelled that), "batch" when they mix, with
// rpc.jsonrpc.batch=true — the latency of one element inside a batch is not observable, and a
// label per element would count one request many times. error.type is "transport" (no
// response), "http_<status>" (a non-2xx answer) or "jsonrpc" (a JSON-RPC error object in the
// response, in any element of a batch: found by scanning the body as the client reads it,
// without a second parse).
type RPCMetrics struct {
	next     http.RoundTripper
	chain    attribute.KeyValue
	duration metric.Float64Histogram
	errors   metric.Int64Counter
}

// NewRPCMetrics measures requests to chain chainID made through next.
func NewRPCMetrics(m metric.Meter, chainID int64, next http.RoundTripper) (*RPCMetrics, error) {
	if m == nil {
		m = noop.NewMeterProvider().Meter("chains")
	}
	t := &RPCMetrics{next: next, chain: attribute.Int64("chain_id", chainID)}
	var err error
	if t.duration, err = m.Float64Histogram("rpc.client.duration", metric.WithUnit("s"), telemetry.DurationBuckets,
		metric.WithDescription("Chain JSON-RPC request latency, to the end of the response body")); err != nil {
		return nil, err
	}
	if t.errors, err = m.Int64Counter("ctrip.rpc.client.errors", metric.WithUnit("{request}"),
		metric.WithDescription("Chain JSON-RPC requests that failed: error.type transport, http_<status> or jsonrpc")); err != nil {
		return nil, err
	}
	return t, nil
}

// RoundTrip implements http.RoundTripper.
func (t *RPCMetrics) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	method, batch := "unknown", false
	if req.Body != nil && req.Body != http.NoBody {
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		method, batch = rpcMethod(body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	attrs := []attribute.KeyValue{attribute.String("rpc.system", "jsonrpc"), attribute.String("rpc.method", method), t.chain}
	if batch {
		attrs = append(attrs, attribute.Bool("rpc.jsonrpc.batch", true))
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		t.record(req.Context(), start, attrs, "transport")
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		t.record(req.Context(), start, attrs, "http_"+strconv.Itoa(resp.StatusCode))
		return resp, nil
	}
	resp.Body = &measuredBody{ReadCloser: resp.Body, done: func(errType string) { t.record(req.Context(), start, attrs, errType) }}
	return resp, nil
}

func (t *RPCMetrics) record(ctx context.Context, start time.Time, attrs []attribute.KeyValue, errType string) {
	if errType != "" {
		attrs = append(attrs[:len(attrs):len(attrs)], attribute.String("error.type", errType))
		t.errors.Add(ctx, 1, metric.WithAttributes(attrs...))
	}
	t.duration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(attrs...))
}

// rpcMethod reads the method of a JSON-RPC request body, or of a batch: the elements' method
// when they share one, else "batch".
func rpcMethod(body []byte) (method string, batch bool) {
	body = bytes.TrimLeft(body, " \t\r\n")
	if len(body) > 0 && body[0] == '[' {
		var calls []struct {
			Method string `json:"method"`
		}
		if json.Unmarshal(body, &calls) != nil || len(calls) == 0 {
			return "batch", true
		}
		for _, c := range calls[1:] {
			if c.Method != calls[0].Method {
				return "batch", true
			}
		}
		return boundedMethod(calls[0].Method), true
	}
	var call struct {
		Method string `json:"method"`
	}
	if json.Unmarshal(body, &call) != nil {
		return "unknown", false
	}
	return boundedMethod(call.Method), false
}

// boundedMethod keeps the label's values few: JSON-RPC method names are namespace_name
// identifiers; anything else (which a caller of ours never sends) is "unknown".
func boundedMethod(m string) string {
	if m == "" || len(m) > 64 {
		return "unknown"
	}
	for _, r := range m {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return "unknown"
		}
	}
	return m
}

// measuredBody records the request when the client has read the response to its end (or
// closed it early), noting on the way whether it holds a JSON-RPC error object.
type measuredBody struct {
	io.ReadCloser
	scan  errorScan
	once  sync.Once
	done  func(errType string)
	ended bool
}

func (b *measuredBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.scan.feed(p[:n])
	if err != nil {
		errType := ""
		switch {
		case !errors.Is(err, io.EOF):
			errType = "transport"
		case b.scan.found:
			errType = "jsonrpc"
		}
		b.once.Do(func() { b.done(errType) })
	}
	return n, err
}

func (b *measuredBody) Close() error {
	err := b.ReadCloser.Close()
	errType := ""
	if b.scan.found {
		errType = "jsonrpc"
	}
	b.once.Do(func() { b.done(errType) })
	return err
}

// errorScan finds `"error":` followed by optional white space and `{` in a stream of chunks:
// the key of a JSON-RPC error object. Results of the eth namespace hold hex strings, and a
// tracer's "error" field is a string, so the pattern does not occur inside a successful answer.
type errorScan struct {
	matched int  // bytes of errorKey matched so far
	key     bool // errorKey matched: skipping white space to the value
	found   bool
}

const errorKey = `"error":`

func (s *errorScan) feed(p []byte) {
	for i := 0; i < len(p); i++ {
		if s.found {
			return
		}
		if s.matched == 0 && !s.key {
			// Between matches only a quote can start one: skip to it (hex strings are most
			// of an answer).
			j := bytes.IndexByte(p[i:], '"')
			if j < 0 {
				return
			}
			i += j
		}
		c := p[i]
		if s.key {
			switch c {
			case ' ', '\t', '\r', '\n':
				continue
			case '{':
				s.found = true
				return
			}
			s.key = false
		}
		switch {
		case c == errorKey[s.matched]:
			s.matched++
		case c == errorKey[0]:
			s.matched = 1
		default:
			s.matched = 0
		}
		if s.matched == len(errorKey) {
			s.key, s.matched = true, 0
		}
	}
}
