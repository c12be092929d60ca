package telemetrytest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/ctrip-pay/pipeline/shared/testkit"
)

// Meter is a metric.Meter whose measurements a test reads back (an SDK meter provider with a
// manual reader).
type Meter struct {
	metric.Meter
	reader *sdkmetric.ManualReader
}

// NewMeter returns a Meter shut down at the end of the test.
func NewMeter(tb testing.TB) *Meter {
	tb.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	tb.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return &Meter{Meter: mp.Meter("test"), reader: reader}
}

// Value collects the instruments (running observable callbacks) and returns the sum over the
// data points of instrument name whose attributes include every one of attrs: a counter's or
// gauge's value, a histogram's count. ok is false when no data point matches.
func (m *Meter) Value(tb testing.TB, name string, attrs ...attribute.KeyValue) (v float64, ok bool) {
	tb.Helper()
	var rm metricdata.ResourceMetrics
	if err := m.reader.Collect(context.Background(), &rm); err != nil {
		tb.Fatalf("collect metrics: %v", err)
	}
	matches := func(set attribute.Set) bool {
		for _, a := range attrs {
			if got, has := set.Value(a.Key); !has || got != a.Value {
				return false
			}
		}
		ok = true
		return true
	}
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			if mt.Name != name {
				continue
			}
			switch d := mt.Data.(type) {
			case metricdata.Sum[int64]:
				v += addPoints(d.DataPoints, matches)
			case metricdata.Sum[float64]:
				v += addPoints(d.DataPoints, matches)
			case metricdata.Gauge[int64]:
				v += addPoints(d.DataPoints, matches)
			case metricdata.Gauge[float64]:
				v += addPoints(d.DataPoints, matches)
			case metricdata.Histogram[float64]:
				v += addCounts(d.DataPoints, matches)
			case metricdata.Histogram[int64]:
				v += addCounts(d.DataPoints, matches)
			}
		}
	}
	return v, ok
}

// addPoints is the sum of the values of the data points that match.
func addPoints[N int64 | float64](pts []metricdata.DataPoint[N], matches func(attribute.Set) bool) (v float64) {
	for _, p := range pts {
		if matches(p.Attributes) {
			v += float64(p.Value)
		}
	}
	return v
}

// addCounts is the sum of the counts of the histogram data points that match.
func addCounts[N int64 | float64](pts []metricdata.HistogramDataPoint[N], matches func(attribute.Set) bool) (v float64) {
	for _, p := range pts {
		if matches(p.Attributes) {
			v += float64(p.Count)
		}
	}
	return v
}

// Scrape reads the Prometheus text served at url (a service's /metrics) and returns the
// metric families that have samples, by name, with their type (counter, gauge, histogram).
func Scrape(tb testing.TB, url string) map[string]string {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("scrape %s: status %d, %v", url, resp.StatusCode, err)
	}
	families := map[string]string{}
	for _, line := range strings.Split(string(body), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			families[f[2]] = f[3]
		}
	}
	return families
}

// ExportedMetric is a line of deploy/prometheus/metrics.txt: a metric the alerts and the
// dashboards may use, with the services that must serve it.
type ExportedMetric struct {
	Name, Type string
	Services   []string
}

// ExportedMetrics reads deploy/prometheus/metrics.txt (found above the working directory, next
// to go.work) and returns the metrics service must serve.
func ExportedMetrics(tb testing.TB, service string) []ExportedMetric {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			break
		}
		if filepath.Dir(dir) == dir {
			tb.Fatal("no go.work above the working directory")
		}
		dir = filepath.Dir(dir)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "deploy", "prometheus", "metrics.txt"))
	if err != nil {
		tb.Fatal(err)
	}
	var out []ExportedMetric
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if svcs := strings.Split(f[2], ","); slices.Contains(svcs, service) {
			out = append(out, ExportedMetric{Name: f[0], Type: f[1], Services: svcs})
		}
	}
	if len(out) == 0 {
		tb.Fatalf("deploy/prometheus/metrics.txt lists no metric of %s", service)
	}
	return out
}

// RequireExported polls the service's /metrics at url until it serves every metric
// deploy/prometheus/metrics.txt lists for service, each with its type; it fails naming the
// missing ones.
func RequireExported(tb testing.TB, service, url string, timeout time.Duration) {
	tb.Helper()
	want := ExportedMetrics(tb, service)
	var missing []string
	if !testkit.Poll(timeout, func() bool {
		got := Scrape(tb, url)
		missing = missing[:0]
		for _, m := range want {
			if got[m.Name] != m.Type {
				missing = append(missing, fmt.Sprintf("%s (%s; served: %q)", m.Name, m.Type, got[m.Name]))
			}
		}
		return len(missing) == 0
	}) {
		tb.Fatalf("%s does not serve, after %v: %s", service, timeout, strings.Join(missing, ", "))
	}
}

// ScrapeValue is the sum of the samples of metric name served at url whose labels include
// every one of labels (`outcome="delivered"`); ok is false when there is none.
func ScrapeValue(tb testing.TB, url, name string, labels ...string) (v float64, ok bool) {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("scrape %s: %v", url, err)
	}
next:
	for _, line := range strings.Split(string(body), "\n") {
		// "series value": label values may hold spaces, the value does not.
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		series, value := line[:i], line[i+1:]
		if series != name && !strings.HasPrefix(series, name+"{") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(series, l) {
				continue next
			}
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			tb.Fatalf("scrape %s: %q: %v", url, line, err)
		}
		v, ok = v+f, true
	}
	return v, ok
}
