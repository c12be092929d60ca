package chains

import (
	"bytes"
	"strings"
	"testing"
)

// The error object is found however the body is split into reads and with white space after
// the key; an "error" string (a tracer's field) or the word inside a value is not one.
func TestErrorScan(t *testing.T) {
	for _, c := range []struct {
		name   string
		chunks []string
		want   bool
	}{
		{"geth error", []string{`{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"x"}}`}, true},
		{"split in the key", []string{`{"id":1,"err`, `or":`, `{"code":1}}`}, true},
		{"white space", []string{`{"error": `, "\n {\"code\":1}}"}, true},
		{"in a batch", []string{`[{"id":1,"result":"0x1"},{"id":2,"error":{"code":3}}]`}, true},
		{"result", []string{`{"jsonrpc":"2.0","id":1,"result":"0x10"}`}, false},
		{"tracer error string", []string{`{"id":1,"result":[{"type":"CALL","error":"execution reverted"}]}`}, false},
		{"repeated quote", []string{`{""error":{}`}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var s errorScan
			for _, ch := range c.chunks {
				s.feed([]byte(ch))
			}
			if s.found != c.want {
				t.Fatalf("found %v, want %v", s.found, c.want)
			}
		})
	}
}

func TestRPCMethod(t *testing.T) {
	for _, c := range []struct {
		body   string
		method string
		batch  bool
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}`, "eth_blockNumber", false},
		{` [{"method":"eth_getBlockByNumber"},{"method":"eth_getBlockByNumber"}]`, "eth_getBlockByNumber", true},
		{`[{"method":"eth_getBlockByNumber"},{"method":"eth_getTransactionReceipt"}]`, "batch", true},
		{`{"method":"eth_call\"; DROP"}`, "unknown", false},
		{`not json`, "unknown", false},
	} {
		if m, b := rpcMethod([]byte(c.body)); m != c.method || b != c.batch {
			t.Errorf("%s: %q %v, want %q %v", c.body, m, b, c.method, c.batch)
		}
	}
}

// The scan's cost per byte of response (a block batch answer is a few MB during catch-up).
func BenchmarkErrorScan(b *testing.B) {
	chunk := []byte(`{"jsonrpc":"2.0","id":7,"result":{"hash":"0x` + strings.Repeat("ab", 32) + `","transactions":[{"input":"0x` + strings.Repeat("a9059cbb", 64) + `"}]}},`)
	body := bytes.Repeat(chunk, 1<<20/len(chunk))
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var s errorScan
		for i := 0; i < len(body); i += 32 << 10 {
			s.feed(body[i:min(i+32<<10, len(body))])
		}
		if s.found {
			b.Fatal("found an error object in a result")
		}
	}
}
