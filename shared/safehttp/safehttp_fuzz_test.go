package safehttp

import (
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// FuzzValidateURL: a URL the strict policy accepts is an absolute https URL without user info
// whose host, when it is an IP literal, is public; every refusal wraps one of the three
// errors and never repeats the URL (it may hold credentials). No DNS: only IP-literal hosts
// are judged, which is what ValidateURL does.
func FuzzValidateURL(f *testing.F) {
	for _, s := range []string{
		"https://example.com/hook", "https://93.184.216.34/", "https://[2606:4700::1111]/", "http://example.com/",
		"https://127.0.0.1/", "https://localhost/", "https://a.localhost./", "https://10.0.0.1/", "https://169.254.169.254/latest",
		"https://[::1]/", "https://[::ffff:127.0.0.1]/", "https://[::ffff:7f00:1]/", "https://[64:ff9b::a9fe:a9fe]/",
		"https://[fd00:ec2::254]/", "https://[fe80::1%25eth0]/", "https://[2002:7f00:1::]/", "https://0.0.0.0/",
		"http://2130706433/", "http://0x7f.1/", "https://127.1/", "https://0177.0.0.1/", "https://good.com@127.0.0.1/",
		"https://user:pass@example.com/", "https://example.com:0/", "https://example.com:65536/", "https://example.com:/",
		"ftp://example.com/", "//example.com/", "https:example.com", "https://", "https://%31%32%37.0.0.1/",
		"https://example.com\x00.evil/", "https://exa mple.com/", "HTTPS://EXAMPLE.COM/", "https://1.1.1.1.",
	} {
		f.Add(s, false, false)
		f.Add(s, true, false)
		f.Add(s, true, true)
	}
	f.Fuzz(func(t *testing.T, raw string, allowHTTP, allowPrivate bool) {
		p := Policy{AllowHTTP: allowHTTP, AllowPrivateNetworks: allowPrivate}
		err := ValidateURL(raw, p)
		if err != nil {
			if !errors.Is(err, ErrInvalidURL) && !errors.Is(err, ErrSchemeNotAllowed) && !errors.Is(err, ErrAddressNotAllowed) {
				t.Fatalf("%q: error %v wraps none of the policy errors", raw, err)
			}
			if len(raw) > 8 && strings.Contains(err.Error(), raw) {
				t.Fatalf("error repeats the URL: %v", err)
			}
			return
		}
		u, perr := url.Parse(raw)
		if perr != nil || !u.IsAbs() || u.User != nil || u.Opaque != "" || u.Hostname() == "" {
			t.Fatalf("%q accepted: %+v %v", raw, u, perr)
		}
		switch scheme := strings.ToLower(u.Scheme); {
		case scheme == "https":
		case scheme == "http" && allowHTTP:
		default:
			t.Fatalf("%q accepted with scheme %q under %+v", raw, u.Scheme, p)
		}
		if allowPrivate {
			return
		}
		host := u.Hostname()
		if ip, err := netip.ParseAddr(host); err == nil {
			ip = ip.WithZone("").Unmap()
			if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
				ip.IsMulticast() || ip.IsUnspecified() || !IsPublicIP(ip) {
				t.Fatalf("%q accepted: %s is not public", raw, ip)
			}
			if ip == netip.MustParseAddr("169.254.169.254") || ip == netip.MustParseAddr("fd00:ec2::254") {
				t.Fatalf("%q accepted: metadata address", raw)
			}
			return
		}
		name := strings.TrimSuffix(strings.ToLower(host), ".")
		if name == "localhost" || strings.HasSuffix(name, ".localhost") {
			t.Fatalf("%q accepted: loopback name", raw)
		}
		// A host a resolver could read as an IPv4 address (decimal, octal, hex, short forms)
		// must not get through as a "name".
		last := name[strings.LastIndexByte(name, '.')+1:]
		hex, isHex := strings.CutPrefix(last, "0x")
		if last != "" && ((isHex && strings.Trim(hex, "0123456789abcdef") == "") || strings.Trim(last, "0123456789") == "") {
			t.Fatalf("%q accepted: numeric host %q", raw, host)
		}
	})
}
