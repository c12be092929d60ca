#!/usr/bin/env bash
# Webhook sender benchmark: BENCH_EVENTS (default 20000) events through fan-out, delivery,
# attempt recording and ack into one local receiver, against the raw rate of plain POSTs to the
# same receiver in the same run; then the same with publishing paced at BENCH_RATE (default
# 2000/s) for latency below saturation. Prints the figures. Also: BENCH_STAGE=deliver (publish
# straight onto WEBHOOKS: the delivery stage alone), BENCH_CONCURRENCY (default 64),
# BENCH_CPUPROFILE=FILE (CPU profile of the burst's pipeline stage: sender, nats-server,
# receiver; read it with `go tool pprof FILE`).
set -euo pipefail
if [[ -n "${BENCH_CPUPROFILE:-}" ]]; then BENCH_CPUPROFILE="$(realpath -m "$BENCH_CPUPROFILE")"; export BENCH_CPUPROFILE; fi
cd "$(dirname "$0")/../services/webhook-sender"
export BENCH_EVENTS="${BENCH_EVENTS:-20000}"
run() { go test -run '^$' -bench BenchmarkWebhookThroughput -benchtime=1x -count=1 . 2>&1 | grep -v '^{' | grep -Ev '^(goos|goarch|pkg|cpu|PASS|ok)'; }
echo "== burst: all $BENCH_EVENTS events published at once =="
BENCH_RATE= run
echo
echo "== paced: ${BENCH_RATE:-2000} events/s =="
BENCH_CPUPROFILE= BENCH_RATE="${BENCH_RATE:-2000}" run
echo
echo "== floor: JetStream's least work per event next to one raw POST =="
go test -run '^$' -bench BenchmarkJetStreamFloor -benchtime=1x -count=1 . 2>&1 | grep -v '^{' | grep -Ev '^(goos|goarch|pkg|cpu|PASS|ok)'
