package rest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/ctrip-pay/pipeline/services/api/internal/amount"
	"github.com/ctrip-pay/pipeline/services/api/internal/wallet"
	"github.com/ctrip-pay/pipeline/shared/chains"
	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/outbox"
)

// Bounds of a payment's lifetime (expires_in_seconds and PAYMENT_EXPIRY).
const (
	MinPaymentTTL = time.Minute
	MaxPaymentTTL = 7 * 24 * time.Hour
)

const (
	maxMetadataBytes  = 4 << 10
	maxIdempotencyKey = 255
	// HeaderIdempotencyKey makes POST /v1/payments safe to retry.
	HeaderIdempotencyKey = "Idempotency-Key"
	headerReplayed       = "Idempotent-Replayed"
)

var errInvalidChild = wallet.ErrInvalidChild

// Statuses a payment can have (DESIGN.md, "Payment statuses").
var paymentStatuses = []string{event.StatusPending, event.StatusDetected, event.StatusConfirmed, event.StatusSwept, event.StatusExpired}

type createPaymentRequest struct {
	ChainID          *int64          `json:"chain_id"`
	Token            *string         `json:"token"`
	Amount           *string         `json:"amount"`
	ExpiresInSeconds *int64          `json:"expires_in_seconds"`
	Metadata         json.RawMessage `json:"metadata"`
}

// newPayment is a validated create request.
type newPayment struct {
	chain    chains.Chain
	token    chains.Token
	amount   *big.Int
	ttl      time.Duration
	metadata json.RawMessage
	hash     []byte // identifies the request for Idempotency-Key reuse
}

func (h *Handler) validatePayment(req createPaymentRequest) (newPayment, *apiError) {
	var np newPayment
	if req.ChainID == nil {
		return np, invalid("chain_id", "invalid_chain_id", "is required")
	}
	chain, ok := h.cfg.Chains.Chain(*req.ChainID)
	if !ok {
		return np, invalid("chain_id", "unsupported_chain", fmt.Sprintf("%d is not a chain this gateway follows", *req.ChainID))
	}
	if req.Token == nil || *req.Token == "" {
		return np, invalid("token", "invalid_token", "is required")
	}
	token, ok := chain.Token(*req.Token)
	if !ok || len(*req.Token) > 32 {
		return np, invalid("token", "unsupported_token", fmt.Sprintf("is not a token configured on chain %d (%s)", chain.ID, strings.Join(symbols(chain), ", ")))
	}
	if req.Amount == nil {
		return np, invalid("amount", "invalid_amount", "is required")
	}
	v, err := amount.Parse(*req.Amount, token.Decimals)
	if err != nil {
		msg := err.Error()
		if errors.Is(err, amount.ErrTooManyDigit) {
			msg = fmt.Sprintf("has more fractional digits than %s's %d decimals", token.Symbol, token.Decimals)
		}
		return np, invalid("amount", "invalid_amount", msg)
	}
	ttl := h.cfg.DefaultTTL
	if req.ExpiresInSeconds != nil {
		s := *req.ExpiresInSeconds
		if s < int64(MinPaymentTTL/time.Second) || s > int64(MaxPaymentTTL/time.Second) {
			return np, invalid("expires_in_seconds", "invalid_expires_in_seconds",
				fmt.Sprintf("must be between %d and %d", int64(MinPaymentTTL/time.Second), int64(MaxPaymentTTL/time.Second)))
		}
		ttl = time.Duration(s) * time.Second
	}
	meta, canonical, e := validateMetadata(req.Metadata)
	if e != nil {
		return np, e
	}
	// "12.5" and "12.50" are the same request; so are metadata objects that differ only in key
	// order or spacing.
	hashed, err := json.Marshal(struct {
		ChainID  int64           `json:"chain_id"`
		Token    string          `json:"token"`
		Amount   string          `json:"amount_base_units"`
		Expires  *int64          `json:"expires_in_seconds"`
		Metadata json.RawMessage `json:"metadata"`
	}{chain.ID, token.Symbol, v.String(), req.ExpiresInSeconds, canonical})
	if err != nil {
		return np, invalid("metadata", "invalid_metadata", "is not valid JSON")
	}
	sum := sha256.Sum256(hashed)
	return newPayment{chain: chain, token: token, amount: v, ttl: ttl, metadata: meta, hash: sum[:]}, nil
}

