package rest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/chains"
	"github.com/ctrip-pay/pipeline/streams"
)

// The operator overview's delivery window: the last hour in buckets of five minutes, the last
// one being the current, partial, bucket.
const (
	deliveryBucket  = 5 * time.Minute
	deliveryBuckets = 12
)

// chainHeadTimeout bounds the read of one chain's head from its node: a node that does not
// answer must not hold the whole overview.
const chainHeadTimeout = 2 * time.Second

// dlqCopies are the DLQ stream's dead-lettered originals (the rest are the advisories).
const dlqCopies = "dlq.webhooks.>"

// DeliveryBucket sums up one endpoint's attempts in one bucket of time.
type DeliveryBucket struct {
	EndpointID   string
	URL          string  // "" when the endpoint row is gone
	MerchantID   *string // nil for the default endpoint (WEBHOOK_URL)
	Start        time.Time
	Attempts     int
	Delivered    int
	LatencyAvgMS float64
	LatencyP95MS float64
}

// ChainCursor is the scanner's last committed block of a chain (chain_cursors).
type ChainCursor struct {
	ChainID   int64
	Number    int64
	Hash      string
	UpdatedAt time.Time
}

// DeadLetterCounts counts the rows of webhook_dead_letters.
type DeadLetterCounts struct {
	Total         int
	NeverReplayed int
}

// Operator is what the operator overview reads from Postgres, across merchants.
type Operator interface {
	DeliveryBuckets(ctx context.Context, since time.Time, width time.Duration) ([]DeliveryBucket, error)
	ChainCursors(ctx context.Context) ([]ChainCursor, error)
	DeadLetterCounts(ctx context.Context) (DeadLetterCounts, error)
}

// StreamReader is what the operator overview reads from JetStream. The jetstream.JetStream
// the api runs with (Config.JS) has it; a Publisher without it gets no overview.
type StreamReader interface {
	Stream(ctx context.Context, name string) (jetstream.Stream, error)
}

type consumerFigures struct {
	Stream         string     `json:"stream"`
	Name           string     `json:"name"`
	NumPending     uint64     `json:"num_pending"`
	NumAckPending  int        `json:"num_ack_pending"`
	NumRedelivered int        `json:"num_redelivered"`
	NumWaiting     int        `json:"num_waiting"`
	DeliveredSeq   uint64     `json:"delivered_stream_seq"`
	AckFloorSeq    uint64     `json:"ack_floor_stream_seq"`
	LastActive     *time.Time `json:"last_active"`
}

type streamFigures struct {
	Name      string `json:"name"`
	Exists    bool   `json:"exists"`
	Messages  uint64 `json:"messages"`
	Bytes     uint64 `json:"bytes"`
	FirstSeq  uint64 `json:"first_seq"`
	LastSeq   uint64 `json:"last_seq"`
	Consumers int    `json:"consumers"`
}

type dlqFigures struct {
	StreamMessages uint64 `json:"stream_messages"`
	Copies         uint64 `json:"dead_lettered_copies"`
	DeadLetters    int    `json:"dead_letters"`
	NeverReplayed  int    `json:"never_replayed"`
}

type bucketFigures struct {
	Start        time.Time `json:"start"`
	Attempts     int       `json:"attempts"`
	Delivered    int       `json:"delivered"`
	LatencyAvgMS *float64  `json:"latency_avg_ms"` // null for a bucket without attempts
	LatencyP95MS *float64  `json:"latency_p95_ms"`
}

type endpointFigures struct {
	EndpointID   string          `json:"endpoint_id"`
	URL          string          `json:"url"`
	MerchantID   *string         `json:"merchant_id"`
	Attempts     int             `json:"attempts"`
	Delivered    int             `json:"delivered"`
	SuccessRate  float64         `json:"success_rate"` // delivered / attempts over the window
	LatencyAvgMS float64         `json:"latency_avg_ms"`
	Buckets      []bucketFigures `json:"buckets"`
}

type deliveryFigures struct {
	WindowStart   time.Time         `json:"window_start"`
	BucketSeconds int               `json:"bucket_seconds"`
	Endpoints     []endpointFigures `json:"endpoints"`
}

type chainHeadFigures struct {
	Number     uint64    `json:"number"`
	Hash       string    `json:"hash"`
	Time       time.Time `json:"time"`
	AgeSeconds float64   `json:"age_seconds"`
}

type chainCursorFigures struct {
	Number    int64     `json:"number"`
	Hash      string    `json:"hash"`
	UpdatedAt time.Time `json:"updated_at"`
}

