package webhook

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/ctrip-pay/pipeline/shared/signature"
)

// The HTTP attempt: one signed POST to the merchant, as an adapter of the delivery stage.

type postResult struct {
	status     int
	latency    time.Duration
	body       string
	err        string
	retryAfter time.Duration
}

// postInSlot waits for a place in the endpoint's lane and under the global limit, and POSTs.
// The places are held for the request only: recording the attempt happens after, so the
// limits bound HTTP requests, not database writes.
func (d *Deliverer) postInSlot(ctx context.Context, ln *lane, ce cachedEndpoint, eventID string, body []byte) (postResult, bool) {
	select {
	case ln.slots <- struct{}{}:
	case <-ctx.Done():
		return postResult{}, false
	}
	defer func() { <-ln.slots }()
	select {
	case d.inflight <- struct{}{}:
	case <-ctx.Done():
		return postResult{}, false
	}
	defer func() { <-d.inflight }()
	return d.post(ctx, ce, eventID, body), true
}

func (d *Deliverer) post(ctx context.Context, ce cachedEndpoint, eventID string, body []byte) postResult {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ce.ep.URL, bytes.NewReader(body))
	if err != nil {
		return postResult{err: "building request: " + err.Error()}
	}
	now := time.Now()
	// Keys already in canonical form, set directly: Header.Set would canonicalize (and allocate)
	// each lower-case Standard Webhooks name on every request.
	h := req.Header
	h["Content-Type"] = []string{"application/json"}
	h["User-Agent"] = []string{"ctrip-webhooks/1"}
	h["Webhook-Id"] = []string{eventID}
	h["Webhook-Timestamp"] = []string{strconv.FormatInt(now.Unix(), 10)}
	h["Webhook-Signature"] = []string{signature.Header(ce.keys, eventID, now, body)}
	if ce.ep.LegacySignature {
		h["X-Webhook-Signature"] = []string{signature.Legacy(ce.legacy, body)}
	}
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(h))
	start := time.Now()
	resp, err := d.client.Do(req)
	if err != nil {
		return postResult{latency: time.Since(start), err: err.Error()}
	}
	defer resp.Body.Close()
	snippet := readSnippet(resp.Body)
	// Drain a little more so the connection can be reused; a huge body just closes it.
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	return postResult{
		status: resp.StatusCode, latency: time.Since(start), body: snippet,
		retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
}

// snippetBufs are the buffers readSnippet reads into.
var snippetBufs = sync.Pool{New: func() any { return new([maxResponseBody]byte) }}

// readSnippet reads the first maxResponseBody bytes of a response body; an empty body (the
// common answer) allocates nothing.
func readSnippet(body io.Reader) string {
	buf := snippetBufs.Get().(*[maxResponseBody]byte)
	defer snippetBufs.Put(buf)
	n, _ := io.ReadFull(body, buf[:])
	return string(buf[:n])
}

// parseRetryAfter reads delay-seconds or an HTTP date; anything else is 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
