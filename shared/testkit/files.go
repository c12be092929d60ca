package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TempFile writes content to a file called name in a fresh temp dir of the test and returns its
// path: a CHAINS_FILE, a config a service reads.
func TempFile(tb testing.TB, name, content string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// MustBuild compiles the main package in the working directory — a service, when called from
// its tests — into a binary called name in a temp dir of the test, for tests that run the
// service as a process.
func MustBuild(tb testing.TB, name string) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), name)
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