type chainFigures struct {
	ChainID    int64               `json:"chain_id"`
	Name       string              `json:"name"`
	Head       *chainHeadFigures   `json:"head"`
	HeadError  *string             `json:"head_error"`
	Cursor     *chainCursorFigures `json:"cursor"`
	ScannerLag *int64              `json:"scanner_lag_blocks"` // head − cursor, when both are known
}

type operatorOverview struct {
	Object      string            `json:"object"`
	GeneratedAt time.Time         `json:"generated_at"`
	Streams     []streamFigures   `json:"streams"`
	Consumers   []consumerFigures `json:"consumers"`
	DLQ         dlqFigures        `json:"dlq"`
	Deliveries  deliveryFigures   `json:"deliveries"`
	Chains      []chainFigures    `json:"chains"`
}

// operatorOverview answers what an operator watches (admin only): every durable consumer's
// pending and ack-pending messages, the DLQ's depth, each endpoint's delivery success rate and
// latency over the last hour in five-minute buckets, and each chain's head (read from its
// node), head age and how far the scanner is behind it.
func (h *Handler) operatorOverview(w http.ResponseWriter, r *http.Request, _ string) *apiError {
	if e := onlyParams(r); e != nil {
		return e
	}
	js, ok := h.cfg.JS.(StreamReader)
	if !ok {
		return h.internalError(r, errors.New("rest: the JetStream publisher cannot read streams"))
	}
	ctx := r.Context()
	now := time.Now().UTC()
	out := operatorOverview{Object: "operator_overview", GeneratedAt: now, Streams: []streamFigures{}, Consumers: []consumerFigures{}}
	for _, name := range []string{streams.Payments, streams.Chain, streams.Webhooks, streams.DLQ} {
		sf, cs, dlq, err := readStream(ctx, js, name)
		if err != nil {
			return h.storeError(r, err)
		}
		out.Streams = append(out.Streams, sf)
		out.Consumers = append(out.Consumers, cs...)
		if name == streams.DLQ {
			out.DLQ.StreamMessages, out.DLQ.Copies = sf.Messages, dlq
		}
	}
	counts, err := h.cfg.Store.DeadLetterCounts(ctx)
	if err != nil {
		return h.storeError(r, err)
	}
	out.DLQ.DeadLetters, out.DLQ.NeverReplayed = counts.Total, counts.NeverReplayed

	since := now.Truncate(deliveryBucket).Add(-(deliveryBuckets - 1) * deliveryBucket)
	buckets, err := h.cfg.Store.DeliveryBuckets(ctx, since, deliveryBucket)
	if err != nil {
		return h.storeError(r, err)
	}
	out.Deliveries = deliveryOverview(since, buckets)

	cursors, err := h.cfg.Store.ChainCursors(ctx)
	if err != nil {
		return h.storeError(r, err)
	}
	out.Chains = h.chainOverview(ctx, now, cursors)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// readStream returns the stream's figures, its consumers' and how many of its messages are
// dead-lettered copies (DLQ). A stream not created yet is reported as missing.
func readStream(ctx context.Context, js StreamReader, name string) (streamFigures, []consumerFigures, uint64, error) {
	sf := streamFigures{Name: name}
	s, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return sf, nil, 0, nil
	}
	if err != nil {
		return sf, nil, 0, fmt.Errorf("stream %s: %w", name, err)
	}
	var opts []jetstream.StreamInfoOpt
	if name == streams.DLQ {
		opts = append(opts, jetstream.WithSubjectFilter(dlqCopies))
	}
	info, err := s.Info(ctx, opts...)
	if err != nil {
		return sf, nil, 0, fmt.Errorf("stream %s info: %w", name, err)
	}
	st := info.State
	sf = streamFigures{Name: name, Exists: true, Messages: st.Msgs, Bytes: st.Bytes, FirstSeq: st.FirstSeq, LastSeq: st.LastSeq, Consumers: st.Consumers}
	var copies uint64
	for _, n := range st.Subjects {
		copies += n
	}
	var cs []consumerFigures
	list := s.ListConsumers(ctx)
	for ci := range list.Info() {
		if ci.Config.Durable == "" {
			continue // an ephemeral consumer (the nats CLI's, a test's) is nobody's queue
		}
		cs = append(cs, consumerFigures{Stream: name, Name: ci.Name, NumPending: ci.NumPending, NumAckPending: ci.NumAckPending,
			NumRedelivered: ci.NumRedelivered, NumWaiting: ci.NumWaiting, DeliveredSeq: ci.Delivered.Stream,
			AckFloorSeq: ci.AckFloor.Stream, LastActive: ci.Delivered.Last})
	}
	if err := list.Err(); err != nil {
		return sf, nil, 0, fmt.Errorf("consumers of %s: %w", name, err)
	}
	slices.SortFunc(cs, func(a, b consumerFigures) int { return cmp.Compare(a.Name, b.Name) })
	return sf, cs, copies, nil
}

