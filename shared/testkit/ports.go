package testkit

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"testing"
)

// FreePort is a TCP port on 127.0.0.1 that was free a moment ago, for a server started in
// another process (nats-server, Postgres, a service binary) that must be told its port. It is
// picked below the kernel's ephemeral range: a port taken from that range (by listening on :0)
// and released can be given to any outgoing connection of the machine before the server binds it
// — which happened under load — while a port below it is only ever taken by a listener.
func FreePort() (int, error) {
	low := ephemeralLow()
	const base = 12000
	if low <= base+1000 {
		return anyPort()
	}
	for range 100 {
		port := base + rand.IntN(low-base)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return anyPort()
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux), 32768 if unknown.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	var low, high int
	if _, err := fmt.Sscan(string(b), &low, &high); err != nil || low <= 0 {
		return 32768
	}
	return low
}

func anyPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreeAddr is 127.0.0.1:port for a FreePort, for a server the test starts and must know the
// address of before it listens.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	port, err := FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}
