// Package safehttp provides an HTTP client for calling merchant-supplied
// webhook URLs without letting those URLs reach internal infrastructure
// (SSRF): loopback, private networks, cloud metadata endpoints and the like.
//
// Validation happens twice. ValidateURL gives early, user-facing feedback
// when a URL is registered, but it cannot judge hostnames because DNS
// answers change. The client returned by NewClient therefore re-checks the
// actual IP address at connect time, after DNS resolution, which is what
// defeats DNS rebinding.
package safehttp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// DefaultTimeout is used by NewClient when timeout is not positive; a
	// webhook client without a deadline would let one slow merchant pin
	// delivery workers indefinitely.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxConnsPerHost is used by NewClient when maxConnsPerHost is
	// not positive.
	DefaultMaxConnsPerHost = 8

	// maxTLSHandshakeTimeout caps the handshake separately from the overall
	// timeout so that a long overall timeout does not let a server that
	// accepts TCP but stalls TLS hold a connection slot for the whole time.
	maxTLSHandshakeTimeout = 10 * time.Second
	// maxIdleConns bounds idle connections across all merchants so that
	// fan-out to many hosts cannot accumulate file descriptors.
	maxIdleConns    = 512
	idleConnTimeout = 90 * time.Second
	tcpKeepAlive    = 30 * time.Second
	// maxResponseHeaderBytes stops a hostile endpoint from making us buffer
	// huge headers; webhook responses only need a status code.
	maxResponseHeaderBytes = 64 << 10
)

var (
	// ErrInvalidURL means the URL is malformed or structurally unacceptable
	// (relative, no host, userinfo, bad port, ambiguous numeric host).
	ErrInvalidURL = errors.New("safehttp: invalid URL")
	// ErrSchemeNotAllowed means the scheme is not https (or http when the
	// policy allows it).
	ErrSchemeNotAllowed = errors.New("safehttp: scheme not allowed")
	// ErrAddressNotAllowed means the destination is, or resolved to, an
	// address that is not publicly routable.
	ErrAddressNotAllowed = errors.New("safehttp: address not allowed")
)

// Policy controls what destinations are acceptable. The zero value is the
// strict production policy: https only, public addresses only. The api and the
// webhook sender embed it in their configs, so both read the same variables
// with the same meaning: a URL the sender would refuse is refused at
// registration.
type Policy struct {
	// AllowHTTP permits plain-http URLs, e.g. for local development.
	AllowHTTP bool `env:"WEBHOOK_ALLOW_HTTP, default=false"`
	// AllowPrivateNetworks disables all address checks. It exists for tests
	// and local development against servers on loopback; enabling it in
	// production re-opens SSRF entirely.
	AllowPrivateNetworks bool `env:"WEBHOOK_ALLOW_PRIVATE_NETWORKS, default=false"`
}

// ValidateURL reports whether raw is an acceptable webhook destination under
// p. Errors wrap ErrInvalidURL, ErrSchemeNotAllowed or ErrAddressNotAllowed,
// and never include the URL itself because it may carry credentials.
//
// Hostnames are not resolved here, except that "localhost" and its
// subdomains (guaranteed loopback by RFC 6761) are rejected early. Any other
// name is checked by the client at connect time.
func ValidateURL(raw string, p Policy) error {
	if raw == "" {
		return fmt.Errorf("%w: empty", ErrInvalidURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// *url.Error quotes the whole input, which may hold a password;
		// keep only the underlying reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%w: %v", ErrInvalidURL, err)
	}
	if !u.IsAbs() {
		return fmt.Errorf("%w: must be absolute", ErrInvalidURL)
	}
	if err := checkScheme(u.Scheme, p); err != nil {
		return err
	}
	if u.Opaque != "" {
		return fmt.Errorf("%w: must be of the form %s://host/path", ErrInvalidURL, u.Scheme)
	}
	if u.User != nil {
		// Credentials in the URL end up in logs and in our database; the
		// merchant should authenticate us via the signature instead.
		return fmt.Errorf("%w: must not contain user info", ErrInvalidURL)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%w: missing host", ErrInvalidURL)
	}
	if port := u.Port(); port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("%w: port %q out of range", ErrInvalidURL, port)
		}
	}

	ip, ipErr := netip.ParseAddr(host)
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if name == "" {
		return fmt.Errorf("%w: missing host", ErrInvalidURL)
	}
	if ipErr != nil && endsInNumber(name) {
		// Forms like "2130706433", "0x7f.1" or "127.1" are not valid for
		// netip but some resolvers (getaddrinfo/inet_aton) and browsers
		// still turn them into IPv4 addresses; refuse the ambiguity.
		return fmt.Errorf("%w: host %q is a non-canonical IPv4 address", ErrInvalidURL, host)
	}
	if p.AllowPrivateNetworks {
		return nil
	}
	if ipErr == nil {
		if !IsPublicIP(ip) {
			return fmt.Errorf("%w: %s is not a public address", ErrAddressNotAllowed, ip)
		}
		return nil
	}
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return fmt.Errorf("%w: %s is a loopback name", ErrAddressNotAllowed, host)
	}
	return nil
}

