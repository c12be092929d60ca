package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/postgres"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// Two replicas on one chain: one leads (holds the chain's lease) and scans; when it stops, the
// standby takes the lease and goes on from the cursor. Every payment — before, during and after
// the handover — is detected exactly once.
func TestStandbyReplicaTakesOverTheChain(t *testing.T) {
	h := startHarness(t)
	k := uint64(postgres.LeaseKey("scanner/chain/1337"))
	holders := func() int {
		return h.count(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objid = $2
			AND objsubid = 1 AND granted`, int64(uint32(k>>32)), int64(uint32(k)))
	}
	// The first replica leads before the second starts: stopping it below is stopping the leader.
	testkit.Eventually(t, 10*time.Second, "the first replica leading the chain", func() bool { return holders() == 1 })
	standby := testkit.StartInProcess(t, "scanner-standby", h.cfg, run)

	payments := h.paidETHPayments(3)
	h.waitScanned(h.head())
	if n := holders(); n != 1 {
		t.Fatalf("%d replicas hold the chain's lease, want 1", n)
	}

	stopped := time.Now()
	h.stop() // the leader; its lease is now the standby's
	payments = append(payments, h.paidETHPayments(3)...)
	h.waitScanned(h.head())
	t.Logf("standby scanned the blocks mined after the leader stopped within %v", time.Since(stopped).Round(time.Millisecond))
	if exited, err := standby.Exited(); exited {
		t.Fatalf("the standby exited: %v", err)
	}
	if n := holders(); n != 1 {
		t.Fatalf("%d replicas hold the chain's lease after the handover, want 1", n)
	}
	seen := h.detections()
	for i, p := range payments {
		if seen[p.ID] != 1 {
			t.Errorf("payment %d: %d payments.detected events, want 1", i, seen[p.ID])
		}
	}
}

// /readyz fails while the chain the replica leads has not advanced for its max_head_age (a node
// that is stuck yet answers), naming the chain, and passes again once a block arrives.
func TestReadinessFailsWhileTheHeadIsStale(t *testing.T) {
	h := newHarness(t, withoutTokens(), withMaxHeadAge(3*time.Second))
	h.cfg.OpsAddr = testkit.FreeAddr(t)
	h.start()
	readyz := func() (int, string) {
		resp, err := http.Get("http://" + h.cfg.OpsAddr + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	h.mine(h.chain.SendETH(h.payer, h.payer.Address, ether(1)))
	testkit.Eventually(t, 10*time.Second, "ready while the head advances", func() bool { code, _ := readyz(); return code == http.StatusOK })
	// No block for longer than max_head_age.
	testkit.Eventually(t, 10*time.Second, "not ready once the head is stale", func() bool {
		code, body := readyz()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "chain 1337 head") && strings.Contains(body, "has not advanced")
	})
	h.mine(h.chain.SendETH(h.payer, h.payer.Address, ether(1)))
	testkit.Eventually(t, 10*time.Second, "ready again after a new block", func() bool { code, _ := readyz(); return code == http.StatusOK })
}
