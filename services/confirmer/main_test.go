package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// TestBinaryMigratesServesAndStops runs the real binary: `confirmer migrate`, then the
// service until /readyz answers, then SIGTERM, which must end it cleanly.
func TestBinaryMigratesServesAndStops(t *testing.T) {
	bin := testkit.MustBuild(t, "confirmer")
	h := newHarnessOn(t, testkit.MustNATSProcess(t), 3) // the binary runs against a nats-server process
	dbURL := testkit.MustDatabaseURL(t)                 // empty: migrate must create the schema
	opsAddr := testkit.FreeAddr(t)
	env := append(os.Environ(), "NATS_URL="+h.cfg.NATSURL, "DATABASE_URL="+dbURL, "CHAINS_FILE="+h.cfg.ChainsFile,
		"OPS_ADDR="+opsAddr, "LOG_LEVEL=info", "MIGRATE_ON_START=false")

	migrate := exec.Command(bin, "migrate")
	migrate.Env = append(env, "CHAINS_FILE=") // migrate needs only the database
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("confirmer migrate: %v\n%s", err, out)
	}

	var logs strings.Builder
	cmd := exec.Command(bin)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("confirmer output:\n%s", logs.String())
		}
	})
	testkit.Eventually(t, 20*time.Second, "/readyz", func() bool {
		resp, err := http.Get(fmt.Sprintf("http://%s/readyz", opsAddr))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("confirmer did not stop after SIGTERM")
	}
	if !strings.Contains(logs.String(), "shutting down") {
		t.Fatalf("no shutdown in the log")
	}
}
