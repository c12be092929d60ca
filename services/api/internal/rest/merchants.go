package rest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ctrip-pay/pipeline/shared/event"
)

// APIKeyPrefix starts every merchant API key, so a leaked key is recognisable (secret scanners)
// and the admin token can never be mistaken for one.
const APIKeyPrefix = "sk_live_"

// apiKeyEntropy is the number of random bytes in a key.
const apiKeyEntropy = 32

// keyPrefixLen is how much of a key is stored in clear, to tell keys apart.
const keyPrefixLen = len(APIKeyPrefix) + 6

var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewAPIKey returns a fresh key and what is stored of it: its SHA-256 and its prefix. A SHA-256
// without salt is enough because the key carries 256 random bits: there is nothing to guess.
func NewAPIKey() (string, APIKey, error) {
	var b [apiKeyEntropy]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", APIKey{}, err
	}
	key := APIKeyPrefix + keyEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(key))
	return key, APIKey{ID: event.NewID("key"), Hash: sum[:], Prefix: key[:keyPrefixLen]}, nil
}

type createMerchantRequest struct {
	Name *string `json:"name"`
}

type merchantResponse struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	APIKey       string    `json:"api_key"`
	APIKeyID     string    `json:"api_key_id"`
	APIKeyPrefix string    `json:"api_key_prefix"`
	CreatedAt    time.Time `json:"created_at"`
}

type apiKeyResponse struct {
	ID         string    `json:"id"`
	MerchantID string    `json:"merchant_id"`
	APIKey     string    `json:"api_key"`
	Prefix     string    `json:"api_key_prefix"`
	CreatedAt  time.Time `json:"created_at"`
}

const maxNameLen = 200

func (h *Handler) createMerchant(w http.ResponseWriter, r *http.Request, _ string) *apiError {
	var req createMerchantRequest
	if e := onlyParams(r); e != nil {
		return e
	}
	if e := decode(w, r, &req, false); e != nil {
		return e
	}
	if req.Name == nil || strings.TrimSpace(*req.Name) == "" {
		return invalid("name", "invalid_name", "is required")
	}
	name := strings.TrimSpace(*req.Name)
	if utf8.RuneCountInString(name) > maxNameLen || strings.ContainsFunc(name, isControl) {
		return invalid("name", "invalid_name", "must be at most 200 characters with no control characters")
	}
	key, stored, err := NewAPIKey()
	if err != nil {
		return h.internalError(r, err)
	}
	id := event.NewID("mch")
	created, err := h.cfg.Store.CreateMerchant(r.Context(), id, name, stored)
	if err != nil {
		return h.storeError(r, err)
	}
	h.cfg.Log.InfoContext(r.Context(), "merchant created", "merchant_id", id, "api_key_prefix", stored.Prefix)
	writeJSON(w, http.StatusCreated, merchantResponse{ID: id, Name: name, APIKey: key, APIKeyID: stored.ID,
		APIKeyPrefix: stored.Prefix, CreatedAt: created.UTC()})
	return nil
}

// createAPIKey issues another key for a merchant (admin): the way to replace a lost or leaked
// key without downtime — issue, switch, revoke.
func (h *Handler) createAPIKey(w http.ResponseWriter, r *http.Request, _ string) *apiError {
	if e := onlyParams(r); e != nil {
		return e
	}
	if e := decode(w, r, &struct{}{}, true); e != nil {
		return e
	}
	merchantID := r.PathValue("id")
	key, stored, err := NewAPIKey()
	if err != nil {
		return h.internalError(r, err)
	}
	created, err := h.cfg.Store.AddAPIKey(r.Context(), merchantID, stored)
	if err != nil {
		return h.storeError(r, err)
	}
	h.cfg.Log.InfoContext(r.Context(), "api key issued", "merchant_id", merchantID, "api_key_id", stored.ID, "api_key_prefix", stored.Prefix)
	writeJSON(w, http.StatusCreated, apiKeyResponse{ID: stored.ID, MerchantID: merchantID, APIKey: key, Prefix: stored.Prefix, CreatedAt: created.UTC()})
	return nil
}

func (h *Handler) revokeAPIKey(w http.ResponseWriter, r *http.Request, _ string) *apiError {
	merchantID, keyID := r.PathValue("id"), r.PathValue("key_id")
	return h.removed(w, r, h.cfg.Store.RevokeAPIKey(r.Context(), merchantID, keyID),
		"api key revoked", "merchant_id", merchantID, "api_key_id", keyID)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }
