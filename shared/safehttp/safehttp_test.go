package safehttp

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestIsPublicIP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ip   string
		want bool
	}{
		// Public.
		{name: "v4 public dns", ip: "8.8.8.8", want: true},
		{name: "v4 public cloudflare", ip: "1.1.1.1", want: true},
		{name: "v4 just below 10/8", ip: "9.255.255.255", want: true},
		{name: "v4 just above 10/8", ip: "11.0.0.0", want: true},
		{name: "v4 just below 100.64/10", ip: "100.63.255.255", want: true},
		{name: "v4 just above 100.64/10", ip: "100.128.0.0", want: true},
		{name: "v4 just below 172.16/12", ip: "172.15.255.255", want: true},
		{name: "v4 just above 172.16/12", ip: "172.32.0.0", want: true},
		{name: "v4 just above 198.18/15", ip: "198.20.0.0", want: true},
		{name: "v4 last before multicast", ip: "223.255.255.255", want: true},
		{name: "v6 public google", ip: "2001:4860:4860::8888", want: true},
		{name: "v6 public cloudflare", ip: "2606:4700:4700::1111", want: true},
		{name: "v4-mapped public", ip: "::ffff:8.8.8.8", want: true},
		{name: "nat64 embedding public", ip: "64:ff9b::808:808", want: true},

		// Loopback.
		{name: "v4 loopback", ip: "127.0.0.1", want: false},
		{name: "v4 loopback range end", ip: "127.255.255.254", want: false},
		{name: "v6 loopback", ip: "::1", want: false},
		// Private.
		{name: "10/8", ip: "10.0.0.1", want: false},
		{name: "172.16/12 start", ip: "172.16.0.1", want: false},
		{name: "172.16/12 end", ip: "172.31.255.255", want: false},
		{name: "192.168/16", ip: "192.168.1.1", want: false},
		{name: "v6 ULA fc00", ip: "fc00::1", want: false},
		{name: "v6 ULA fd", ip: "fd12:3456:789a::1", want: false},
		{name: "aws v6 metadata", ip: "fd00:ec2::254", want: false},
		// Link-local.
		{name: "v4 link-local", ip: "169.254.1.1", want: false},
		{name: "cloud metadata", ip: "169.254.169.254", want: false},
		{name: "v6 link-local", ip: "fe80::1", want: false},
		{name: "v6 link-local with zone", ip: "fe80::1%eth0", want: false},
		// Unspecified / this network.
		{name: "v4 unspecified", ip: "0.0.0.0", want: false},
		{name: "0/8", ip: "0.1.2.3", want: false},
		{name: "v6 unspecified", ip: "::", want: false},
		// Multicast.
		{name: "v4 multicast", ip: "224.0.0.1", want: false},
		{name: "v4 multicast end", ip: "239.255.255.255", want: false},
		{name: "v6 multicast", ip: "ff02::1", want: false},
		{name: "v6 global multicast", ip: "ff0e::1", want: false},
		// Other special-purpose.
		{name: "cgnat", ip: "100.64.0.1", want: false},
		{name: "cgnat end", ip: "100.127.255.255", want: false},
		{name: "192.0.0.0/24", ip: "192.0.0.8", want: false},
		{name: "test-net-1", ip: "192.0.2.1", want: false},
		{name: "test-net-2", ip: "198.51.100.1", want: false},
		{name: "test-net-3", ip: "203.0.113.1", want: false},
		{name: "benchmarking", ip: "198.18.0.1", want: false},
		{name: "benchmarking end", ip: "198.19.255.255", want: false},
		{name: "6to4 relay anycast", ip: "192.88.99.1", want: false},
		{name: "reserved 240/4", ip: "240.0.0.1", want: false},
		{name: "broadcast", ip: "255.255.255.255", want: false},
		{name: "v6 documentation", ip: "2001:db8::1", want: false},
		{name: "v6 documentation 3fff", ip: "3fff::1", want: false},
		{name: "teredo", ip: "2001:0:4136:e378:8000:63bf:3fff:fdd2", want: false},
		{name: "6to4 embedding loopback", ip: "2002:7f00:1::", want: false},
		{name: "v6 discard-only", ip: "100::1", want: false},
		{name: "v6 site-local (deprecated)", ip: "fec0::1", want: false},
		{name: "v4-compatible loopback", ip: "::127.0.0.1", want: false},
		{name: "v4-compatible public", ip: "::8.8.8.8", want: false},
		// IPv4-mapped forms of non-public addresses.
		{name: "mapped loopback", ip: "::ffff:127.0.0.1", want: false},
		{name: "mapped private", ip: "::ffff:10.0.0.1", want: false},
		{name: "mapped metadata", ip: "::ffff:169.254.169.254", want: false},
		{name: "mapped unspecified", ip: "::ffff:0.0.0.0", want: false},
		{name: "mapped cgnat", ip: "::ffff:100.64.0.1", want: false},
		{name: "mapped broadcast", ip: "::ffff:255.255.255.255", want: false},
		{name: "mapped hex form loopback", ip: "::ffff:7f00:1", want: false},
		// NAT64 embedding non-public IPv4.
		{name: "nat64 loopback", ip: "64:ff9b::7f00:1", want: false},
		{name: "nat64 private", ip: "64:ff9b::10.0.0.1", want: false},
		{name: "nat64 metadata", ip: "64:ff9b::a9fe:a9fe", want: false},
		{name: "nat64 local-use prefix", ip: "64:ff9b:1::808:808", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ip := netip.MustParseAddr(tt.ip)
			if got := IsPublicIP(ip); got != tt.want {
				t.Fatalf("IsPublicIP(%s) = %v, want %v", ip, got, tt.want)
			}
		})
	}

	t.Run("zero Addr", func(t *testing.T) {
		t.Parallel()
		if IsPublicIP(netip.Addr{}) {
			t.Fatal("zero Addr reported public")
		}
	})
}

func TestValidateURL(t *testing.T) {
	t.Parallel()
	strict := Policy{}
	httpOK := Policy{AllowHTTP: true}
	dev := Policy{AllowHTTP: true, AllowPrivateNetworks: true}

	tests := []struct {
		name    string
		url     string
		policy  Policy
		wantErr error
	}{
		{name: "https public host", url: "https://merchant.example.com/webhooks", policy: strict},
		{name: "https with port and query", url: "https://merchant.example.com:8443/hook?tenant=42", policy: strict},
		{name: "https public v4 literal", url: "https://8.8.8.8/hook", policy: strict},
		{name: "https public v6 literal", url: "https://[2001:4860:4860::8888]:443/hook", policy: strict},
		{name: "uppercase scheme and host", url: "HTTPS://Merchant.Example.COM/", policy: strict},
		{name: "trailing dot fqdn", url: "https://merchant.example.com./", policy: strict},
		{name: "fragment is harmless", url: "https://merchant.example.com/#frag", policy: strict},
		{name: "http allowed by policy", url: "http://merchant.example.com/", policy: httpOK},
		{name: "private allowed by policy", url: "http://127.0.0.1:8080/", policy: dev},
		{name: "localhost allowed by policy", url: "http://localhost:8080/", policy: dev},

		{name: "http rejected by https-only policy", url: "http://merchant.example.com/", policy: strict, wantErr: ErrSchemeNotAllowed},
		{name: "ftp", url: "ftp://merchant.example.com/", policy: dev, wantErr: ErrSchemeNotAllowed},
		{name: "file", url: "file:///etc/passwd", policy: dev, wantErr: ErrSchemeNotAllowed},
		{name: "gopher", url: "gopher://127.0.0.1:6379/_INFO", policy: dev, wantErr: ErrSchemeNotAllowed},
		{name: "javascript", url: "javascript:alert(1)", policy: dev, wantErr: ErrSchemeNotAllowed},

		{name: "empty", url: "", policy: strict, wantErr: ErrInvalidURL},
		{name: "relative path", url: "/webhooks", policy: strict, wantErr: ErrInvalidURL},
		{name: "scheme-relative", url: "//merchant.example.com/", policy: strict, wantErr: ErrInvalidURL},
		{name: "no host", url: "https:///path", policy: strict, wantErr: ErrInvalidURL},
		{name: "opaque", url: "https:merchant.example.com", policy: strict, wantErr: ErrInvalidURL},
		{name: "port only", url: "https://:443/", policy: strict, wantErr: ErrInvalidURL},
		{name: "dot host", url: "https://./", policy: strict, wantErr: ErrInvalidURL},
		{name: "userinfo", url: "https://user:pass@merchant.example.com/", policy: strict, wantErr: ErrInvalidURL},
		{name: "userinfo without password", url: "https://user@merchant.example.com/", policy: dev, wantErr: ErrInvalidURL},
		{name: "userinfo masking host", url: "https://merchant.example.com@127.0.0.1/", policy: strict, wantErr: ErrInvalidURL},
		{name: "port zero", url: "https://merchant.example.com:0/", policy: strict, wantErr: ErrInvalidURL},
		{name: "port too large", url: "https://merchant.example.com:65536/", policy: strict, wantErr: ErrInvalidURL},
		{name: "non-numeric port", url: "https://merchant.example.com:https/", policy: strict, wantErr: ErrInvalidURL},
		{name: "space in host", url: "https://merchant example.com/", policy: strict, wantErr: ErrInvalidURL},
		{name: "control character", url: "https://merchant.example.com/\n", policy: strict, wantErr: ErrInvalidURL},
		{name: "decimal ipv4", url: "http://2130706433/", policy: httpOK, wantErr: ErrInvalidURL},
		{name: "hex ipv4", url: "http://0x7f000001/", policy: httpOK, wantErr: ErrInvalidURL},
		{name: "short ipv4", url: "http://127.1/", policy: httpOK, wantErr: ErrInvalidURL},
		{name: "octal ipv4", url: "http://0177.0.0.1/", policy: httpOK, wantErr: ErrInvalidURL},
		{name: "numeric tld", url: "https://merchant.123/", policy: strict, wantErr: ErrInvalidURL},
		{name: "ambiguous numeric even in dev", url: "http://2130706433/", policy: dev, wantErr: ErrInvalidURL},

		{name: "loopback v4", url: "https://127.0.0.1/", policy: strict, wantErr: ErrAddressNotAllowed},
		{name: "loopback v6", url: "https://[::1]/", policy: strict, wantErr: ErrAddressNotAllowed},
		{name: "private v4", url: "https://10.0.0.1/", policy: strict, wantErr: ErrAddressNotAllowed},
		{name: "metadata", url: "http://169.254.169.254/latest/meta-data", policy: httpOK, wantErr: ErrAddressNotAllowed},
		{name: "aws v6 metadata", url: "http://[fd00:ec2::254]/", policy: httpOK, wantErr: ErrAddressNotAllowed},
		{name: "unspecified", url: "http://0.0.0.0:8080/", policy: httpOK, wantErr: ErrAddressNotAllowed},
		{name: "mapped loopback", url: "https://[::ffff:127.0.0.1]/", policy: strict, wantErr: ErrAddressNotAllowed},
		{name: "link-local with zone", url: "https://[fe80::1%25eth0]/", policy: strict, wantErr: ErrAddressNotAllowed},
		{name: "localhost name", url: "https://localhost/", policy: strict, wantErr: ErrAddressNotAllowed},
		{name: "localhost name uppercase trailing dot", url: "https://LOCALHOST./", policy: strict, wantErr: ErrAddressNotAllowed},
		{name: "localhost subdomain", url: "https://api.localhost:8443/", policy: strict, wantErr: ErrAddressNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ValidateURL(tt.url, tt.policy)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("ValidateURL(%q): unexpected error: %v", tt.url, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ValidateURL(%q) = %v, want %v", tt.url, err, tt.wantErr)
			}
			for _, other := range []error{ErrInvalidURL, ErrSchemeNotAllowed, ErrAddressNotAllowed} {
				if other != tt.wantErr && errors.Is(err, other) {
					t.Fatalf("error %v also matches %v; kinds must be distinguishable", err, other)
				}
			}
		})
	}
}

