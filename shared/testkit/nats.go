// Package testkit starts the real infrastructure integration tests run against: an embedded
// nats-server with JetStream in a temp dir (restartable mid-test) and a throwaway Postgres
// database per test.
package testkit

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATS is an embedded nats-server with JetStream. Restart keeps its port and store dir, so
// clients reconnect and streams survive, as with a real server restart.
type NATS struct {
	tb   testing.TB
	opts server.Options
	srv  *server.Server
}

// MustNATS starts a server on a random port with its own store dir; it stops at test cleanup.
func MustNATS(tb testing.TB) *NATS {
	tb.Helper()
	n := &NATS{tb: tb, opts: server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  tb.TempDir(),
		NoLog:     true,
		NoSigs:    true,
		// Large enough for the benchmark's pending messages.
		MaxPayload: 8 << 20,
	}}
	n.start()
	n.opts.Port = n.srv.Addr().(*net.TCPAddr).Port
	tb.Cleanup(n.Shutdown)
	return n
}

func (n *NATS) start() {
	n.tb.Helper()
	opts := n.opts
	srv, err := server.NewServer(&opts)
	if err != nil {
		n.tb.Fatalf("nats-server: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		n.tb.Fatalf("nats-server not ready")
	}
	n.srv = srv
}

// URL is the client URL; it does not change across restarts.
func (n *NATS) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.opts.Port) }

// Server exposes the running server (for JetStream introspection in tests).
func (n *NATS) Server() *server.Server { return n.srv }

// Shutdown stops the server and waits until it is gone.
func (n *NATS) Shutdown() {
	if n.srv == nil {
		return
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.srv = nil
}

// Restart stops the server and starts it again on the same port and store.
func (n *NATS) Restart() {
	n.tb.Helper()
	n.Shutdown()
	n.start()
}

// MustJetStream connects to the NATS server at url and returns the connection and its JetStream
// context. The connection reconnects without limit, every 50 ms, so that it outlives a server
// Restart; it is closed at test cleanup.
func MustJetStream(tb testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		tb.Fatalf("connect to %s: %v", url, err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return nc, js
}

// ConsumerInfo is the server's current view of a stream's consumer: what a test polls to see it
// deliver, ack or redeliver.
func ConsumerInfo(ctx context.Context, js jetstream.JetStream, stream, consumer string) (*jetstream.ConsumerInfo, error) {
	c, err := js.Consumer(ctx, stream, consumer)
	if err != nil {
		return nil, err
	}
	return c.Info(ctx)
}
