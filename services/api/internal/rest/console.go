package rest

import (
	"bytes"
	"net/http"
	"strings"
	"time"

	"github.com/ctrip-pay/pipeline/services/api/internal/console"
)

// console serves the console's static files under /console/ (index.html at /console/). They
// carry no data: every figure the console shows comes from this API with the bearer token the
// user signed in with.
func (h *Handler) console(w http.ResponseWriter, r *http.Request) {
	f, ok := console.Lookup(strings.TrimPrefix(r.URL.Path, "/console/"))
	if !ok {
		writeError(w, &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "no such console file: " + r.URL.Path})
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", f.ContentType)
	hdr.Set("Content-Security-Policy", console.ContentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cache-Control", "no-cache") // revalidated with the ETag: a new binary's console is seen at once
	hdr.Set("ETag", f.ETag)
	http.ServeContent(w, r, f.Name, time.Time{}, bytes.NewReader(f.Body))
}
