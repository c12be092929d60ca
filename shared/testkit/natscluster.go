package testkit

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSCluster is nats-server processes forming one JetStream cluster on 127.0.0.1, as a
// production deployment runs NATS (three nodes, streams at R3).
type NATSCluster struct {
	Nodes []*TestNATSProcess
	tb    testing.TB
}

var _ NATSServer = (*NATSCluster)(nil)

// MustNATSCluster starts n nodes routed to each other and waits until JetStream answers on every
// one (its meta leader elected). Each node keeps its ports and store across Kill and Restart.
func MustNATSCluster(tb testing.TB, n int) *NATSCluster {
	tb.Helper()
	clusterPorts := make([]int, n)
	routes := make([]string, n)
	for i := range n {
		p, err := FreePort()
		if err != nil {
			tb.Fatal(err)
		}
		clusterPorts[i], routes[i] = p, fmt.Sprintf("nats://127.0.0.1:%d", p)
	}
	c := &NATSCluster{tb: tb}
	for i := range n {
		dir := tb.TempDir()
		p, err := StartNATSProcess(0, filepath.Join(dir, "store"), filepath.Join(dir, "nats-server.log"),
			"-n", fmt.Sprintf("n%d", i+1), "--cluster_name", "ctrip",
			"--cluster", fmt.Sprintf("nats://127.0.0.1:%d", clusterPorts[i]), "--routes", strings.Join(routes, ","))
		if err != nil {
			tb.Fatalf("nats-server node %d: %v", i+1, err)
		}
		node := &TestNATSProcess{NATSProcess: p, tb: tb}
		c.Nodes = append(c.Nodes, node)
		tb.Cleanup(func() {
			node.Shutdown()
			if tb.Failed() {
				tb.Logf("nats-server n%d log (last lines):\n%s", i+1, node.LogTail(30))
			}
		})
	}
	for _, node := range c.Nodes {
		c.waitJetStream(node.URL())
	}
	return c
}

// URL lists every node, as clients of a cluster are configured.
func (c *NATSCluster) URL() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL()
	}
	return strings.Join(urls, ",")
}

// Restart restarts the nodes one after another, each back in the cluster before the next.
func (c *NATSCluster) Restart() {
	c.tb.Helper()
	for _, n := range c.Nodes {
		n.Restart()
		c.waitJetStream(n.URL())
	}
}

// waitJetStream waits until the node answers JetStream API requests.
func (c *NATSCluster) waitJetStream(url string) {
	c.tb.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		c.tb.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		c.tb.Fatal(err)
	}
	Eventually(c.tb, 30*time.Second, "JetStream cluster ready at "+url, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err == nil
	})
}
