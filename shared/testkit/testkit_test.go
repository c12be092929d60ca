package testkit

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestMain(m *testing.M) { Main(m) }

func TestNATSRestartKeepsStreamsAndPort(t *testing.T) {
	n := MustNATS(t)
	nc, err := nats.Connect(n.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	n.Restart()
	for {
		s, err := js.Stream(ctx, "T")
		if err == nil {
			if s.CachedInfo().State.Msgs != 1 {
				t.Fatalf("messages after restart = %d, want 1", s.CachedInfo().State.Msgs)
			}
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("stream not back after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDatabasesAreMigratedAndIsolated(t *testing.T) {
	db1, url1 := MustDB(t)
	_, url2 := MustDB(t)
	if url1 == url2 {
		t.Fatal("two tests got the same database")
	}
	var n int
	if err := db1.Get(&n, `SELECT count(*) FROM schema_migrations`); err != nil || n == 0 {
		t.Fatalf("migrations not applied: n=%d err=%v", n, err)
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
	nc, err := nats.Connect(n.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	n.KillAndRestart()
	n.Restart()
	for {
		s, err := js.Stream(ctx, "T")
		if err == nil {
			if got := s.CachedInfo().State.Msgs; got != 1 {
				t.Fatalf("messages after a kill and a restart = %d, want 1", got)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("stream not back after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	v, ok := nc.ConnectedServerVersion(), true
	if !ok || v != NATSServerVersion {
		t.Fatalf("connected to nats-server %q, want %s", v, NATSServerVersion)
	}
}
