package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// scripts/trace-tree.sh against Jaeger's query API as Jaeger v2 answers it (testdata: the trace
// of a paid and swept ETH payment, recorded from a real Jaeger, and the tree the script printed
// for it): the tree and the summary, and the failure when a payment's spans are in two traces.
func TestTraceTreeScriptPrintsThePaymentsTrace(t *testing.T) {
	if _, err := exec.LookPath("jq"); err != nil {
		t.Skip("needs jq")
	}
	trace, err := os.ReadFile("testdata/jaeger-trace.json")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/trace-tree.txt")
	if err != nil {
		t.Fatal(err)
	}
	const id, other = "e5286bc623d6da11415966ac33a82b90", "0000000000000000000000000000beef"
	const payment = "pay_01M8TNT3C5NFCMWD6DBMBVVSJV"
	// jaeger serves the trace; split puts the scanner's spans of the payment in another trace.
	jaeger := func(t *testing.T, split bool) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			q := r.URL.Query()
			switch {
			case r.URL.Path == "/api/services":
				w.Write([]byte(`{"data":["api","scanner","jaeger"]}`))
			case r.URL.Path == "/api/traces":
				if q.Get("tags") != `{"payment.id":"`+payment+`"}` || q.Get("service") == "jaeger" {
					w.Write([]byte(`{"data":[]}`))
					return
				}
				tid := id
				if split && q.Get("service") == "scanner" {
					tid = other
				}
				w.Write([]byte(`{"data":[{"traceID":"` + tid + `","spans":[],"processes":{}}]}`))
			case r.URL.Path == "/api/traces/"+id:
				w.Write(trace)
			case r.URL.Path == "/api/traces/"+other:
				w.Write(bytes.ReplaceAll(trace, []byte(id), []byte(other)))
			default:
				http.NotFound(w, r)
			}
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	script, err := filepath.Abs("../../scripts/trace-tree.sh")
	if err != nil {
		t.Fatal(err)
	}
	runScript := func(url string, args ...string) (string, string, error) {
		cmd := exec.Command("bash", append([]string{script}, args...)...)
		cmd.Env = append(os.Environ(), "JAEGER_URL="+url)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}

	t.Run("one trace", func(t *testing.T) {
		out, stderr, err := runScript(jaeger(t, false), payment)
		if err != nil {
			t.Fatalf("%v: %s", err, stderr)
		}
		if out != string(want) {
			t.Fatalf("printed\n%s\nwant\n%s", out, want)
		}
		if !strings.Contains(out, "17 spans, services: api, confirmer, scanner, sweeper, webhook-sender") {
			t.Fatalf("summary missing: %s", out)
		}
	})
	t.Run("two traces", func(t *testing.T) {
		_, stderr, err := runScript(jaeger(t, true), payment)
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(stderr, "is in 2 traces, not one") {
			t.Fatalf("err %v, stderr %q: want exit 1 naming two traces", err, stderr)
		}
	})
	t.Run("unknown payment", func(t *testing.T) {
		_, stderr, err := runScript(jaeger(t, false), "pay_unknown")
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(stderr, "no trace") {
			t.Fatalf("err %v, stderr %q: want exit 1, no trace", err, stderr)
		}
	})
}
