#!/usr/bin/env bash
# crash-latency.sh — how long a crash holds a payment: the dev stack pays 12.5 ETH and 25.75 USDC
# and, in each run, SIGKILLs one service at the moment it most likely holds the payments' work
# (deploy/devstack -crash; see crashAt in deploy/devstack/scenario.go) and restarts it at once.
# Prints, per crashed service, the slowest paid → payment.swept webhook of the run's two
# payments, with a run without a crash first as the reference. RUNS=n repeats each case.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-1}
printf '%-16s %s\n' "crashed" "paid → payment.swept webhook (slowest of 2 payments, per run)"
for svc in none api scanner confirmer sweeper webhook-sender; do
	figures=()
	for ((i = 0; i < runs; i++)); do
		args=()
		[[ $svc != none ]] && args=(-crash "$svc")
		out=$(go run ./deploy/devstack "${args[@]}" 2>&1) || { echo "$out" | tail -20 >&2; echo "devstack -crash $svc failed" >&2; exit 1; }
		worst=$(grep -o 'paid → payment.swept webhook: [0-9.]*s' <<<"$out" | awk '{print $NF}' | tr -d s | sort -g | tail -1)
		figures+=("${worst}s")
	done
	printf '%-16s %s\n' "$svc" "${figures[*]}"
done
