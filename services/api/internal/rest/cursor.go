package rest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

const (
	defaultLimit = 20
	maxLimit     = 100
	maxCursorLen = 512
)

// cursor is a keyset position, handed to clients as opaque base64url JSON.
type cursor struct {
	At  *time.Time `json:"t,omitempty"`
	ID  string     `json:"i,omitempty"`
	Seq int64      `json:"s,omitempty"`
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c) // cannot fail: a time and two scalars
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, bool) {
	var c cursor
	if len(s) > maxCursorLen {
		return c, false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return c, false
	}
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
// the list's filters.
func pageParams(r *http.Request, filters ...string) (Page, *apiError) {
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
		c, ok := decodeCursor(v)
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

// trimPage cuts the extra row fetch asked for and returns the cursor of the next page.
func trimPage[T any](rows []T, limit int, pos func(T) cursor) ([]T, *string) {
	if len(rows) <= limit {
		return rows, nil
	}
	rows = rows[:limit]
	next := pos(rows[limit-1]).encode()
	return rows, &next
}

type listResponse[T any] struct {
	Object     string  `json:"object"`
	Data       []T     `json:"data"`
	HasMore    bool    `json:"has_more"`
	NextCursor *string `json:"next_cursor"`
}

// onlyParams refuses query parameters the call does not know: a misspelt filter must not
// silently list everything.
func onlyParams(r *http.Request, known ...string) *apiError {
	for k := range r.URL.Query() {
		ok := false
		for _, n := range known {
			ok = ok || k == n
		}
		if !ok {
			return invalid(k, "unknown_parameter", "is not a query parameter of this call")
		}
	}
	return nil
}
