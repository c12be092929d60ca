#!/usr/bin/env bash
# The webhook benchmark with the infrastructure on a core of its own, as in production where
# NATS and Postgres run on other machines: a fresh nats-server and a private Postgres are pinned
# to the last CPU, the benchmark process (sender, receiver and the raw client) to the others.
# Raw POSTs and the sender then get the same CPUs. Same BENCH_* variables as bench-webhooks.sh.
set -euo pipefail
cpus=$(nproc)
if (( cpus < 2 )); then echo "needs at least 2 CPUs" >&2; exit 1; fi
infra=$((cpus - 1))
app="0-$((cpus - 2))"
root="$(cd "$(dirname "$0")/.." && pwd)"
tmp=$(mktemp -d)
chmod 777 "$tmp"
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
nats_pid=
cleanup() {
	[[ -n $nats_pid ]] && kill "$nats_pid" 2>/dev/null || true
	as_pg pg_ctl -D "$tmp/pg" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "infrastructure on CPU $infra, benchmark on CPU $app"
GOBIN="$tmp/bin" go install github.com/nats-io/nats-server/v2@v2.15.2
(cd "$root/services/webhook-sender" && go test -c -o "$tmp/bench.test" .)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pg_port=$(free_port)
as_pg initdb -D "$tmp/pg" -U postgres -A trust --no-sync >/dev/null
as_pg taskset -c "$infra" pg_ctl -D "$tmp/pg" -l "$tmp/pg.log" -w -t 60 \
	-o "-p $pg_port -k $tmp -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
	start >/dev/null
export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres?sslmode=disable"
export BENCH_EVENTS="${BENCH_EVENTS:-20000}"

# run NAME [BENCHMARK]: a fresh nats-server (streams from an earlier run would skew the counts),
# then the benchmark pinned to the other CPUs.
run() {
	local port store
	port=$(free_port)
	store="$tmp/nats-$1"
	taskset -c "$infra" "$tmp/bin/nats-server" -js -sd "$store" -a 127.0.0.1 -p "$port" >"$tmp/nats-$1.log" 2>&1 &
	nats_pid=$!
	for _ in $(seq 50); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
	(cd "$root/services/webhook-sender" && BENCH_NATS_URL="nats://127.0.0.1:$port" \
		taskset -c "$app" "$tmp/bench.test" -test.run '^$' -test.bench "${2:-BenchmarkWebhookThroughput}" -test.benchtime=1x 2>&1) |
		grep -v '^{' | grep -Ev '^(goos|goarch|pkg|cpu|PASS|ok)' || true
	kill "$nats_pid" 2>/dev/null || true
	wait "$nats_pid" 2>/dev/null || true
	nats_pid=
}
echo "== burst: all $BENCH_EVENTS events published at once =="
BENCH_RATE= run burst
echo
echo "== paced: ${BENCH_RATE:-2000} events/s =="
BENCH_CPUPROFILE= BENCH_RATE="${BENCH_RATE:-2000}" run paced
echo
echo "== floor: the client's side of JetStream's least work per event next to one raw POST =="
run floor BenchmarkJetStreamFloor
