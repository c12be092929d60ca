package telemetry

import "go.opentelemetry.io/otel/metric"

// DurationBuckets are the bucket boundaries of every histogram in seconds: OpenTelemetry's
// recommendation for http.server.request.duration (5 ms to 10 s). The SDK's default boundaries
// (0, 5, 10, 25 … 10000) are meant for milliseconds and put every sub-5 s call in one bucket.
var DurationBuckets = metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60)
