package testkit

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// NATSServerVersion is the nats-server release the project pins (the module version in
// shared/go.mod): deployments run it, and so do the tests that run service processes.
const NATSServerVersion = "2.15.2"

var natsBinary struct {
	once  sync.Once
	path  string
	err   error
	built string // the temp dir of a binary built here, removed by RemoveBuiltNATSServer
}

// NATSServerBinary is the path of a nats-server executable of the pinned release: the one
// NATS_SERVER_BIN names (its version is checked), or else one built once per process from the
// nats-server module the workspace requires, so no download or install is needed. Building needs
// the working directory to be inside the repository.
func NATSServerBinary() (string, error) {
	natsBinary.once.Do(func() { natsBinary.path, natsBinary.err = findNATSServer() })
	return natsBinary.path, natsBinary.err
}

var versionRE = regexp.MustCompile(`v(\d+\.\d+\.\d+)`)

func findNATSServer() (string, error) {
	bin := os.Getenv("NATS_SERVER_BIN")
	if bin == "" {
		dir, err := os.MkdirTemp("", "ctrip-nats-server-")
		if err != nil {
			return "", err
		}
		natsBinary.built = dir
		bin = filepath.Join(dir, "nats-server")
		// The version comes from the workspace's go.mod; CGO off as in deployments' images.
		build := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build nats-server: %v\n%s", err, out)
		}
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s --version: %v: %s", bin, err, out)
	}
	m := versionRE.FindSubmatch(out)
	if m == nil || string(m[1]) != NATSServerVersion {
		return "", fmt.Errorf("%s is %q, want nats-server v%s", bin, strings.TrimSpace(string(out)), NATSServerVersion)
	}
	return bin, nil
}

// RemoveBuiltNATSServer deletes the binary NATSServerBinary built, if it built one (Main does
// this at the end of a test binary).
func RemoveBuiltNATSServer() {
	if natsBinary.built != "" {
		os.RemoveAll(natsBinary.built)
	}
}

// NATSProcess is a nats-server process with JetStream, as deployments run it. Restart and Kill
// keep its port and store dir, so clients reconnect and streams survive.
type NATSProcess struct {
	bin      string
	port     int
	storeDir string
	logPath  string
	args     []string

	name string // the server's name, which ready expects in its INFO

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been reaped
}

// StartNATSProcess runs the pinned nats-server on 127.0.0.1:port (0 picks a free one) with its
// JetStream store in storeDir, logging to logPath, plus any extra command-line arguments.
func StartNATSProcess(port int, storeDir, logPath string, extra ...string) (*NATSProcess, error) {
	bin, err := NATSServerBinary()
	if err != nil {
		return nil, err
	}
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	// A name of its own, which ready checks: another server already on the port (a stack left
	// running) would otherwise answer for it while this one exits with "address in use".
	name := ""
	for i, a := range extra {
		if (a == "-n" || a == "--name") && i+1 < len(extra) {
			name = extra[i+1]
		}
	}
	if name == "" {
		name = fmt.Sprintf("ctrip-%d-%d", port, time.Now().UnixNano())
		extra = append(slices.Clone(extra), "-n", name)
	}
	n := &NATSProcess{bin: bin, port: port, storeDir: storeDir, logPath: logPath, args: extra, name: name}
	if err := n.start(); err != nil {
		return nil, err
	}
	return n, nil
}

// NATSServer is the nats-server a test runs against, embedded (MustNATS) or a process
// (MustNATSProcess), so one harness can use either.
type NATSServer interface {
	URL() string
	// Restart stops the server and starts it again on the same port and store.
	Restart()
}

var (
	_ NATSServer = (*NATS)(nil)
	_ NATSServer = (*TestNATSProcess)(nil)
)

// TestNATSProcess is a NATSProcess owned by a test: a failure to restart fails the test.
type TestNATSProcess struct {
	*NATSProcess
	tb testing.TB
}

