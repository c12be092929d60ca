package rest

import (
	"net/http"
	"path"
)

// canonicalPath reports whether p, an escaped path, is one ServeMux would serve as it is:
// rooted, without "//", "." or ".." segments (a trailing slash is kept, as ServeMux keeps it).
// ServeMux answers any other path with a redirect to the cleaned one, in HTML; the API answers
// it as a path that is not a route. An escaped dot (%2e) is not a dot segment here either, as
// for ServeMux: it reaches the route as part of an id or a file name.
func canonicalPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	clean := path.Clean(p)
	if p[len(p)-1] == '/' && clean != "/" {
		clean += "/"
	}
	return clean == p
}

// errNoRoute is the answer to a request no route takes.
func errNoRoute(r *http.Request) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: "route_not_found", Message: "no such route: " + r.Method + " " + r.URL.Path}
}
