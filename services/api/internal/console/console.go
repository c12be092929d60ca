// Package console holds the merchant and operator console: static HTML, CSS and JavaScript
// modules written by hand, embedded in the api binary and served by it under /console/. The
// console loads nothing from anywhere else, keeps the API key or admin token in
// sessionStorage and sends it as a bearer token to the same REST API as every client, so it
// has no authority of its own.
package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"path"
	"strings"
)

//go:embed assets
var assets embed.FS

// ContentSecurityPolicy allows the console's pages to load scripts, styles and images from
// their own origin only and to call only that origin: nothing it runs can reach elsewhere.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// contentTypes are the types of the assets, by extension: set here rather than taken from the
// host's MIME table, which differs between machines (and a module script must be served as
// JavaScript or the browser refuses it).
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

// File is one asset.
type File struct {
	Name        string // path under /console/, "index.html" for the console's root
	Body        []byte
	ContentType string
	ETag        string
}

// Lookup returns the asset at name, the path under /console/ ("" is index.html).
func Lookup(name string) (File, bool) {
	if name == "" {
		name = "index.html"
	}
	if strings.Contains(name, "\\") || path.Clean(name) != name || strings.HasPrefix(name, "/") || strings.HasPrefix(name, ".") {
		return File{}, false
	}
	ctype, ok := contentTypes[path.Ext(name)]
	if !ok {
		return File{}, false
	}
	body, err := assets.ReadFile("assets/" + name)
	if err != nil {
		return File{}, false
	}
	sum := sha256.Sum256(body)
	return File{Name: name, Body: body, ContentType: ctype, ETag: `"` + hex.EncodeToString(sum[:8]) + `"`}, true
}

// Names lists every asset, as Lookup takes them.
func Names() []string {
	var out []string
	// The embedded tree is fixed at build time: walking it cannot fail.
	_ = fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, strings.TrimPrefix(p, "assets/"))
		}
		return err
	})
	return out
}
