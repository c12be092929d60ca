package rest

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/safehttp"
	"github.com/ctrip-pay/pipeline/shared/signature"
)

// EventTypes are the merchant-visible event types an endpoint may subscribe to.
var EventTypes = func() []string {
	var out []string
	for _, s := range []string{event.SubjectCreated, event.SubjectDetected, event.SubjectConfirmed, event.SubjectExpired,
		event.SubjectReorged, event.SubjectSwept, event.SubjectSweepFailed} {
		out = append(out, event.TypeForSubject(s))
	}
	return out
}()

// Secret rotation grace period bounds.
const (
	DefaultRotationGrace = 24 * time.Hour
	MaxRotationGrace     = 7 * 24 * time.Hour
)

const maxURLLen = 2048

type endpointResponse struct {
	ID                      string     `json:"id"`
	Object                  string     `json:"object"`
	URL                     string     `json:"url"`
	EventTypes              []string   `json:"event_types"`
	LegacySignature         bool       `json:"legacy_signature"`
	Enabled                 bool       `json:"enabled"`
	DisabledReason          *string    `json:"disabled_reason"`
	DisabledAt              *time.Time `json:"disabled_at"`
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
	Secret                  string     `json:"secret,omitempty"` // only at creation and rotation
	CreatedAt               time.Time  `json:"created_at"`
	UpdatedAt               time.Time  `json:"updated_at"`
}

func endpointJSON(ep Endpoint, secret string) endpointResponse {
	return endpointResponse{
		ID: ep.ID, Object: "webhook_endpoint", URL: ep.URL, EventTypes: ep.EventTypes, LegacySignature: ep.LegacySignature,
		Enabled: ep.Enabled, DisabledReason: ep.DisabledReason, DisabledAt: ep.DisabledAt,
		PreviousSecretExpiresAt: ep.PreviousSecretExpiresAt, Secret: secret, CreatedAt: ep.CreatedAt, UpdatedAt: ep.UpdatedAt,
	}
}

func (h *Handler) validateURL(u string) *apiError {
	if u == "" {
		return invalid("url", "invalid_url", "is required")
	}
	if len(u) > maxURLLen {
		return invalid("url", "invalid_url", fmt.Sprintf("is longer than %d characters", maxURLLen))
	}
	if err := safehttp.ValidateURL(u, h.cfg.URLPolicy); err != nil {
		// safehttp's errors never repeat the URL (it may hold credentials).
		msg := strings.TrimPrefix(err.Error(), "safehttp: ")
		switch {
		case errors.Is(err, safehttp.ErrSchemeNotAllowed):
			msg += " (https is required)"
		case errors.Is(err, safehttp.ErrAddressNotAllowed):
			msg += " (the URL must reach a public address)"
		}
		return invalid("url", "invalid_url", msg)
	}
	return nil
}

