package testkit

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestMain(m *testing.M) { Main(m) }

func TestNATSRestartKeepsStreamsAndPort(t *testing.T) {
	n := MustNATS(t)
	streamSurvives(t, n.URL(), 20*time.Second, "restart", n.Restart)
}

// streamSurvives creates stream T holding one message on the server at url, calls restart, and
// checks that the stream and its message are back within timeout; it returns the connection.
func streamSurvives(t *testing.T, url string, timeout time.Duration, after string, restart func()) *nats.Conn {
	t.Helper()
	nc, js := MustJetStream(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	restart()
	var s jetstream.Stream
	var err error
	if !Poll(timeout, func() bool { s, err = js.Stream(ctx, "T"); return err == nil }) {
		t.Fatalf("stream not back after %s: %v", after, err)
	}
	if got := s.CachedInfo().State.Msgs; got != 1 {
		t.Fatalf("messages after %s = %d, want 1", after, got)
	}
	return nc
}

func TestDatabasesAreMigratedAndIsolated(t *testing.T) {
	db1, url1 := MustDB(t)
	_, url2 := MustDB(t)
	if url1 == url2 {
		t.Fatal("two tests got the same database")
	}
	if n := Count(t, db1, `SELECT count(*) FROM schema_migrations`); n == 0 {
		t.Fatalf("migrations not applied: n=%d", n)
	}
	if _, err := db1.Exec(`INSERT INTO merchants (id, name) VALUES ('m1','a')`); err != nil {
		t.Fatal(err)
	}
}

// The pinned nats-server as a process: JetStream survives a SIGKILL and a SIGTERM restart on the
// same port, as a deployment's server does.
func TestNATSProcessSurvivesKillAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds nats-server")
	}
	n := MustNATSProcess(t)
	nc := streamSurvives(t, n.URL(), 30*time.Second, "a kill and a restart", func() {
		n.KillAndRestart()
		n.Restart()
	})
	v, ok := nc.ConnectedServerVersion(), true
	if !ok || v != NATSServerVersion {
		t.Fatalf("connected to nats-server %q, want %s", v, NATSServerVersion)
	}
}

// recorder is a testing.TB that records failures instead of failing the test running it.
type recorder struct {
	testing.TB
	failures []string
	cleanups []func()
}

func (r *recorder) Helper()          {}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }

// Fatalf records the failure and ends the goroutine, as testing.T's does.
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

// failures runs f with a recorder in a goroutine of its own, as a test would run, then its
// cleanups, and returns what failed.
func failures(f func(tb testing.TB)) []string {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	return r.failures
}

func TestEventually(t *testing.T) {
	var looks atomic.Int32
	if got := failures(func(tb testing.TB) {
		Eventually(tb, 5*time.Second, "the third look", func() bool { return looks.Add(1) == 3 })
	}); len(got) != 0 {
		t.Fatalf("a condition that came to hold: %q", got)
	}
	start := time.Now()
	got := failures(func(tb testing.TB) { Eventually(tb, 100*time.Millisecond, "nothing", func() bool { return false }) })
	if len(got) != 1 || !strings.Contains(got[0], "timed out after 100ms waiting for nothing") {
		t.Fatalf("a condition that never holds: %q", got)
	}
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Fatalf("gave up after %v, before the timeout", took)
	}
}

func TestNever(t *testing.T) {
	start := time.Now()
	if got := failures(func(tb testing.TB) { Never(tb, 100*time.Millisecond, "anything", func() bool { return false }) }); len(got) != 0 {
		t.Fatalf("a condition that never held: %q", got)
	}
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Fatalf("returned after %v, before the end of the window", took)
	}
	cases := []struct {
		name string
		from time.Duration // the condition holds from then on
	}{
		{"at once", 0},
		{"in the window", 50 * time.Millisecond},
		{"at the end of the window", 100 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			got := failures(func(tb testing.TB) {
				Never(tb, 100*time.Millisecond, "a late arrival", func() bool { return time.Since(start) >= tc.from })
			})
			if len(got) != 1 || got[0] != "a late arrival (within 100ms)" {
				t.Fatalf("failures %q, want the one naming what happened", got)
			}
		})
	}
}

type validated struct{ err error }

func (v validated) Validate() error { return v.err }

func TestStartInProcess(t *testing.T) {
	running := func(ctx context.Context, _ validated) error { <-ctx.Done(); return nil }
	if got := failures(func(tb testing.TB) {
		StartInProcess(tb, "svc", validated{}, running).WaitReady(5*time.Second, "svc ready", func() bool { return true })
	}); len(got) != 0 {
		t.Fatalf("a service that starts and stops: %q", got)
	}
	if got := failures(func(tb testing.TB) {
		StartInProcess(tb, "svc", validated{errors.New("config: X: bad")}, running)
	}); len(got) != 1 || got[0] != "config: X: bad" {
		t.Fatalf("an invalid config: %q", got)
	}
	failing := func(context.Context, validated) error { return errors.New("no database") }
	got := failures(func(tb testing.TB) {
		StartInProcess(tb, "svc", validated{}, failing).WaitReady(5*time.Second, "svc ready", func() bool { return false })
	})
	if len(got) != 2 || got[0] != "svc exited at start: no database" || got[1] != "svc: no database" {
		t.Fatalf("a service that cannot start: %q, want it said at once and at cleanup", got)
	}
}

// A second server on a port another one holds exits ("address already in use"); the first one
// answering on the port must not pass for it.
func TestNATSProcessRefusesAPortAnotherServerHolds(t *testing.T) {
	first := MustNATSProcess(t)
	dir := t.TempDir()
	second, err := StartNATSProcess(first.Port(), filepath.Join(dir, "store"), filepath.Join(dir, "log"))
	if err == nil {
		second.Shutdown()
		t.Fatalf("a second nats-server on port %d started; the first one answered for it", first.Port())
	}
	t.Logf("refused: %v", firstLine(err.Error()))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
