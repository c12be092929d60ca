package rest

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/lib/pq"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ctrip-pay/pipeline/shared/chains"
	"github.com/ctrip-pay/pipeline/shared/deadletter"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// closedAddr is a local address nothing listens on: dialing it is refused at once.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// resetErr reads from a connection the peer aborted (SO_LINGER 0 sends RST): ECONNRESET.
func resetErr(t *testing.T) error {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		_ = c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}()
	// The reset can arrive before connect returns or on the first read, depending on timing.
	c, err := net.Dial("tcp", l.Addr().String())
	if err == nil {
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = c.Read(make([]byte, 1))
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("aborted connection: %v, want a reset", err)
	}
	return err
}

// natsErrs returns real errors from a real server: a publish on a closed connection, a request
// nobody answers, a request answered too late, and a JetStream publish no stream takes.
func natsErrs(t *testing.T) (closed, noResponders, timeout, noStream error) {
	t.Helper()
	srv := testkit.MustNATS(t)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_, noResponders = nc.Request("nobody.listens", nil, 5*time.Second)
	sub, err := nc.SubscribeSync("never.answers")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	_, timeout = nc.Request("never.answers", nil, 50*time.Millisecond)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, noStream = js.Publish(ctx, "no.stream.here", nil, jetstream.WithRetryAttempts(0))
	other, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	other.Close()
	closed = other.Publish("x", nil)
	return closed, noResponders, timeout, noStream
}

func TestUnavailableClassifiesRealErrors(t *testing.T) {
	addr := closedAddr(t)
	_, dialErr := net.Dial("tcp", addr)
	db, err := sql.Open("postgres", "postgres://postgres@"+addr+"/postgres?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pingErr := db.PingContext(context.Background())
	_, noServers := nats.Connect("nats://" + addr)
	closed, noResponders, timeout, noStream := natsErrs(t)
	expired, cancel := context.WithTimeout(context.Background(), -time.Second)
	defer cancel()
	canceled, cancel2 := context.WithCancel(context.Background())
	cancel2()

	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"dial refused", dialErr, true},
		{"dial refused, wrapped by the store", fmt.Errorf("list payments: %w", dialErr), true},
		{"connection reset by peer", resetErr(t), true},
		{"lib/pq ping of a stopped server", pingErr, true},
		{"bad connection", fmt.Errorf("commit payment: %w", driver.ErrBadConn), true},
		{"connection done", sql.ErrConnDone, true},
		{"admin shutdown 57P01", &pq.Error{Severity: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"}, true},
		{"crash shutdown 57P02", &pq.Error{Code: "57P02"}, true},
		{"cannot connect now 57P03", fmt.Errorf("payment: %w", &pq.Error{Code: "57P03", Message: "the database system is starting up"}), true},
		{"connection failure 08006", &pq.Error{Code: "08006"}, true},
		{"cannot establish 08001", &pq.Error{Code: "08001"}, true},
		{"store deadline", fmt.Errorf("attempts: %w", expired.Err()), true},
		{"nats no servers", noServers, true},
		{"nats connection closed", closed, true},
		{"nats no responders", noResponders, true},
		{"nats timeout", timeout, true},
		{"jetstream no stream response", noStream, true},

		{"unique violation 23505", &pq.Error{Code: "23505"}, false},
		{"NUL in text 22021", &pq.Error{Code: "22021", Message: `invalid byte sequence for encoding "UTF8": 0x00`}, false},
		{"unsupported escape 22P05", &pq.Error{Code: "22P05"}, false},
		{"query canceled 57014", &pq.Error{Code: "57014"}, false},
		{"serialization failure 40001", &pq.Error{Code: "40001"}, false},
		{"client went away", fmt.Errorf("list payments: %w", canceled.Err()), false},
		{"not found", ErrNotFound, false},
		{"plain error", errors.New("derive address: no valid child key in 3 indexes"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil {
				t.Fatal("the case has no error to classify")
			}
			if got := unavailable(tc.err); got != tc.want {
				t.Fatalf("unavailable(%T %v) = %v, want %v", tc.err, tc.err, got, tc.want)
			}
		})
	}
}

// fakeStore answers what a test sets; any other call panics (the embedded Store is nil).
type fakeStore struct {
	Store
	authErr    error
	deadLetter deadletter.Letter
	marked     bool
}

func (f *fakeStore) MerchantByKeyHash(context.Context, []byte) (string, error) {
	return "mch_1", f.authErr
}

func (f *fakeStore) DeadLetter(context.Context, string, string) (deadletter.Letter, error) {
	return f.deadLetter, nil
}

func (f *fakeStore) MarkReplayed(context.Context, string, int) (int, error) {
	f.marked = true
	return 1, nil
}

type fakeWallet struct{}

func (fakeWallet) Address(int64) (common.Address, error) { return common.Address{}, nil }

type fakePublisher struct{ err error }

func (p fakePublisher) PublishMsg(context.Context, *nats.Msg, ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	return nil, p.err
}

func testServer(t *testing.T, store Store, js Publisher) *httptest.Server {
	t.Helper()
	h, err := New(Config{Store: store, Chains: &chains.File{}, Wallet: fakeWallet{}, JS: js, AdminToken: "admin-token-0123456789",
		DefaultTTL: time.Hour, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

type answer struct {
	status     int
	retryAfter string
	code       string
	message    string
}

func get(t *testing.T, method, url string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+APIKeyPrefix+"test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error apiError `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("error body: %v", err)
	}
	return answer{resp.StatusCode, resp.Header.Get("Retry-After"), body.Error.Code, body.Error.Message}
}

// A store error on the way in (authentication) answers 503 + Retry-After when the database is
// unreachable and a plain 500 otherwise.
func TestStoreUnavailableIs503(t *testing.T) {
	_, dialErr := net.Dial("tcp", closedAddr(t))
	tests := []struct {
		name       string
		err        error
		status     int
		code       string
		retryAfter string
	}{
		{"dial refused", fmt.Errorf("merchant by key: %w", dialErr), 503, "unavailable", "5"},
		{"admin shutdown", &pq.Error{Severity: "FATAL", Code: "57P01"}, 503, "unavailable", "5"},
		{"a bug", errors.New("scan: unexpected column"), 500, "internal_error", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := testServer(t, &fakeStore{authErr: tc.err}, fakePublisher{})
			a := get(t, "GET", srv.URL+"/v1/payments")
			if a.status != tc.status || a.code != tc.code || a.retryAfter != tc.retryAfter || a.message == "" {
				t.Fatalf("got %+v, want %d %s Retry-After %q", a, tc.status, tc.code, tc.retryAfter)
			}
			if strings.Contains(a.message, "refused") || strings.Contains(a.message, "57P01") {
				t.Errorf("message %q leaks the cause", a.message)
			}
		})
	}
}

// A replay whose publish fails is a 503 with Retry-After, and is not counted.
func TestReplayPublishFailureIs503(t *testing.T) {
	closed, noResponders, timeout, noStream := natsErrs(t)
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"connection closed", closed}, {"no responders", noResponders}, {"timeout", timeout}, {"no stream", noStream},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &fakeStore{deadLetter: deadletter.Letter{ID: "dl_1", OriginSubject: "webhooks.x", Body: []byte(`{}`)}}
			srv := testServer(t, store, fakePublisher{err: tc.err})
			a := get(t, "POST", srv.URL+"/v1/dead-letters/dl_1/replay")
			if a.status != 503 || a.code != "unavailable" || a.retryAfter != "5" || !strings.Contains(a.message, "retry") {
				t.Fatalf("got %+v, want 503 unavailable with Retry-After 5", a)
			}
			if store.marked {
				t.Error("a replay that was not published was counted")
			}
		})
	}
}

