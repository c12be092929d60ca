// Package testkit starts the real infrastructure integration tests run against: an embedded
// nats-server with JetStream in a temp dir (restartable mid-test) and a throwaway Postgres
// database per test.
package testkit

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
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