func symbols(c chains.Chain) []string {
	out := []string{c.Native.Symbol}
	for _, t := range c.Tokens {
		out = append(out, t.Symbol)
	}
	return out
}

// validateMetadata returns the compact object to store and a canonical form (sorted keys,
// numbers as written) to hash.
func validateMetadata(raw json.RawMessage) (json.RawMessage, json.RawMessage, *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage(`{}`), json.RawMessage(`{}`), nil
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return nil, nil, invalid("metadata", "invalid_metadata", "is not valid JSON")
	}
	if compact.Len() > maxMetadataBytes {
		return nil, nil, invalid("metadata", "invalid_metadata", fmt.Sprintf("is larger than %d bytes", maxMetadataBytes))
	}
	dec := json.NewDecoder(bytes.NewReader(compact.Bytes()))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, nil, invalid("metadata", "invalid_metadata", "must be a JSON object")
	}
	// Go's decoder has quietly turned unpaired surrogates and invalid UTF-8 into U+FFFD, but
	// what is stored is the compact text, which still holds them: check the text itself.
	if path, problem := checkJSONText(compact.Bytes(), "metadata"); problem != "" {
		return nil, nil, invalid(path, "invalid_metadata", problem)
	}
	canonical, err := json.Marshal(obj)
	if err != nil {
		return nil, nil, invalid("metadata", "invalid_metadata", "is not valid JSON")
	}
	return compact.Bytes(), canonical, nil
}

// Bounds of a JSON number in stored JSON. Postgres keeps a jsonb number as numeric, which fails
// ("value overflows numeric format") past about 131072 digits before the point or 16383 after
// it — and 4 KiB of metadata can ask for far more with an exponent: 1e1000000. The bound is
// tighter than Postgres's so that it is simple to state and leaves room: at most
// maxNumberDigits significant digits (from the first non-zero digit to the last digit written)
// and, with the mantissa normalised to d.ddd, a decimal exponent within ±maxNumberExponent
// (1e1000 and 1e-1000 pass, 1e1001, 10e1000 and 0.1e-1000 do not). A zero passes when its written
// exponent is within the same bound. Every float64 and every integer up to 100 digits fits.
const (
	maxNumberDigits   = 100
	maxNumberExponent = 1000
)

// problemDuplicate is checkJSONText's problem with a key given twice in one object.
const problemDuplicate = "is given more than once"

// checkJSONText walks data, which must be valid JSON, and returns where (a path from root,
// such as metadata.items.0.name) and what is wrong with the first thing Postgres would refuse
// in a jsonb: a string holding \u0000, an unpaired UTF-16 surrogate escape or invalid UTF-8,
// or a number outside the bounds above; or a key given twice in one object (problemDuplicate,
// reported at that member). A bad object key is reported at the object that holds it. problem
// is "" when there is nothing wrong.
//
// encoding/json's tokenizer does the walking; strings are checked in their raw text (the
// decoder would hand them back with U+FFFD in place of what is wrong), numbers as written.
func checkJSONText(data []byte, root string) (path, problem string) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type container struct {
		path  string
		array bool
		n     int             // next element's index (arrays)
		key   string          // the pending member's key (objects)
		isKey bool            // the next string is a key (objects)
		seen  map[string]bool // the keys read so far (objects)
	}
	var stack []*container
	// here is the path of the value the next token starts, and marks an object's key as read.
	here := func() string {
		if len(stack) == 0 {
			return root
		}
		c := stack[len(stack)-1]
		if c.array {
			c.n++
			return c.path + "." + strconv.Itoa(c.n-1)
		}
		c.isKey = true
		return c.path + "." + c.key
	}
	end := dec.InputOffset()
	for {
		start := end
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return "", ""
		}
		if err != nil {
			return root, "is not valid JSON"
		}
		end = dec.InputOffset()
		if d, ok := tok.(json.Delim); ok {
			if d == '}' || d == ']' {
				stack = stack[:len(stack)-1]
				continue
			}
			stack = append(stack, &container{path: here(), array: d == '[', isKey: d == '{', seen: map[string]bool{}})
			continue
		}
		if len(stack) > 0 && stack[len(stack)-1].isKey {
			c := stack[len(stack)-1]
			if problem := rawStringProblem(data[start:end]); problem != "" {
				return c.path, "has a key that " + problem
			}
			c.key, c.isKey = tok.(string), false
			if c.seen[c.key] {
				// Postgres's jsonb and Go's decoder would keep the last silently; which one the
				// sender meant is anyone's guess.
				return c.path + "." + c.key, problemDuplicate
			}
			c.seen[c.key] = true
			continue
		}
		path := here()
		switch v := tok.(type) {
		case string:
			if problem := rawStringProblem(data[start:end]); problem != "" {
				return path, problem
			}
		case json.Number:
			if problem := numberProblem(string(v)); problem != "" {
				return path, problem
			}
		}
	}
}

