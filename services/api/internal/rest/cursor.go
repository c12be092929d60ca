package rest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

const (
	defaultLimit = 20
	maxLimit     = 100
	maxCursorLen = 512
)

// cursor is a keyset position, handed to clients as opaque base64url: its JSON, sealed with a
// MAC (sealCursor) that binds it to the merchant and the list it was handed out for.
type cursor struct {
	At  *time.Time `json:"t,omitempty"`
	ID  string     `json:"i,omitempty"`
	Seq int64      `json:"s,omitempty"`
}

// cursorMACLen is the length of a sealed cursor's MAC: 128 bits.
const cursorMACLen = 16

// cursorMAC authenticates a cursor's JSON for one merchant and one list (the request's path,
// which holds the payment id of a payment's deliveries or events). Its key is the admin token:
// every replica has it and nobody else does; rotating it invalidates the cursors handed out,
// which clients answer by starting the list again.
func (h *Handler) cursorMAC(r *http.Request, merchantID string, payload []byte) []byte {
	m := hmac.New(sha256.New, []byte(h.cfg.AdminToken))
	for _, part := range [][]byte{[]byte("ctrip-pay list cursor v1"), []byte(merchantID), []byte(r.URL.Path), payload} {
		m.Write(part)
		m.Write([]byte{0})
	}
	return m.Sum(nil)[:cursorMACLen]
}

// sealCursor is the next_cursor handed out for c: its JSON and its MAC, base64url.
func (h *Handler) sealCursor(r *http.Request, merchantID string, c cursor) string {
	payload, _ := json.Marshal(c) // cannot fail: a time and two scalars
	return base64.RawURLEncoding.EncodeToString(append(payload, h.cursorMAC(r, merchantID, payload)...))
}

// openCursor returns the position of a cursor this list handed this merchant. A cursor that
// is anything else — another merchant's, another list's, forged, bit-flipped or cut short —
// fails its MAC and is refused, before its contents are looked at.
func (h *Handler) openCursor(r *http.Request, merchantID, s string) (cursor, bool) {
	if len(s) > maxCursorLen {
		return cursor{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) <= cursorMACLen {
		return cursor{}, false
	}
	payload, mac := b[:len(b)-cursorMACLen], b[len(b)-cursorMACLen:]
	if !hmac.Equal(mac, h.cursorMAC(r, merchantID, payload)) {
		return cursor{}, false
	}
	return parseCursor(payload)
}

// parseCursor validates a cursor's JSON.
func parseCursor(b []byte) (cursor, bool) {
	var c cursor
	// A cursor is only ever handed back, but anyone can forge one, and its contents go to
	// Postgres as parameters: what Postgres would refuse with an error (a 500) is refused here.
	// The decoder would silently turn invalid UTF-8 and unpaired surrogates into U+FFFD, so
	// the text is checked before it is decoded.
	if !json.Valid(b) {
		return c, false
	}
	if _, problem := checkJSONText(b, "cursor"); problem != "" {
		return c, false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || (c.At == nil) != (c.ID == "") || c.Seq < 0 || (c.At == nil && c.Seq == 0) {
		return c, false
	}
	if c.At != nil {
		// Every row was created after 1970, so any other time is forged: refusing it keeps
		// year 0, BC dates and five-digit years (a zone offset can push 0001-01-01 or
		// 9999-12-31 past either end) away from the driver's and Postgres's date handling.
		if y := c.At.UTC().Year(); y < 1970 || y > 9999 {
			return c, false
		}
		if !validID(c.ID) {
			return c, false
		}
	}
	return c, true
}

// pageParams reads limit and cursor from a list's query, refusing any parameter beside them and
// the list's filters. The cursor must be one the list handed the merchant.
func (h *Handler) pageParams(r *http.Request, merchantID string, filters ...string) (Page, *apiError) {
	if e := onlyParams(r, append(filters, "limit", "cursor")...); e != nil {
		return Page{}, e
	}
	q := r.URL.Query()
	p := Page{Limit: defaultLimit}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return p, invalid("limit", "invalid_limit", "must be an integer from 1 to "+strconv.Itoa(maxLimit))
		}
		p.Limit = n
	}
	if v := q.Get("cursor"); v != "" {
		c, ok := h.openCursor(r, merchantID, v)
		if !ok {
			return p, invalid("cursor", "invalid_cursor", "is not a cursor returned by this list")
		}
		p.AfterAt, p.AfterID, p.AfterSeq = c.At, c.ID, c.Seq
	}
	return p, nil
}

// fetch asks for one row more than the page holds, to learn whether there is a next page.
func (p Page) fetch() Page {
	p.Limit++
	return p
}

// trimPage cuts the extra row fetch asked for and returns the cursor of the next page, sealed
// for the merchant and the list.
func trimPage[T any](h *Handler, r *http.Request, merchantID string, rows []T, limit int, pos func(T) cursor) ([]T, *string) {
	if len(rows) <= limit {
		return rows, nil
	}
	rows = rows[:limit]
	next := h.sealCursor(r, merchantID, pos(rows[limit-1]))
	return rows, &next
}

type listResponse[T any] struct {
	Object     string  `json:"object"`
	Data       []T     `json:"data"`
	HasMore    bool    `json:"has_more"`
	NextCursor *string `json:"next_cursor"`
}

// onlyParams refuses query parameters the call does not know — a misspelt filter must not
// silently list everything — and, since only the first value of a parameter would be read,
// a parameter given twice. A query that does not parse (a bad %-escape, a ';') is refused
// rather than read without the pairs that did not parse.
func onlyParams(r *http.Request, known ...string) *apiError {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_query",
			Message: "the query string does not parse: use key=value pairs joined by & with valid %-escapes"}
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the same request always gets the same answer
	for _, k := range keys {
		if !slices.Contains(known, k) {
			return invalid(k, "unknown_parameter", "is not a query parameter of this call")
		}
		if len(q[k]) > 1 {
			return invalid(k, "duplicate_parameter", "is given more than once")
		}
	}
	return nil
}