// MustNATSProcess starts a nats-server process on a free port with its own store dir; it is
// stopped at test cleanup, and its log is printed if the test failed. Tests that run service
// processes use it: the server is then outside the race-instrumented test binary, as in a
// deployment.
func MustNATSProcess(tb testing.TB, extra ...string) *TestNATSProcess {
	tb.Helper()
	dir := tb.TempDir()
	n, err := StartNATSProcess(0, filepath.Join(dir, "store"), filepath.Join(dir, "nats-server.log"), extra...)
	if err != nil {
		tb.Fatalf("nats-server process: %v", err)
	}
	tb.Cleanup(func() {
		n.Shutdown()
		if tb.Failed() {
			tb.Logf("nats-server log (last lines):\n%s", n.LogTail(40))
		}
	})
	return &TestNATSProcess{NATSProcess: n, tb: tb}
}

// Restart stops the server with SIGTERM and starts it again.
func (n *TestNATSProcess) Restart() {
	n.tb.Helper()
	if err := n.NATSProcess.Restart(); err != nil {
		n.tb.Fatal(err)
	}
}

// KillAndRestart crashes the server with SIGKILL and starts it again.
func (n *TestNATSProcess) KillAndRestart() {
	n.tb.Helper()
	if err := n.NATSProcess.KillAndRestart(); err != nil {
		n.tb.Fatal(err)
	}
}

func (n *NATSProcess) start() error {
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	// max_payload has no flag; large enough for the tests' and benchmarks' messages, as MustNATS.
	conf := n.storeDir + ".conf"
	if err := os.WriteFile(conf, []byte("max_payload: 8MB\n"), 0o644); err != nil {
		return err
	}
	args := append([]string{"-c", conf, "-a", "127.0.0.1", "-p", fmt.Sprint(n.port), "-js", "-sd", n.storeDir}, n.args...)
	cmd := exec.Command(n.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start nats-server: %w", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	n.mu.Lock()
	n.cmd, n.exited = cmd, exited
	n.mu.Unlock()
	// Ready when JetStream is: the server logs it after recovering its store.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("nats-server exited at start (%v):\n%s", waitErr, n.LogTail(20))
		default:
		}
		if n.ready() {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return fmt.Errorf("nats-server on port %d not ready after 30s:\n%s", n.port, n.LogTail(20))
}

// ready is a connection answering PING: nats-server accepts clients once JetStream is up.
func (n *NATSProcess) ready() bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", n.port), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "INFO ") ||
		!strings.Contains(line, `"server_name":"`+n.name+`"`) {
		return false
	}
	if _, err := io.WriteString(c, "CONNECT {\"verbose\":false}\r\nPING\r\n"); err != nil {
		return false
	}
	line, err := r.ReadString('\n')
	return err == nil && strings.HasPrefix(line, "PONG")
}

// URL is the client URL; it does not change across restarts.
func (n *NATSProcess) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// Port is the client port.
func (n *NATSProcess) Port() int { return n.port }

// Shutdown stops the server with SIGTERM (lame-duck free, store flushed) and waits for it.
func (n *NATSProcess) Shutdown() { n.stop(syscall.SIGTERM) }

// Kill stops the server with SIGKILL, as in a crash.
func (n *NATSProcess) Kill() { n.stop(syscall.SIGKILL) }

func (n *NATSProcess) stop(sig syscall.Signal) {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.cmd = nil
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Restart stops the server (SIGTERM) and starts it again on the same port and store.
func (n *NATSProcess) Restart() error {
	n.Shutdown()
	return n.start()
}

// KillAndRestart crashes the server (SIGKILL) and starts it again on the same port and store.
func (n *NATSProcess) KillAndRestart() error {
	n.Kill()
	return n.start()
}

// LogTail is the last lines of the server's log.
func (n *NATSProcess) LogTail(lines int) string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return err.Error()
	}
	all := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	return string(bytes.Join(all[max(0, len(all)-lines):], []byte("\n")))
}
