#!/usr/bin/env bash
# load.sh — load and scale figures of the whole pipeline on this machine (not timed tests): the
# dev stack (deploy/devstack -load: its own nats-server, Postgres unless DATABASE_URL, the
# simulated chain, the five services built from this checkout) runs the demo to its sweeps, then
# measures and prints
#   1. each service process's resident memory idle and its peak under the load of 2 and 3
#      (target ≤ 64 MiB idle each: reported, not asserted);
#   2. end-to-end latency p50/p99/max over LOAD_PAYMENTS (100) ETH payments, one every
#      LOAD_PAY_EVERY (150ms): paid → payments.confirmed on PAYMENTS → the merchant's webhook;
#   3. webhook deliveries/s of bursts of LOAD_DELIVERIES (5000) deliveries over LOAD_ENDPOINTS
#      (4) endpoints, LOAD_REPEAT (3) with one webhook-sender process, then as many with two.
# Also LOAD_SETTLE (5s, quiet time before idle memory), LOAD_WAIT (3m, how long a phase waits).
# Exits non-zero when a figure could not be measured (a payment not confirmed, a delivery lost);
# the dev stack's log is then kept and named. Takes about two to three minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp -t ctrip-load-XXXXXX.log)

echo "load and scale figures · $(date -u '+%Y-%m-%d %H:%M UTC') · nproc $(nproc) · $(uname -sm)"
# busy_now lists the processes using a fifth of a core or more over two seconds (top's second
# frame): on a shared machine (a fuzz run, another dev stack, tests) they take CPU from the stack.
busy_now() {
	local busy
	busy=$(top -b -c -n 2 -d 2 -w 200 -o %CPU | awk '/^top -/ { f++ } f == 2 && $1 ~ /^[0-9]+$/ && $9 + 0 >= 20 {
		cmd = ""; for (i = 12; i <= NF; i++) cmd = cmd " " $i
		printf "  pid %-7s %5.1f%% %s\n", $1, $9, substr(cmd, 2, 110) }')
	echo "load average $(cut -d' ' -f1-3 /proc/loadavg); processes using ≥ 20% of a core $1:"
	echo "${busy:-  none}"
}
busy_now "before the run"

if ! go run ./deploy/devstack -load 2>"$log"; then
	echo >&2
	tail -30 "$log" >&2
	echo "load.sh: a figure could not be measured; the dev stack's log is $log" >&2
	exit 1
fi
rm -f "$log"
echo
busy_now "after the run"