func checkScheme(scheme string, p Policy) error {
	switch strings.ToLower(scheme) {
	case "https":
		return nil
	case "http":
		if p.AllowHTTP {
			return nil
		}
		return fmt.Errorf("%w: %q (https required)", ErrSchemeNotAllowed, scheme)
	default:
		return fmt.Errorf("%w: %q", ErrSchemeNotAllowed, scheme)
	}
}

// endsInNumber follows the WHATWG URL rule for deciding that a host must be
// parsed as IPv4: its last label is all decimal digits or 0x-prefixed hex.
func endsInNumber(host string) bool {
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if rest, ok := strings.CutPrefix(last, "0x"); ok {
		for i := 0; i < len(rest); i++ {
			if !isHex(rest[i]) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

// IsPublicIP reports whether ip is a globally routable unicast address that
// a webhook may be delivered to. IPv4-mapped IPv6 and NAT64 (64:ff9b::/96)
// addresses are judged by the IPv4 address they embed, since that is where
// the packets end up.
func IsPublicIP(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.WithZone("").Unmap()
	if ip.Is6() {
		nat64 := v6(96, 0x0064, 0xff9b)
		if !nat64.Contains(ip) {
			return isPublic6(ip)
		}
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:]))
	}
	return isPublic4(ip)
}

