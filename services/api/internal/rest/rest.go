// Package rest is the merchant REST API of DESIGN.md: merchants (admin), payments and their
// events, webhook endpoints (with test events and replay), delivery attempts and dead letters,
// described by the OpenAPI document it serves at GET /openapi.json. It owns the request rules —
// validation, authentication, ownership, idempotency — and leaves SQL to the Store it is given.
package rest

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/ctrip-pay/pipeline/shared/chains"
	"github.com/ctrip-pay/pipeline/shared/fault"
	"github.com/ctrip-pay/pipeline/shared/safehttp"
	"github.com/ctrip-pay/pipeline/shared/telemetry"
)

// Config is everything the handler needs.
type Config struct {
	Store      Store
	Chains     *chains.File
	Wallet     AddressDeriver
	JS         Publisher // dead-letter replays, endpoint tests and endpoint replays onto WEBHOOKS
	AdminToken string
	DefaultTTL time.Duration // PAYMENT_EXPIRY
	URLPolicy  safehttp.Policy
	Log        *slog.Logger
	Tracer     trace.Tracer
	Meter      metric.Meter
	OutboxWake func() // wakes the outbox relay after a commit; optional
}

// Handler serves the API.
type Handler struct {
	cfg      Config
	adminSum [sha256.Size]byte
	mux      *http.ServeMux
	routes   []Route
	requests metric.Float64Histogram
}

// Route is one registered call: its ServeMux pattern ("POST /v1/payments") and who may make it.
type Route struct {
	Pattern string
	Auth    string // AuthAdmin, AuthMerchant or AuthNone
}

// Who may call a route.
const (
	AuthAdmin    = "admin"
	AuthMerchant = "merchant"
	AuthNone     = "none"
)

// Routes returns every registered route, in registration order: the OpenAPI document must
// describe exactly these.
func (h *Handler) Routes() []Route { return slices.Clone(h.routes) }

// New builds the handler and its routes.
func New(cfg Config) (*Handler, error) {
	if cfg.Store == nil || cfg.Chains == nil || cfg.Wallet == nil || cfg.JS == nil || cfg.Log == nil {
		return nil, errors.New("rest: Store, Chains, Wallet, JS and Log are required")
	}
	if cfg.AdminToken == "" {
		return nil, errors.New("rest: AdminToken is required")
	}
	if cfg.DefaultTTL < MinPaymentTTL || cfg.DefaultTTL > MaxPaymentTTL {
		return nil, errors.New("rest: DefaultTTL outside the allowed payment lifetime")
	}
	if cfg.Tracer == nil {
		cfg.Tracer = otel.Tracer("api")
	}
	if cfg.Meter == nil {
		cfg.Meter = otel.Meter("api")
	}
	if cfg.OutboxWake == nil {
		cfg.OutboxWake = func() {}
	}
	h := &Handler{cfg: cfg, adminSum: sha256.Sum256([]byte(cfg.AdminToken)), mux: http.NewServeMux()}
	var err error
	h.requests, err = cfg.Meter.Float64Histogram("http.server.request.duration",
		metric.WithUnit("s"), telemetry.DurationBuckets, metric.WithDescription("Duration of REST API requests"))
	if err != nil {
		return nil, err
	}

	h.admin("POST /v1/merchants", h.createMerchant)
	h.admin("POST /v1/merchants/{id}/api-keys", h.createAPIKey)
	h.admin("DELETE /v1/merchants/{id}/api-keys/{key_id}", h.revokeAPIKey)

	h.merchant("POST /v1/payments", h.createPayment)
	h.merchant("GET /v1/payments", h.listPayments)
	h.merchant("GET /v1/payments/{id}", h.getPayment)
	h.merchant("GET /v1/payments/{id}/deliveries", h.listDeliveries)
	h.merchant("GET /v1/payments/{id}/events", h.listPaymentEvents)

	h.merchant("POST /v1/endpoints", h.createEndpoint)
	h.merchant("GET /v1/endpoints", h.listEndpoints)
	h.merchant("GET /v1/endpoints/{id}", h.getEndpoint)
	h.merchant("PATCH /v1/endpoints/{id}", h.updateEndpoint)
	h.merchant("DELETE /v1/endpoints/{id}", h.deleteEndpoint)
	h.merchant("POST /v1/endpoints/{id}/rotate-secret", h.rotateSecret)
	h.merchant("POST /v1/endpoints/{id}/test", h.testEndpoint)
	h.merchant("POST /v1/endpoints/{id}/replay", h.replayEndpoint)

	h.merchant("GET /v1/dead-letters", h.listDeadLetters)
	h.merchant("GET /v1/dead-letters/{id}", h.getDeadLetter)
	h.merchant("POST /v1/dead-letters/{id}/replay", h.replayDeadLetter)

	h.admin("GET /v1/operator/overview", h.operatorOverview)

	h.public("GET /openapi.json", h.openAPI)
	h.public("GET /console/", h.console)

	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Status: http.StatusNotFound, Code: "route_not_found", Message: "no such route: " + r.Method + " " + r.URL.Path})
	})
	return h, nil
}

// handlerFunc is an API handler: it writes a success itself or returns the error to send.
type handlerFunc func(w http.ResponseWriter, r *http.Request, merchantID string) *apiError

// public registers a call without authentication.
func (h *Handler) public(pattern string, f http.HandlerFunc) {
	h.routes = append(h.routes, Route{Pattern: pattern, Auth: AuthNone})
	h.mux.HandleFunc(pattern, f)
}

func (h *Handler) admin(pattern string, f handlerFunc) {
	h.routes = append(h.routes, Route{Pattern: pattern, Auth: AuthAdmin})
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r)
		sum := sha256.Sum256([]byte(token))
		// Comparing digests keeps the comparison constant-time in the token's length as well.
		if !ok || subtle.ConstantTimeCompare(sum[:], h.adminSum[:]) != 1 {
			writeError(w, errUnauthorized)
			return
		}
		h.serve(w, r, "", f)
	})
}

