package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/ctrip-pay/pipeline/shared/testkit"
	"github.com/ctrip-pay/pipeline/shared/testkit/chaintest"
)

// Services in start order.
var services = []string{"webhook-sender", "api", "scanner", "confirmer", "sweeper"}

// adminToken is the api's ADMIN_TOKEN in the dev stack.
const adminToken = "devstack-admin-token-not-secret"

// configureServices writes the services' CHAINS_FILE and sets the environment they all run with:
// the stack's NATS, Postgres and chain, the api on a free port, and the dev wallet.
func (s *stack) configureServices(gasTank *chaintest.Account, extra []string) error {
	chainsFile := filepath.Join(s.work, "chains.yaml")
	if err := os.WriteFile(chainsFile, []byte(fmt.Sprintf(`chains:
  - id: 1337
    name: devnet
    rpc_url: %s
    confirmations: 3
    native: {symbol: ETH, decimals: 18}
    treasury: "%s"
    tokens:
      - {symbol: USDC, contract: "%s", decimals: 6}
`, s.rpcURL, s.treasury.Hex(), s.token.Hex())), 0o600); err != nil {
		return err
	}
	xpub, err := accountXPub(devMnemonic)
	if err != nil {
		return err
	}
	apiPort, err := testkit.FreePort()
	if err != nil {
		return err
	}
	apiAddr := fmt.Sprintf("127.0.0.1:%d", apiPort)
	s.apiURL = "http://" + apiAddr
	s.apiURLs = []string{s.apiURL}
	s.env = append(os.Environ(),
		"NATS_URL="+s.natsURL, "DATABASE_URL="+s.dbURL, "LOG_LEVEL=warn", "OPS_ADDR=127.0.0.1:0",
		"CHAINS_FILE="+chainsFile, "API_ADDR="+apiAddr, "ADMIN_TOKEN="+adminToken, "WALLET_XPUB="+xpub,
		"WALLET_MNEMONIC="+devMnemonic, "GAS_TANK_PRIVATE_KEY="+common.Bytes2Hex(crypto.FromECDSA(gasTank.Key)),
		"WEBHOOK_ALLOW_HTTP=true", "WEBHOOK_ALLOW_PRIVATE_NETWORKS=true", "WEBHOOK_BACKOFF=1s,2s,5s,10s",
		"SCAN_POLL_INTERVAL=250ms", "SCAN_START_BLOCK=0", "CONFIRMER_EXPIRY_INTERVAL=1s", "SWEEP_POLL_INTERVAL=250ms", "SWEEP_LEFTOVER_INTERVAL=1s",
		"OUTBOX_INTERVAL=100ms")
	if len(s.natsNodes) >= 3 {
		s.env = append(s.env, "STREAMS_REPLICAS=3")
	}
	s.env = append(s.env, extra...)
	return nil
}

// buildAll builds every service's binary into the stack's work dir.
func (s *stack) buildAll(ctx context.Context) error {
	for _, svc := range services {
		out := filepath.Join(s.work, "bin", svc)
		s.log.Info("building", "service", svc)
		if err := buildService(ctx, svc, out); err != nil {
			return err
		}
		s.bins[svc] = out
	}
	return nil
}

// buildService builds ./services/<svc> of this checkout into out.
func buildService(ctx context.Context, svc, out string) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", out, "./services/"+svc)
	build.Dir = root
	if b, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", svc, err, b)
	}
	return nil
}

// repoRoot is the nearest directory above the working directory holding go.work.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.work above the working directory: run from the repository")
		}
		dir = parent
	}
}

// start runs the service process called name: a service, or a further replica of one named
// "<service>-<n>" (scanner-2). A further api listens on an address of its own (s.apiURLs).
func (s *stack) start(name string) error {
	svc := serviceOf(name)
	if svc == "api" && name != "api" && s.procEnv[name] == nil {
		port, err := testkit.FreePort()
		if err != nil {
			return err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		s.procEnv[name] = []string{"API_ADDR=" + addr}
		s.apiURLs = append(s.apiURLs, "http://"+addr)
	}
	var stdout, stderr io.Writer = os.Stdout, os.Stderr
	if s.logToFiles {
		f, err := os.OpenFile(filepath.Join(s.work, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		stdout, stderr = f, f
	}
	cmd, err := startBinary(s.bins[svc], svc, append(append([]string(nil), s.env...), s.procEnv[name]...), stdout, stderr)
	if err != nil {
		return err
	}
	s.procs[name] = cmd
	return nil
}

// serviceOf is the service a process name runs: "scanner-2" → "scanner".
func serviceOf(name string) string {
	if i := strings.LastIndex(name, "-"); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			return name[:i]
		}
	}
	return name
}

// startBinary runs bin as the service svc with env.
func startBinary(bin, svc string, env []string, stdout, stderr io.Writer) (*exec.Cmd, error) {
	cmd := exec.Command(bin)
	cmd.Env = append(append([]string(nil), env...), "OTEL_SERVICE_NAME="+svc)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", svc, err)
	}
	return cmd, nil
}

// kill stops a service with SIGKILL: no graceful shutdown, as in a crash.
func (s *stack) kill(svc string) {
	if p := s.procs[svc]; p != nil {
		p.Process.Signal(syscall.SIGKILL)
		p.Wait()
		delete(s.procs, svc)
	}
}

func (s *stack) stopAll() {
	for _, p := range s.procs {
		p.Process.Signal(syscall.SIGTERM)
	}
	for svc, p := range s.procs {
		awaitExit(s.log, svc, p)
	}
}

// awaitExit waits for the service svc, sent SIGTERM, to exit. One that has not after 20 s gets
// SIGQUIT, so the Go runtime prints every goroutine's stack and exits; 5 s later it is killed.
func awaitExit(log *slog.Logger, svc string, p *exec.Cmd) {
	done := make(chan struct{})
	go func() { p.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		log.Warn("service did not stop in time; dumping its goroutines", "service", svc)
		p.Process.Signal(syscall.SIGQUIT)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			p.Process.Kill()
		}
	}
}

func waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not answering after %v", url, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