func TestValidateURLErrorDoesNotLeakCredentials(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"https://user:hunter2@merchant.example.com/",
		"https://user:hunter2@merchant.example.com:bad/",
		"https://user:hunter2@merchant example.com/",
	} {
		err := ValidateURL(raw, Policy{})
		if err == nil {
			t.Fatalf("ValidateURL(%q) accepted", raw)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("error leaks password: %v", err)
		}
	}
}

// countingServer records accepted TCP connections and handled requests so
// tests can prove that a refused request never reached the server.
type countingServer struct {
	*httptest.Server
	conns atomic.Int64
	hits  atomic.Int64
}

func newCountingServer(t *testing.T, ln net.Listener) *countingServer {
	t.Helper()
	cs := &countingServer{}
	cs.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		cs.hits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	if ln != nil {
		_ = cs.Listener.Close()
		cs.Listener = ln
	}
	cs.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			cs.conns.Add(1)
		}
	}
	cs.Start()
	t.Cleanup(cs.Close)
	return cs
}

func (cs *countingServer) port(t *testing.T) string {
	t.Helper()
	_, port, err := net.SplitHostPort(cs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// assertUntouched proves no connection was made. Checking the counters
// right after the refusal would race with the server's accept loop, so it
// first completes a permitted request: accepts are served in order, so any
// earlier connection would have been counted by the time this one is.
func (cs *countingServer) assertUntouched(t *testing.T) {
	t.Helper()
	allowed := NewClient(Policy{AllowHTTP: true, AllowPrivateNetworks: true}, 5*time.Second, 1)
	defer allowed.CloseIdleConnections()
	resp, err := allowed.Get(cs.URL)
	if err != nil {
		t.Fatalf("control request: %v", err)
	}
	_ = resp.Body.Close()
	if c, h := cs.conns.Load(), cs.hits.Load(); c != 1 || h != 1 {
		t.Fatalf("server saw %d connections and %d requests, want exactly the control request", c, h)
	}
}

func assertRefused(t *testing.T, client *http.Client, target string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(`{"event":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err == nil {
		_ = resp.Body.Close()
		t.Fatalf("POST %s succeeded with %s, want refusal", target, resp.Status)
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Fatalf("error %T is not a *url.Error: %v", err, err)
	}
	if !errors.Is(err, ErrAddressNotAllowed) {
		t.Fatalf("POST %s error = %v, want ErrAddressNotAllowed", target, err)
	}
}

func TestClientRefusesNonPublicAddresses(t *testing.T) {
	t.Parallel()
	policy := Policy{AllowHTTP: true}

	loopbacks := []struct {
		name string
		v6   bool   // the server listens on [::1]
		host string // the URL's host, before the server's port
	}{
		{"v4 loopback", false, "127.0.0.1"},
		{"v6 loopback", true, "[::1]"},
		// Whether the kernel would route this to 127.0.0.1 depends on the host's dual-stack
		// settings; the point is that we never try.
		{"v4-mapped loopback", false, "[::ffff:127.0.0.1]"},
		{"unspecified reaches loopback on linux", false, "0.0.0.0"},
		// ValidateURL would reject "localhost" by name; the client must refuse it on the
		// resolved address alone, as it would for any attacker-controlled name that resolves
		// to a private address.
		{"hostname resolving to loopback", false, "localhost"},
	}
	for _, tc := range loopbacks {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var ln net.Listener
			if tc.v6 {
				var err error
				if ln, err = net.Listen("tcp6", "[::1]:0"); err != nil {
					t.Skipf("IPv6 loopback unavailable: %v", err)
				}
			}
			srv := newCountingServer(t, ln)
			client := NewClient(policy, 5*time.Second, 2)
			assertRefused(t, client, "http://"+tc.host+":"+srv.port(t)+"/")
			srv.assertUntouched(t)
		})
	}

	for _, target := range []string{
		"http://10.0.0.1/",
		"http://169.254.169.254/latest/meta-data",
		"http://[fd00:ec2::254]/latest/meta-data",
		"http://192.168.0.1:8080/admin",
	} {
		t.Run(target, func(t *testing.T) {
			t.Parallel()
			client := NewClient(policy, 5*time.Second, 2)
			start := time.Now()
			assertRefused(t, client, target)
			// These addresses may be unroutable here; a refusal that took
			// as long as a connect timeout would mean we actually dialled.
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("refusal took %s; it should happen before connecting", d)
			}
		})
	}
}

func TestClientRefusesHTTPUnderHTTPSOnlyPolicy(t *testing.T) {
	t.Parallel()
	srv := newCountingServer(t, nil)
	client := NewClient(Policy{AllowPrivateNetworks: true}, 5*time.Second, 2)

	body := &closeTracker{Reader: strings.NewReader("{}")}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err == nil {
		_ = resp.Body.Close()
		t.Fatal("http request succeeded under https-only policy")
	}
	if !errors.Is(err, ErrSchemeNotAllowed) {
		t.Fatalf("error = %v, want ErrSchemeNotAllowed", err)
	}
	if !body.closed.Load() {
		t.Fatal("request body not closed on refusal")
	}
	srv.assertUntouched(t)
}

type closeTracker struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeTracker) Close() error {
	c.closed.Store(true)
	return nil
}

func TestClientAllowPrivateNetworksReachesLoopback(t *testing.T) {
	t.Parallel()
	srv := newCountingServer(t, nil)
	client := NewClient(Policy{AllowHTTP: true, AllowPrivateNetworks: true}, 5*time.Second, 2)
	for _, target := range []string{srv.URL, "http://localhost:" + srv.port(t) + "/"} {
		resp, err := client.Post(target, "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatalf("POST %s: %v", target, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("POST %s status = %d, want 204", target, resp.StatusCode)
		}
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("server hits = %d, want 2", got)
	}
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	var targetHits atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/start", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/target", http.StatusFound)
	})
	mux.HandleFunc("/target", func(w http.ResponseWriter, _ *http.Request) {
		targetHits.Add(1)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	client := NewClient(Policy{AllowHTTP: true, AllowPrivateNetworks: true}, 5*time.Second, 2)
	resp, err := client.Post(srv.URL+"/start", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status = %d, want 302", resp.StatusCode)
	}
	if loc := resp.Header.Get("Location"); loc != "/target" {
		t.Fatalf("Location = %q, want /target", loc)
	}
	if got := targetHits.Load(); got != 0 {
		t.Fatalf("redirect target got %d hits, want 0", got)
	}
}

// stallingServer answers each request with first (if any) and then hangs until the client goes
// away or the test ends.
func stallingServer(t *testing.T, first func(http.ResponseWriter)) *httptest.Server {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if first != nil {
			first(w)
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	return srv
}

func TestClientTimeout(t *testing.T) {
	t.Parallel()
	srv := stallingServer(t, nil)

	client := NewClient(Policy{AllowHTTP: true, AllowPrivateNetworks: true}, 200*time.Millisecond, 2)
	start := time.Now()
	resp, err := client.Get(srv.URL)
	if err == nil {
		_ = resp.Body.Close()
		t.Fatal("request to a hanging server succeeded")
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("error = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("timeout took %s", d)
	}
}

func TestNewClientConfiguration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		policy        Policy
		timeout       time.Duration
		maxConns      int
		wantTimeout   time.Duration
		wantMaxConns  int
		wantHandshake time.Duration
		wantControl   bool
	}{
		{name: "explicit values", policy: Policy{}, timeout: 30 * time.Second, maxConns: 4,
			wantTimeout: 30 * time.Second, wantMaxConns: 4, wantHandshake: maxTLSHandshakeTimeout, wantControl: true},
		{name: "short timeout caps handshake", policy: Policy{}, timeout: 3 * time.Second, maxConns: 16,
			wantTimeout: 3 * time.Second, wantMaxConns: 16, wantHandshake: 3 * time.Second, wantControl: true},
		{name: "non-positive values use defaults", policy: Policy{}, timeout: 0, maxConns: -1,
			wantTimeout: DefaultTimeout, wantMaxConns: DefaultMaxConnsPerHost, wantHandshake: min(DefaultTimeout, maxTLSHandshakeTimeout), wantControl: true},
		{name: "private networks skip the check", policy: Policy{AllowPrivateNetworks: true}, timeout: time.Second, maxConns: 1,
			wantTimeout: time.Second, wantMaxConns: 1, wantHandshake: time.Second, wantControl: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := NewClient(tt.policy, tt.timeout, tt.maxConns)
			if c.Timeout != 0 {
				t.Errorf("client Timeout = %s: the transport enforces the timeout (no goroutine per request)", c.Timeout)
			}
			if c.CheckRedirect == nil || !errors.Is(c.CheckRedirect(nil, nil), http.ErrUseLastResponse) {
				t.Error("CheckRedirect does not stop redirects")
			}
			if c.Jar != nil {
				t.Error("cookie jar set; cookies from one merchant must not reach another")
			}
			tr, ok := c.Transport.(*transport)
			if !ok {
				t.Fatalf("Transport is %T", c.Transport)
			}
			if tr.timeout != tt.wantTimeout {
				t.Errorf("timeout = %s, want %s", tr.timeout, tt.wantTimeout)
			}
			if tr.policy != tt.policy {
				t.Errorf("policy = %+v, want %+v", tr.policy, tt.policy)
			}
			b := tr.base
			if b.Proxy != nil {
				t.Error("Proxy is set; a proxy would bypass the address check")
			}
			if b.DialContext == nil {
				t.Error("DialContext not set")
			}
			if b.MaxConnsPerHost != tt.wantMaxConns || b.MaxIdleConnsPerHost != tt.wantMaxConns {
				t.Errorf("MaxConnsPerHost/MaxIdleConnsPerHost = %d/%d, want %d", b.MaxConnsPerHost, b.MaxIdleConnsPerHost, tt.wantMaxConns)
			}
			if b.TLSHandshakeTimeout != tt.wantHandshake {
				t.Errorf("TLSHandshakeTimeout = %s, want %s", b.TLSHandshakeTimeout, tt.wantHandshake)
			}
			if b.IdleConnTimeout <= 0 || b.MaxIdleConns <= 0 || b.MaxResponseHeaderBytes <= 0 {
				t.Errorf("pool limits not set: idle timeout %s, max idle %d, max header %d", b.IdleConnTimeout, b.MaxIdleConns, b.MaxResponseHeaderBytes)
			}
			if b.TLSClientConfig == nil || b.TLSClientConfig.InsecureSkipVerify || b.TLSClientConfig.MinVersion < 0x0303 {
				t.Error("TLS config must verify certificates and require TLS 1.2+")
			}
			// Whether the address check is installed is observable through
			// dialling a refused address.
			_, err := b.DialContext(t.Context(), "tcp", "127.0.0.1:1")
			if refused := errors.Is(err, ErrAddressNotAllowed); refused != tt.wantControl {
				t.Errorf("dial 127.0.0.1 refused by policy = %v (err %v), want %v", refused, err, tt.wantControl)
			}
		})
	}
}

func TestControlPublicOnly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		network string
		address string
		wantErr bool
	}{
		{name: "public v4", network: "tcp4", address: "8.8.8.8:443"},
		{name: "public v6", network: "tcp6", address: "[2606:4700:4700::1111]:443"},
		{name: "public via tcp", network: "tcp", address: "1.1.1.1:80"},
		{name: "loopback v4", network: "tcp4", address: "127.0.0.1:443", wantErr: true},
		{name: "loopback v6", network: "tcp6", address: "[::1]:443", wantErr: true},
		{name: "metadata", network: "tcp4", address: "169.254.169.254:80", wantErr: true},
		{name: "mapped private", network: "tcp6", address: "[::ffff:10.1.2.3]:80", wantErr: true},
		{name: "link-local with zone", network: "tcp6", address: "[fe80::1%eth0]:80", wantErr: true},
		{name: "udp", network: "udp4", address: "8.8.8.8:53", wantErr: true},
		{name: "unix", network: "unix", address: "/var/run/docker.sock", wantErr: true},
		{name: "unresolved name", network: "tcp", address: "example.com:443", wantErr: true},
		{name: "missing port", network: "tcp4", address: "8.8.8.8", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := controlPublicOnly(tt.network, tt.address, nil)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrAddressNotAllowed) {
				t.Fatalf("error = %v, want ErrAddressNotAllowed", err)
			}
		})
	}
}

func TestClientRefusalNamesAddress(t *testing.T) {
	t.Parallel()
	client := NewClient(Policy{AllowHTTP: true}, 5*time.Second, 1)
	resp, err := client.Get("http://127.0.0.1:" + strconv.Itoa(1) + "/")
	if err == nil {
		_ = resp.Body.Close()
		t.Fatal("expected refusal")
	}
	if !errors.Is(err, ErrAddressNotAllowed) {
		t.Fatalf("error = %v, want ErrAddressNotAllowed", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("error %q does not name the refused address", err)
	}
}

// The timeout bounds the whole exchange: a server that sends its headers and then stalls the
// body does not hold the reader past it.
func TestClientTimeoutCoversTheBody(t *testing.T) {
	t.Parallel()
	srv := stallingServer(t, func(w http.ResponseWriter) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
	})

	client := NewClient(Policy{AllowHTTP: true, AllowPrivateNetworks: true}, 200*time.Millisecond, 2)
	start := time.Now()
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatalf("headers should arrive in time: %v", err)
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	if err == nil {
		t.Fatal("reading a stalled body succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("reading the body was cut after %s, want about the 200ms timeout", d)
	}
}
