package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/event"
	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// startConfirmer builds the confirmer and runs it as a process against the harness's NATS,
// database and chains file (so through the same RPC meter as the scanner), until the test ends.
func (h *harness) startConfirmer(t *testing.T) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "confirmer")
	build := exec.Command("go", "build", "-o", bin, "github.com/ctrip-pay/pipeline/services/confirmer")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the confirmer: %v\n%s", err, out)
	}
	var logs strings.Builder
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "NATS_URL="+h.nats.URL(), "DATABASE_URL="+h.cfg.DatabaseURL, "CHAINS_FILE="+h.cfg.ChainsFile,
		"OPS_ADDR="+testkit.FreeAddr(t), "LOG_LEVEL=warn", "SHUTDOWN_TIMEOUT=5s")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The process is this test's own; Kill ends only it.
		if err := cmd.Process.Kill(); err != nil {
			t.Logf("kill the confirmer: %v", err)
		}
		_ = cmd.Wait() // killed: its exit status says so and nothing more
		if t.Failed() {
			t.Logf("confirmer output:\n%s", logs.String())
		}
	})
}

// TestContractPaymentsAreConfirmed runs the confirmer beside the scanner: a payment made from
// inside a contract's transaction — re-verified by its receipt and block with the debug API,
// by its block alone when reconciled — is confirmed once its confirmations are in.
func TestContractPaymentsAreConfirmed(t *testing.T) {
	inEachMode(t, func(t *testing.T, h *harness, mode rpcMode) {
		fwd := h.chain.DeployForwarder()
		h.start()
		h.startConfirmer(t)
		p := h.newPayment("ETH", ether(3), time.Now().Add(30*time.Minute))
		r := h.mine(h.chain.Forward(h.payer, fwd, p.Address, ether(3)))[0]
		h.waitDetected(p, 1)
		h.checkDetected(mode, p, r, 0, ether(3))
		ok := testkit.Poll(30*time.Second, func() bool {
			h.chain.Commit()
			return h.count(`SELECT count(*) FROM payments WHERE id = $1 AND status = 'confirmed'`, p.ID) == 1
		})
		if !ok {
			var status string
			_ = h.db.Get(&status, `SELECT status FROM payments WHERE id = $1`, p.ID)
			t.Fatalf("payment %s is %s after 30s of blocks, want confirmed", p.ID, status)
		}
		txHash, logIndex := h.wantKey(mode, p, r, 0)
		if n := h.count(`SELECT count(*) FROM payment_transfers WHERE payment_id = $1 AND tx_hash = $2 AND log_index = $3 AND status = 'confirmed'`,
			p.ID, txHash, logIndex); n != 1 {
			t.Fatalf("%d confirmed transfers under the scanner's key, want 1", n)
		}
		// The event goes out through the confirmer's outbox relay, after the status changed.
		testkit.Poll(10*time.Second, func() bool { return len(h.streamMsgs("PAYMENTS", event.SubjectConfirmed)) > 0 })
		if n := len(h.streamMsgs("PAYMENTS", event.SubjectConfirmed)); n != 1 {
			t.Fatalf("%d payments.confirmed messages, want 1", n)
		}
	})
}
