package testkit

import (
	"context"
	"fmt"
	"os"
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

// StartNATSCluster starts n nats-server processes routed to each other (cluster "ctrip", node
// names n1..n<n>), each with its store and log under dir, and waits until JetStream answers on
// every one (its meta leader elected). Each node keeps its ports and store across Kill and
// Restart. The caller shuts the nodes down.
func StartNATSCluster(n int, dir string) ([]*NATSProcess, error) {
	routes := make([]string, n)
	clusterPorts := make([]int, n)
	for i := range n {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		clusterPorts[i], routes[i] = p, fmt.Sprintf("nats://127.0.0.1:%d", p)
	}
	var nodes []*NATSProcess
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			return nil, err
		}
		p, err := StartNATSProcess(0, filepath.Join(dir, name, "store"), filepath.Join(dir, name+".log"),
			"-n", name, "--cluster_name", "ctrip",
			"--cluster", fmt.Sprintf("nats://127.0.0.1:%d", clusterPorts[i]), "--routes", strings.Join(routes, ","))
		if err != nil {
			for _, started := range nodes {
				started.Shutdown()
			}
			return nil, fmt.Errorf("nats-server node %s: %w", name, err)
		}
		nodes = append(nodes, p)
	}
	for _, node := range nodes {
		if err := WaitJetStream(node.URL(), 30*time.Second); err != nil {
			for _, started := range nodes {
				started.Shutdown()
			}
			return nil, err
		}
	}
	return nodes, nil
}

// WaitJetStream waits until the server at url answers JetStream API requests: for a cluster
// node, until the cluster has its meta leader.
func WaitJetStream(url string, timeout time.Duration) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("JetStream at %s not ready after %v: %w", url, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// MustNATSCluster is StartNATSCluster for a test: the nodes stop at cleanup, and their logs are
// printed if the test failed.
func MustNATSCluster(tb testing.TB, n int) *NATSCluster {
	tb.Helper()
	dir := tb.TempDir()
	nodes, err := StartNATSCluster(n, dir)
	if err != nil {
		tb.Fatal(err)
	}
	c := &NATSCluster{tb: tb}
	for i, p := range nodes {
		node := &TestNATSProcess{NATSProcess: p, tb: tb}
		c.Nodes = append(c.Nodes, node)
		tb.Cleanup(func() {
			node.Shutdown()
			if tb.Failed() {
				tb.Logf("nats-server n%d log (last lines):\n%s", i+1, node.LogTail(30))
			}
		})
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

func (c *NATSCluster) waitJetStream(url string) {
	c.tb.Helper()
	if err := WaitJetStream(url, 30*time.Second); err != nil {
		c.tb.Fatal(err)
	}
}