func TestCheckJSONTextBounds(t *testing.T) {
	tests := []struct {
		name, json, path string // path "" means accepted
	}{
		{"exponent 1000", `1e1000`, ""},
		{"exponent 1001", `1e1001`, "m"},
		{"9.99e1000", `9.99e1000`, ""},
		{"0.1e1001 is 1e1000", `0.1e1001`, ""},
		{"0.1e1002 is 1e1001", `0.1e1002`, "m"},
		{"10e1000 is 1e1001", `10e1000`, "m"},
		{"exponent -1000", `-1e-1000`, ""},
		{"0.1e-999 is 1e-1000", `0.1e-999`, ""},
		{"0.1e-1000 is 1e-1001", `0.1e-1000`, "m"},
		{"1000 zeros after the point", `0.` + strings.Repeat("0", 999) + `1`, ""},
		{"1001 zeros after the point", `0.` + strings.Repeat("0", 1000) + `1`, "m"},
		{"100 significant digits", strings.Repeat("7", 100), ""},
		{"101 significant digits", strings.Repeat("7", 101), "m"},
		{"leading zeros are not significant", `0.00` + strings.Repeat("7", 100), ""},
		{"trailing zeros are", `1.` + strings.Repeat("0", 100), "m"},
		{"zero with many digits", `0.` + strings.Repeat("0", 2000), ""},
		{"zero, exponent 1000", `-0e1000`, ""},
		{"zero, exponent 1001", `0E1001`, "m"},
		{"exponent too long to parse", `1e-` + strings.Repeat("9", 40), "m"},
		{"key path", `{"a.b":{"c":[0,{"d":1e2000}]}}`, "m.a.b.c.1.d"},
		{"bad key names its object", `{"a":{"ok":1,"\u0000":2}}`, "m.a"},
		{"escapes before a pair", `"\\\"\ud83d\ude00"`, ""},
		{"escaped backslash then u", `"\\u0000"`, ""},
		{"raw U+FFFD is a character", "\"\xef\xbf\xbd\"", ""},
		{"whitespace everywhere", " { \"a\" : [ 1 , \"\\u0000\" ] } ", "m.a.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !json.Valid([]byte(tc.json)) {
				t.Fatalf("the case is not valid JSON: %s", tc.json)
			}
			path, problem := checkJSONText([]byte(tc.json), "m")
			if (problem == "") != (tc.path == "") || path != tc.path {
				t.Fatalf("got path %q problem %q, want path %q", path, problem, tc.path)
			}
		})
	}
}