// validateEventTypes returns the de-duplicated list; empty means every type.
func validateEventTypes(types []string) ([]string, *apiError) {
	out := []string{}
	for _, t := range types {
		if !slices.Contains(EventTypes, t) {
			return nil, invalid("event_types", "invalid_event_types",
				fmt.Sprintf("%q is not an event type; known: %s", truncate(t, 64), strings.Join(EventTypes, ", ")))
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

type createEndpointRequest struct {
	URL             *string  `json:"url"`
	EventTypes      []string `json:"event_types"`
	LegacySignature *bool    `json:"legacy_signature"`
}

func (h *Handler) createEndpoint(w http.ResponseWriter, r *http.Request, merchantID string) *apiError {
	var req createEndpointRequest
	if e := onlyParams(r); e != nil {
		return e
	}
	if e := decode(w, r, &req, false); e != nil {
		return e
	}
	if req.URL == nil {
		return invalid("url", "invalid_url", "is required")
	}
	if e := h.validateURL(*req.URL); e != nil {
		return e
	}
	types, e := validateEventTypes(req.EventTypes)
	if e != nil {
		return e
	}
	secret, err := signature.NewSecret()
	if err != nil {
		return h.internalError(r, err)
	}
	ep := Endpoint{ID: event.NewID("ep"), MerchantID: merchantID, URL: *req.URL, EventTypes: types,
		LegacySignature: req.LegacySignature != nil && *req.LegacySignature}
	stored, err := h.cfg.Store.CreateEndpoint(r.Context(), ep, secret)
	if err != nil {
		return h.storeError(r, err)
	}
	h.cfg.Log.InfoContext(r.Context(), "endpoint created", "merchant_id", merchantID, "endpoint_id", ep.ID)
	writeJSON(w, http.StatusCreated, endpointJSON(stored, secret))
	return nil
}

func (h *Handler) listEndpoints(w http.ResponseWriter, r *http.Request, merchantID string) *apiError {
	if e := onlyParams(r); e != nil {
		return e
	}
	eps, err := h.cfg.Store.ListEndpoints(r.Context(), merchantID)
	if err != nil {
		return h.storeError(r, err)
	}
	data := make([]endpointResponse, len(eps))
	for i, ep := range eps {
		data[i] = endpointJSON(ep, "")
	}
	writeJSON(w, http.StatusOK, listResponse[endpointResponse]{Object: "list", Data: data})
	return nil
}

func (h *Handler) getEndpoint(w http.ResponseWriter, r *http.Request, merchantID string) *apiError {
	ep, err := h.cfg.Store.Endpoint(r.Context(), merchantID, r.PathValue("id"))
	if err != nil {
		return h.storeError(r, err)
	}
	writeJSON(w, http.StatusOK, endpointJSON(ep, ""))
	return nil
}

type updateEndpointRequest struct {
	URL             *string   `json:"url"`
	EventTypes      *[]string `json:"event_types"`
	LegacySignature *bool     `json:"legacy_signature"`
	Enabled         *bool     `json:"enabled"`
}

func (h *Handler) updateEndpoint(w http.ResponseWriter, r *http.Request, merchantID string) *apiError {
	var req updateEndpointRequest
	if e := onlyParams(r); e != nil {
		return e
	}
	if e := decode(w, r, &req, false); e != nil {
		return e
	}
	patch := EndpointPatch{URL: req.URL, LegacySignature: req.LegacySignature, Enabled: req.Enabled}
	if req.URL != nil {
		if e := h.validateURL(*req.URL); e != nil {
			return e
		}
	}
	if req.EventTypes != nil {
		types, e := validateEventTypes(*req.EventTypes)
		if e != nil {
			return e
		}
		patch.EventTypes = &types
	}
	ep, err := h.cfg.Store.UpdateEndpoint(r.Context(), merchantID, r.PathValue("id"), patch)
	if err != nil {
		return h.storeError(r, err)
	}
	h.cfg.Log.InfoContext(r.Context(), "endpoint updated", "merchant_id", merchantID, "endpoint_id", ep.ID, "enabled", ep.Enabled)
	writeJSON(w, http.StatusOK, endpointJSON(ep, ""))
	return nil
}

func (h *Handler) deleteEndpoint(w http.ResponseWriter, r *http.Request, merchantID string) *apiError {
	id := r.PathValue("id")
	return h.removed(w, r, h.cfg.Store.DeleteEndpoint(r.Context(), merchantID, id),
		"endpoint deleted", "merchant_id", merchantID, "endpoint_id", id)
}

type rotateSecretRequest struct {
	GracePeriodSeconds *int64 `json:"grace_period_seconds"`
}

// rotateSecret installs a new secret; the old one keeps signing (space-separated signatures)
// for grace_period_seconds, from the query or the body, default 24 h, at most 7 d, 0 = stop now.
func (h *Handler) rotateSecret(w http.ResponseWriter, r *http.Request, merchantID string) *apiError {
	if e := onlyParams(r, "grace_period_seconds"); e != nil {
		return e
	}
	var req rotateSecretRequest
	if e := decode(w, r, &req, true); e != nil {
		return e
	}
	const field = "grace_period_seconds"
	if v := r.URL.Query().Get(field); v != "" {
		if req.GracePeriodSeconds != nil {
			return invalid(field, "invalid_grace_period_seconds", "must be given in the query or the body, not both")
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return invalid(field, "invalid_grace_period_seconds", "must be an integer number of seconds")
		}
		req.GracePeriodSeconds = &n
	}
	grace := DefaultRotationGrace
	if req.GracePeriodSeconds != nil {
		s := *req.GracePeriodSeconds
		if s < 0 || s > int64(MaxRotationGrace/time.Second) {
			return invalid(field, "invalid_grace_period_seconds", fmt.Sprintf("must be between 0 and %d", int64(MaxRotationGrace/time.Second)))
		}
		grace = time.Duration(s) * time.Second
	}
	secret, err := signature.NewSecret()
	if err != nil {
		return h.internalError(r, err)
	}
	ep, err := h.cfg.Store.RotateSecret(r.Context(), merchantID, r.PathValue("id"), secret, grace)
	if err != nil {
		return h.storeError(r, err)
	}
	h.cfg.Log.InfoContext(r.Context(), "endpoint secret rotated", "merchant_id", merchantID, "endpoint_id", ep.ID, "grace", grace.String())
	writeJSON(w, http.StatusOK, endpointJSON(ep, secret))
	return nil
}
