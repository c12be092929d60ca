#!/usr/bin/env bash
# Webhook sender benchmark: BENCH_EVENTS (default 20000) events through fan-out, delivery,
# attempt recording and ack into one local receiver, against the raw rate of plain POSTs to the
# same receiver in the same run; then the same with publishing paced at BENCH_RATE (default
# 2000/s) for latency below saturation. Prints the figures. Also: BENCH_STAGE=deliver (publish
# straight onto WEBHOOKS: the delivery stage alone), BENCH_CONCURRENCY (default 64),
# BENCH_CPUPROFILE=FILE (CPU profile of the pipeline stage: sender, nats-server, receiver).
set -euo pipefail
cd "$(dirname "$0")/../services/webhook-sender"
export BENCH_EVENTS="${BENCH_EVENTS:-20000}"
run() { go test -run '^$' -bench BenchmarkWebhookThroughput -benchtime=1x -count=1 . 2>&1 | grep -v '^{' | grep -Ev '^(goos|goarch|pkg|cpu|PASS|ok)'; }
echo "== burst: all $BENCH_EVENTS events published at once =="
BENCH_RATE= run
echo
echo "== paced: ${BENCH_RATE:-2000} events/s =="
BENCH_RATE="${BENCH_RATE:-2000}" run