// rawStringProblem checks the string literal at the end of raw (the text between two tokens:
// delimiters and spaces, then the literal).
func rawStringProblem(raw []byte) string {
	q := bytes.IndexByte(raw, '"')
	if q < 0 {
		return "is not valid JSON"
	}
	s := jsonText{b: raw, i: q}
	return s.str()
}

type jsonText struct {
	b []byte
	i int
}

// str consumes a string and says what Postgres would refuse in it.
func (s *jsonText) str() string {
	s.i++ // opening quote
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return ""
		case c == '\\':
			if s.i+1 < len(s.b) && s.b[s.i+1] != 'u' {
				s.i += 2
				continue
			}
			r, ok := s.hex4(s.i)
			if !ok {
				return "is not valid JSON"
			}
			s.i += 6
			switch {
			case r == 0:
				return "holds a NUL character (\\u0000), which cannot be stored"
			case r >= 0xdc00 && r <= 0xdfff:
				return "holds an unpaired UTF-16 low surrogate escape, which is not a character"
			case r >= 0xd800 && r <= 0xdbff:
				if lo, ok := s.hex4(s.i); ok && lo >= 0xdc00 && lo <= 0xdfff {
					s.i += 6
					continue
				}
				return "holds an unpaired UTF-16 high surrogate escape, which is not a character"
			}
		case c < utf8.RuneSelf:
			s.i++
		default:
			r, size := utf8.DecodeRune(s.b[s.i:])
			if r == utf8.RuneError && size == 1 {
				return "is not valid UTF-8"
			}
			s.i += size
		}
	}
	return "is not valid JSON"
}

// hex4 reads the \uXXXX escape at i.
func (s *jsonText) hex4(i int) (rune, bool) {
	if i+6 > len(s.b) || s.b[i] != '\\' || s.b[i+1] != 'u' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(s.b[i+2:i+6]), 16, 16)
	return rune(n), err == nil
}

// numberProblem checks a number literal (-?int(.frac)?([eE][+-]?exp)?) against the bounds.
func numberProblem(lit string) string {
	s := &jsonText{b: []byte(lit)}
	digits := func() []byte {
		start := s.i
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
		}
		return s.b[start:s.i]
	}
	if s.b[s.i] == '-' {
		s.i++
	}
	intPart := digits()
	var frac []byte
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		frac = digits()
	}
	var exp int64
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		neg := false
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			neg = s.b[s.i] == '-'
			s.i++
		}
		for _, d := range digits() {
			// Saturate far past any bound (the shift below is at most maxBody places): the
			// number is refused however long its exponent, and exp cannot overflow.
			if exp < 1<<32 {
				exp = exp*10 + int64(d-'0')
			}
		}
		if neg {
			exp = -exp
		}
	}
	leading := 0 // zeros before the first significant digit, across the point
	for leading < len(intPart)+len(frac) {
		var d byte
		if leading < len(intPart) {
			d = intPart[leading]
		} else {
			d = frac[leading-len(intPart)]
		}
		if d != '0' {
			break
		}
		leading++
	}
	significant := len(intPart) + len(frac) - leading
	// Normalised to d.ddd × 10^e: the first significant digit has the place value
	// 10^(len(intPart)-leading-1), times 10^exp. A zero has no digit to normalise.
	e := exp
	if significant > 0 {
		e += int64(len(intPart) - leading - 1)
	}
	if significant > maxNumberDigits || e > maxNumberExponent || e < -maxNumberExponent {
		return fmt.Sprintf("is a number that cannot be stored: at most %d significant digits and a decimal exponent within ±%d",
			maxNumberDigits, maxNumberExponent)
	}
	return ""
}

