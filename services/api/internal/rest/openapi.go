package rest

import (
	_ "embed"
	"net/http"
)

// openAPIDocument is the OpenAPI 3.1 description of every route (hand-written; the tests check
// it against Routes() and every answer against it).
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPIDocument returns the OpenAPI document the api serves.
func OpenAPIDocument() []byte { return openAPIDocument }

func (h *Handler) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Access-Control-Allow-Origin", "*") // API explorers load it from other origins
	if _, err := w.Write(openAPIDocument); err != nil {
		h.cfg.Log.DebugContext(r.Context(), "openapi.json write", "err", err)
	}
}