func (h *Handler) merchant(pattern string, f handlerFunc) {
	h.routes = append(h.routes, Route{Pattern: pattern, Auth: AuthMerchant})
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		key, ok := bearer(r)
		if !ok || !strings.HasPrefix(key, APIKeyPrefix) || len(key) > 256 {
			writeError(w, errUnauthorized)
			return
		}
		sum := sha256.Sum256([]byte(key))
		merchantID, err := h.cfg.Store.MerchantByKeyHash(r.Context(), sum[:])
		if errors.Is(err, ErrNotFound) {
			writeError(w, errUnauthorized)
			return
		}
		if err != nil {
			writeError(w, h.storeError(r, err))
			return
		}
		h.serve(w, r, merchantID, f)
	})
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, merchantID string, f handlerFunc) {
	if merchantID != "" {
		trace.SpanFromContext(r.Context()).SetAttributes(attribute.String("merchant_id", merchantID))
		if info, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
			info.merchantID = merchantID
		}
	}
	if !validPathIDs(r) {
		writeError(w, errNotFound)
		return
	}
	if e := f(w, r, merchantID); e != nil {
		if e.Status >= 500 {
			trace.SpanFromContext(r.Context()).SetStatus(codes.Error, e.Message)
		}
		writeError(w, e)
	}
}

// storeError is the one mapping from an error of the store (or of a replay) to the answer, by
// its fault kind: nil → nil; not found → 404 errNotFound; conflict → 409 and invalid → 400, with
// the error's code and detail (an error of those kinds is written for the client); anything
// else → internalError.
func (h *Handler) storeError(r *http.Request, err error) *apiError {
	if err == nil {
		return nil
	}
	e, _ := fault.As(err)
	switch fault.KindOf(err) {
	case fault.KindNotFound:
		return errNotFound
	case fault.KindConflict:
		return &apiError{Status: http.StatusConflict, Code: e.Code, Message: faultDetail(e)}
	case fault.KindInvalid:
		return &apiError{Status: http.StatusBadRequest, Code: e.Code, Message: faultDetail(e)}
	}
	return h.internalError(r, err)
}

// faultDetail is the message of a 4xx answered from a fault: its detail without the code.
func faultDetail(e *fault.Error) string {
	if e.Err == nil {
		return e.Code
	}
	return e.Err.Error()
}

// internalError logs err and returns what to answer: 503 with Retry-After when Postgres or NATS
// is unreachable (the request itself was fine), 500 otherwise, without the error's detail.
func (h *Handler) internalError(r *http.Request, err error) *apiError {
	down := unavailable(err)
	h.cfg.Log.ErrorContext(r.Context(), "request failed", "method", r.Method, "route", r.Pattern, "unavailable", down, "err", err)
	trace.SpanFromContext(r.Context()).RecordError(err)
	if down {
		return errUnavailable()
	}
	return &apiError{Status: http.StatusInternalServerError, Code: "internal_error", Message: "internal error; retry later"}
}

// maxIDLen bounds an id from a path or a cursor. Ids are 30-odd ASCII characters (event.NewID);
// anything much longer is not one of ours.
const maxIDLen = 128

// validID reports whether s can be an id: it goes to Postgres as a text parameter, and Postgres
// refuses NUL and invalid UTF-8 with an error (which would be a 500), so those are answered
// here; control characters and absurd lengths are not ids either.
func validID(s string) bool {
	return len(s) <= maxIDLen && utf8.ValidString(s) && !strings.ContainsFunc(s, isControl)
}

// validPathIDs checks every wildcard of the matched route, whatever it is named, so that a
// route added later is covered too. An id that cannot exist is an unknown id: 404.
func validPathIDs(r *http.Request) bool {
	pattern := r.Pattern
	for {
		_, after, ok := strings.Cut(pattern, "{")
		if !ok {
			return true
		}
		name, tail, ok := strings.Cut(after, "}")
		if !ok {
			return true
		}
		name = strings.TrimSuffix(name, "...")
		if name != "$" && !validID(r.PathValue(name)) {
			return false
		}
		pattern = tail
	}
}

func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// requestInfo carries what the access log needs back out of the handler.
type requestInfo struct{ merchantID string }

type requestInfoKey struct{}

// ServeHTTP traces, times and logs each request. Headers — which carry the API key or the
// admin token — are never logged.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := h.cfg.Tracer.Start(ctx, "http "+r.Method, trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	info := &requestInfo{}
	r = r.WithContext(context.WithValue(ctx, requestInfoKey{}, info))
	if canonicalPath(r.URL.EscapedPath()) {
		h.mux.ServeHTTP(rec, r)
	} else {
		writeError(rec, errNoRoute(r)) // not ServeMux's HTML redirect to the cleaned path
	}
	route := r.Pattern
	if route == "" || route == "/" {
		route = "unmatched"
	}
	span.SetName(route)
	span.SetAttributes(attribute.String("http.route", route), attribute.Int("http.response.status_code", rec.status))
	elapsed := time.Since(start)
	h.requests.Record(ctx, elapsed.Seconds(), metric.WithAttributes(
		attribute.String("http.route", route), attribute.Int("http.response.status_code", rec.status)))
	level := slog.LevelInfo
	if rec.status >= 500 {
		level = slog.LevelError
	}
	h.cfg.Log.Log(ctx, level, "request", "method", r.Method, "route", route, "path", r.URL.Path,
		"status", rec.status, "duration_ms", float64(elapsed.Microseconds())/1000, "merchant_id", info.merchantID)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