func validIdempotencyKey(k string) bool {
	if len(k) > maxIdempotencyKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

func (h *Handler) createPayment(w http.ResponseWriter, r *http.Request, merchantID string) *apiError {
	var req createPaymentRequest
	if e := onlyParams(r); e != nil {
		return e
	}
	if e := decode(w, r, &req, false); e != nil {
		return e
	}
	np, e := h.validatePayment(req)
	if e != nil {
		return e
	}
	var idemKey *string
	if vs, ok := r.Header[HeaderIdempotencyKey]; ok {
		if len(vs) != 1 || vs[0] == "" || !validIdempotencyKey(vs[0]) {
			return invalid(HeaderIdempotencyKey, "invalid_idempotency_key",
				fmt.Sprintf("must be one value of 1 to %d printable ASCII characters without spaces", maxIdempotencyKey))
		}
		idemKey = &vs[0]
		existing, err := h.cfg.Store.PaymentByIdempotencyKey(r.Context(), merchantID, *idemKey)
		if err == nil {
			return h.replayPayment(w, existing, np)
		}
		if !errors.Is(err, ErrNotFound) {
			return h.storeError(r, err)
		}
	}

	index, address, err := h.allocateAddress(r)
	if err != nil {
		return h.internalError(r, err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond) // Postgres keeps microseconds
	p := Payment{
		PaymentCore: event.PaymentCore{
			ID: event.NewID("pay"), MerchantID: merchantID, Status: event.StatusPending, ChainID: np.chain.ID,
			Token: np.token.Symbol, Decimals: np.token.Decimals, Address: address, AddressIndex: index,
			Amount: np.amount, Received: new(big.Int), Confirmed: new(big.Int), Swept: new(big.Int),
			Metadata: np.metadata, ExpiresAt: now.Add(np.ttl),
		},
		IdempotencyKey: idemKey, RequestHash: np.hash, CreatedAt: now, UpdatedAt: now, Transfers: []Transfer{},
	}
	if !np.token.IsNative() {
		c := strings.ToLower(np.token.Contract)
		p.TokenContract = &c
	}
	// This request's span is the root of the payment's trace (its context is stored with the
	// row); payment.id is how an operator finds the trace (scripts/trace-tree.sh).
	trace.SpanFromContext(r.Context()).SetAttributes(attribute.String("payment.id", p.ID))
	msg, err := h.createdEvent(r, p, np.chain)
	if err != nil {
		return h.internalError(r, err)
	}
	stored, created, err := h.cfg.Store.CreatePayment(r.Context(), p, msg)
	if err != nil {
		return h.storeError(r, err)
	}
	if !created {
		// A concurrent request with the same key committed first; this one wrote nothing.
		return h.replayPayment(w, stored, np)
	}
	h.cfg.OutboxWake()
	h.cfg.Log.InfoContext(r.Context(), "payment created", "merchant_id", merchantID, "payment_id", p.ID,
		"event_id", msg.EventID, "chain_id", p.ChainID, "token", p.Token, "address_index", index)
	writeJSON(w, http.StatusCreated, h.paymentJSON(stored))
	return nil
}

// replayPayment answers a retried create: the same request gets the payment it created, another
// request under the same key is refused.
func (h *Handler) replayPayment(w http.ResponseWriter, existing Payment, np newPayment) *apiError {
	if !bytes.Equal(existing.RequestHash, np.hash) {
		return &apiError{Status: http.StatusConflict, Code: "idempotency_conflict", Field: HeaderIdempotencyKey,
			Message: "this Idempotency-Key was used with a different request; use a new key for a new payment"}
	}
	w.Header().Set(headerReplayed, "true")
	writeJSON(w, http.StatusCreated, h.paymentJSON(existing))
	return nil
}

// allocateAddress takes a fresh index from the sequence and derives its address. BIP-32 skips
// an index with no valid child key (odds about 2^-127); so do we.
func (h *Handler) allocateAddress(r *http.Request) (int64, string, error) {
	for range 3 {
		index, err := h.cfg.Store.NextAddressIndex(r.Context())
		if err != nil {
			return 0, "", err
		}
		addr, err := h.cfg.Wallet.Address(index)
		if err == nil {
			return index, strings.ToLower(addr.Hex()), nil
		}
		if !errors.Is(err, errInvalidChild) {
			return 0, "", fmt.Errorf("derive address %d: %w", index, err)
		}
		h.cfg.Log.WarnContext(r.Context(), "BIP-32 index has no valid child key; skipping", "address_index", index)
	}
	return 0, "", errors.New("derive address: no valid child key in 3 indexes")
}

// createdEvent builds the payments.created outbox message: Nats-Msg-Id "<payment_id>.created",
// the event type and this request's trace context.
func (h *Handler) createdEvent(r *http.Request, p Payment, chain chains.Chain) (outbox.Message, error) {
	return outbox.NewMessage(r.Context(), event.SubjectCreated, p.ID+".created", event.NewPayment(event.PaymentRow{
		ID: p.ID, MerchantID: p.MerchantID, Status: p.Status, ChainID: p.ChainID, Chain: chain.Name,
		Address: p.Address, Token: p.Token, TokenContract: p.TokenContract, Decimals: p.Decimals,
		Amount: p.Amount, Metadata: p.Metadata, ExpiresAt: p.ExpiresAt,
	}))
}

type paymentResponse struct {
	ID                       string             `json:"id"`
	Object                   string             `json:"object"`
	Status                   string             `json:"status"`
	ChainID                  int64              `json:"chain_id"`
	Chain                    string             `json:"chain"`
	Token                    string             `json:"token"`
	TokenContract            *string            `json:"token_contract"`
	Decimals                 int                `json:"decimals"`
	Address                  string             `json:"address"`
	Amount                   string             `json:"amount"`
	AmountBaseUnits          string             `json:"amount_base_units"`
	AmountReceived           string             `json:"amount_received"`
	AmountReceivedBaseUnits  string             `json:"amount_received_base_units"`
	AmountConfirmedBaseUnits string             `json:"amount_confirmed_base_units"`
	AmountSwept              string             `json:"amount_swept"`
	AmountSweptBaseUnits     string             `json:"amount_swept_base_units"`
	ConfirmationsRequired    uint64             `json:"confirmations_required"`
	ExpiresAt                time.Time          `json:"expires_at"`
	Metadata                 json.RawMessage    `json:"metadata"`
	Transfers                []transferResponse `json:"transfers"`
	CreatedAt                time.Time          `json:"created_at"`
	UpdatedAt                time.Time          `json:"updated_at"`
}

type transferResponse struct {
	TxHash         string     `json:"tx_hash"`
	LogIndex       *int64     `json:"log_index"` // null for a native transfer
	BlockNumber    int64      `json:"block_number"`
	BlockHash      string     `json:"block_hash"`
	ValueBaseUnits string     `json:"value_base_units"`
	Value          string     `json:"value"`
	Status         string     `json:"status"`
	DetectedAt     time.Time  `json:"detected_at"`
	ConfirmedAt    *time.Time `json:"confirmed_at"`
	ReorgedAt      *time.Time `json:"reorged_at"`
}

func (h *Handler) paymentJSON(p Payment) paymentResponse {
	chain, _ := h.cfg.Chains.Chain(p.ChainID)
	out := paymentResponse{
		ID: p.ID, Object: "payment", Status: p.Status, ChainID: p.ChainID, Chain: chain.Name, Token: p.Token,
		TokenContract: p.TokenContract, Decimals: p.Decimals, Address: p.Address,
		Amount: event.FormatUnits(p.Amount, p.Decimals), AmountBaseUnits: p.Amount.String(),
		AmountReceived: event.FormatUnits(p.Received, p.Decimals), AmountReceivedBaseUnits: p.Received.String(),
		AmountConfirmedBaseUnits: p.Confirmed.String(), ConfirmationsRequired: chain.Confirmations,
		AmountSwept: event.FormatUnits(p.Swept, p.Decimals), AmountSweptBaseUnits: p.Swept.String(),
		ExpiresAt: p.ExpiresAt, Metadata: p.Metadata, Transfers: make([]transferResponse, 0, len(p.Transfers)),
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
	for _, t := range p.Transfers {
		tr := transferResponse{
			TxHash: t.TxHash, BlockNumber: t.BlockNumber, BlockHash: t.BlockHash, ValueBaseUnits: t.Value.String(),
			Value: event.FormatUnits(t.Value, p.Decimals), Status: t.Status, DetectedAt: t.DetectedAt,
			ConfirmedAt: t.ConfirmedAt, ReorgedAt: t.ReorgedAt,
		}
		if t.LogIndex >= 0 {
			li := t.LogIndex
			tr.LogIndex = &li
		}
		out.Transfers = append(out.Transfers, tr)
	}
	return out
}

func (h *Handler) getPayment(w http.ResponseWriter, r *http.Request, merchantID string) *apiError {
	p, err := h.cfg.Store.Payment(r.Context(), merchantID, r.PathValue("id"))
	if err != nil {
		return h.storeError(r, err)
	}
	writeJSON(w, http.StatusOK, h.paymentJSON(p))
	return nil
}

func (h *Handler) listPayments(w http.ResponseWriter, r *http.Request, merchantID string) *apiError {
	page, e := h.pageParams(r, merchantID, "status")
	if e != nil {
		return e
	}
	status := r.URL.Query().Get("status")
	if status != "" && !slices.Contains(paymentStatuses, status) {
		return invalid("status", "invalid_status", "must be one of "+strings.Join(paymentStatuses, ", "))
	}
	ps, err := h.cfg.Store.Payments(r.Context(), merchantID, status, page.fetch())
	if err != nil {
		return h.storeError(r, err)
	}
	ps, next := trimPage(h, r, merchantID, ps, page.Limit, func(p Payment) cursor { return cursor{At: &p.CreatedAt, ID: p.ID} })
	data := make([]paymentResponse, len(ps))
	for i, p := range ps {
		data[i] = h.paymentJSON(p)
	}
	writeJSON(w, http.StatusOK, listResponse[paymentResponse]{Object: "list", Data: data, HasMore: next != nil, NextCursor: next})
	return nil
}

type attemptResponse struct {
	ID           int64     `json:"id"`
	EventID      string    `json:"event_id"`
	EventType    string    `json:"event_type"`
	EndpointID   string    `json:"endpoint_id"`
	Attempt      int       `json:"attempt"`
	StatusCode   *int      `json:"status_code"`
	LatencyMS    float64   `json:"latency_ms"`
	Error        *string   `json:"error"`
	ResponseBody *string   `json:"response_body"`
	Delivered    bool      `json:"delivered"`
	AttemptedAt  time.Time `json:"attempted_at"`
}

func (h *Handler) listDeliveries(w http.ResponseWriter, r *http.Request, merchantID string) *apiError {
	page, e := h.pageParams(r, merchantID)
	if e != nil {
		return e
	}
	id := r.PathValue("id")
	if _, err := h.cfg.Store.Payment(r.Context(), merchantID, id); err != nil {
		return h.storeError(r, err)
	}
	as, err := h.cfg.Store.Attempts(r.Context(), merchantID, id, page.fetch())
	if err != nil {
		return h.storeError(r, err)
	}
	as, next := trimPage(h, r, merchantID, as, page.Limit, func(a Attempt) cursor { return cursor{Seq: a.ID} })
	data := make([]attemptResponse, len(as))
	for i, a := range as {
		data[i] = attemptResponse{
			ID: a.ID, EventID: a.EventID, EventType: a.EventType, EndpointID: a.EndpointID, Attempt: a.Attempt,
			StatusCode: a.StatusCode, LatencyMS: a.LatencyMS, Error: a.Error, ResponseBody: a.ResponseBody,
			Delivered: a.Delivered, AttemptedAt: a.AttemptedAt,
		}
	}
	writeJSON(w, http.StatusOK, listResponse[attemptResponse]{Object: "list", Data: data, HasMore: next != nil, NextCursor: next})
	return nil
}