func isPublic4(ip netip.Addr) bool {
	// IANA IPv4 Special-Purpose Address Registry, restricted to blocks that
	// are not globally reachable unicast. Built per call rather than as a
	// package variable; it is a fixed-size stack array, so this is cheap.
	blocked := [...]netip.Prefix{
		v4(0, 0, 0, 0, 8),       // "this network"; 0.0.0.0 reaches localhost on Linux
		v4(10, 0, 0, 0, 8),      // private
		v4(100, 64, 0, 0, 10),   // carrier-grade NAT
		v4(127, 0, 0, 0, 8),     // loopback
		v4(169, 254, 0, 0, 16),  // link-local, incl. cloud metadata 169.254.169.254
		v4(172, 16, 0, 0, 12),   // private
		v4(192, 0, 0, 0, 24),    // IETF protocol assignments
		v4(192, 0, 2, 0, 24),    // TEST-NET-1
		v4(192, 88, 99, 0, 24),  // deprecated 6to4 relay anycast
		v4(192, 168, 0, 0, 16),  // private
		v4(198, 18, 0, 0, 15),   // benchmarking
		v4(198, 51, 100, 0, 24), // TEST-NET-2
		v4(203, 0, 113, 0, 24),  // TEST-NET-3
		v4(224, 0, 0, 0, 4),     // multicast
		v4(240, 0, 0, 0, 4),     // reserved, incl. broadcast 255.255.255.255
	}
	for _, p := range blocked {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

func isPublic6(ip netip.Addr) bool {
	// Allow-list global unicast rather than block-list the rest: everything
	// outside 2000::/3 (loopback, unspecified, IPv4-compatible ::/96,
	// ULA fc00::/7 incl. AWS metadata fd00:ec2::254, link-local, site-local,
	// multicast, discard-only) is not a legitimate webhook destination.
	if !v6(3, 0x2000).Contains(ip) {
		return false
	}
	blocked := [...]netip.Prefix{
		v6(23, 0x2001),         // IETF protocol assignments, incl. Teredo
		v6(32, 0x2001, 0x0db8), // documentation
		v6(16, 0x2002),         // 6to4: embeds an arbitrary IPv4 address
		v6(20, 0x3fff),         // documentation (RFC 9637)
	}
	for _, p := range blocked {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

func v4(a, b, c, d byte, bits int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{a, b, c, d}), bits)
}

// v6 builds a prefix from its leading 16-bit groups.
func v6(bits int, groups ...uint16) netip.Prefix {
	var b [16]byte
	for i, g := range groups {
		b[2*i], b[2*i+1] = byte(g>>8), byte(g)
	}
	return netip.PrefixFrom(netip.AddrFrom16(b), bits)
}

// NewClient returns an *http.Client for webhook delivery under p.
//
//   - Every connection's resolved IP is checked in net.Dialer.Control, after
//     DNS and immediately before connect(2), so neither DNS rebinding nor a
//     hostname pointing at 127.0.0.1 gets through. Refusals surface as
//     errors matching ErrAddressNotAllowed via errors.Is.
//   - The scheme is enforced per request, so an https-only policy holds even
//     for URLs validated under an older, laxer policy.
//   - Redirects are not followed: a 3xx is returned as the response. A
//     merchant endpoint that redirects is misconfigured, and following it
//     would re-send the signed payload somewhere the merchant did not
//     register.
//   - Proxy environment variables are ignored, since a proxy would make the
//     connection (and the address check) on our behalf.
//
// timeout bounds each whole request including reading the body; a
// non-positive value means DefaultTimeout. maxConnsPerHost caps both active
// and idle connections per merchant host so one hot merchant cannot starve
// the pool; a non-positive value means DefaultMaxConnsPerHost.
func NewClient(p Policy, timeout time.Duration, maxConnsPerHost int) *http.Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if maxConnsPerHost <= 0 {
		maxConnsPerHost = DefaultMaxConnsPerHost
	}
	dialer := &net.Dialer{
		Timeout:   timeout,
		KeepAlive: tcpKeepAlive,
	}
	if !p.AllowPrivateNetworks {
		dialer.Control = controlPublicOnly
	}
	base := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true, // a custom DialContext otherwise disables HTTP/2
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    min(timeout, maxTLSHandshakeTimeout),
		MaxIdleConns:           maxIdleConns,
		MaxIdleConnsPerHost:    maxConnsPerHost,
		MaxConnsPerHost:        maxConnsPerHost,
		IdleConnTimeout:        idleConnTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
	}
	return &http.Client{
		// The timeout is the transport's, not http.Client.Timeout: for a RoundTripper other
		// than *http.Transport the client enforces its Timeout with an extra goroutine and
		// timer per request (6-11 µs of CPU per request, measured with the webhook sender's
		// requests).
		Transport: &transport{policy: p, base: base, timeout: timeout},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// controlPublicOnly runs after the socket is created but before it
// connects, with the already-resolved address, so a refused destination
// never receives a single packet.
func controlPublicOnly(network, address string, _ syscall.RawConn) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return fmt.Errorf("%w: network %q", ErrAddressNotAllowed, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparseable dial address %q", ErrAddressNotAllowed, address)
	}
	if !IsPublicIP(ap.Addr()) {
		return fmt.Errorf("%w: %s is not a public address", ErrAddressNotAllowed, ap.Addr())
	}
	return nil
}

// transport enforces the scheme part of the policy on every request; the
// address part is enforced by the dialer.
type transport struct {
	policy  Policy
	base    *http.Transport
	timeout time.Duration // bounds each whole exchange, reading the body included
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := checkScheme(req.URL.Scheme, t.policy); err != nil {
		// The RoundTripper contract requires closing the body even on error.
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	if t.timeout <= 0 {
		return t.base.RoundTrip(req)
	}
	ctx, cancel := context.WithTimeout(req.Context(), t.timeout)
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelOnClose keeps the exchange's deadline running while the body is read, and releases it
// when the body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// underlying pool, e.g. on shutdown.
func (t *transport) CloseIdleConnections() {
	t.base.CloseIdleConnections()
}