// deliveryOverview lays the store's buckets out per endpoint, every bucket of the window
// present (empty ones with no latency), endpoints by attempts, most first.
func deliveryOverview(since time.Time, rows []DeliveryBucket) deliveryFigures {
	out := deliveryFigures{WindowStart: since, BucketSeconds: int(deliveryBucket / time.Second), Endpoints: []endpointFigures{}}
	index := map[string]int{}
	var latencySum []float64
	for _, b := range rows {
		i, ok := index[b.EndpointID]
		if !ok {
			i = len(out.Endpoints)
			index[b.EndpointID] = i
			ef := endpointFigures{EndpointID: b.EndpointID, URL: b.URL, MerchantID: b.MerchantID, Buckets: make([]bucketFigures, deliveryBuckets)}
			for k := range ef.Buckets {
				ef.Buckets[k].Start = since.Add(time.Duration(k) * deliveryBucket)
			}
			out.Endpoints = append(out.Endpoints, ef)
			latencySum = append(latencySum, 0)
		}
		k := int(b.Start.Sub(since) / deliveryBucket)
		if k < 0 || k >= deliveryBuckets {
			continue // an attempt stamped in the future (clock skew between hosts)
		}
		ef := &out.Endpoints[i]
		avg, p95 := b.LatencyAvgMS, b.LatencyP95MS
		ef.Buckets[k].Attempts, ef.Buckets[k].Delivered = b.Attempts, b.Delivered
		ef.Buckets[k].LatencyAvgMS, ef.Buckets[k].LatencyP95MS = &avg, &p95
		ef.Attempts += b.Attempts
		ef.Delivered += b.Delivered
		latencySum[i] += avg * float64(b.Attempts)
	}
	for i := range out.Endpoints {
		if ef := &out.Endpoints[i]; ef.Attempts > 0 {
			ef.SuccessRate = float64(ef.Delivered) / float64(ef.Attempts)
			ef.LatencyAvgMS = latencySum[i] / float64(ef.Attempts)
		}
	}
	slices.SortStableFunc(out.Endpoints, func(a, b endpointFigures) int { return b.Attempts - a.Attempts })
	return out
}

// chainOverview reads each configured chain's head from its node, next to the scanner's cursor.
// A node that cannot be read is reported (head_error), not an error of the overview.
func (h *Handler) chainOverview(ctx context.Context, now time.Time, cursors []ChainCursor) []chainFigures {
	out := make([]chainFigures, 0, len(h.cfg.Chains.Chains))
	for _, c := range h.cfg.Chains.Chains {
		cf := chainFigures{ChainID: c.ID, Name: c.Name}
		if i := slices.IndexFunc(cursors, func(k ChainCursor) bool { return k.ChainID == c.ID }); i >= 0 {
			k := cursors[i]
			cf.Cursor = &chainCursorFigures{Number: k.Number, Hash: k.Hash, UpdatedAt: k.UpdatedAt}
		}
		head, err := readHead(ctx, c)
		if err != nil {
			msg := withoutURL(err)
			cf.HeadError = &msg
			h.cfg.Log.WarnContext(ctx, "operator overview: chain head unreadable", "chain_id", c.ID, "err", msg)
		} else {
			head.AgeSeconds = max(0, now.Sub(head.Time).Seconds())
			cf.Head = head
			if cf.Cursor != nil {
				lag := int64(head.Number) - cf.Cursor.Number
				cf.ScannerLag = &lag
			}
		}
		out = append(out, cf)
	}
	return out
}

// readHead asks the chain's node for its latest block header.
func readHead(ctx context.Context, c chains.Chain) (*chainHeadFigures, error) {
	ctx, cancel := context.WithTimeout(ctx, chainHeadTimeout)
	defer cancel()
	client, err := ethclient.DialContext(ctx, c.RPCURL)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	hd, err := client.HeaderByNumber(ctx, nil)
	if err != nil {
		return nil, err
	}
	return &chainHeadFigures{Number: hd.Number.Uint64(), Hash: hd.Hash().Hex(), Time: time.Unix(int64(hd.Time), 0).UTC()}, nil
}

// withoutURL is err's text without the node's URL, which may carry a provider's key
// (https://host/v3/<key>): neither the answer nor the log may show it.
func withoutURL(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return "the chain's node did not answer: " + ue.Err.Error()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "the chain's node did not answer in time"
	}
	return "the chain's node could not be read"
}
