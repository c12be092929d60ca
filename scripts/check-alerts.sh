#!/usr/bin/env bash
# Checks the monitoring that ships with the pipeline (run by `make check-deploy`):
#   - deploy/prometheus/alerts.yml: `promtool check rules`, and `promtool test rules` on
#     alerts_test.yml (every alert fires on a synthetic series);
#   - deploy/prometheus/prometheus.yml: `promtool check config` (its rule file path pointed at
#     the repository's alerts.yml);
#   - deploy/grafana/dashboards/*.json: valid JSON (jq), every panel on the provisioned
#     Prometheus datasource with at least one query, unique panel ids;
#   - every metric the alerts and the dashboards query is listed in deploy/prometheus/metrics.txt,
#     whose lines each service's scrape test (services/<svc>/metrics_test.go) holds to what
#     the service really serves.
# Needs promtool (Debian: apt-get install prometheus) and jq.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prom=$root/deploy/prometheus
dashboards=$root/deploy/grafana/dashboards
for tool in promtool jq; do
	command -v "$tool" >/dev/null || { echo "check-alerts: $tool not found (promtool: apt-get install prometheus)" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
fail() { echo "check-alerts: FAIL: $*" >&2; failed=1; }

promtool check rules "$prom/alerts.yml" >"$tmp/out" 2>&1 || { cat "$tmp/out" >&2; fail "promtool check rules alerts.yml"; }
(cd "$prom" && promtool test rules alerts_test.yml) >"$tmp/out" 2>&1 || { cat "$tmp/out" >&2; fail "promtool test rules alerts_test.yml"; }
sed "s|/etc/prometheus/alerts.yml|$prom/alerts.yml|" "$prom/prometheus.yml" >"$tmp/prometheus.yml"
promtool check config "$tmp/prometheus.yml" >"$tmp/out" 2>&1 || { cat "$tmp/out" >&2; fail "promtool check config prometheus.yml"; }

# The names each file uses: Prometheus metric names of the pipeline (ctrip_*, and the OTel
# semantic-convention ones), a histogram's _bucket/_sum/_count series counted as the histogram.
known=$(grep -v '^#' "$prom/metrics.txt" | awk 'NF {print $1}' | sort -u)
check_names() { # file, the text of its queries on stdin (not a pipe: fail must set failed here)
	local file=$1
	grep -oE '\b(ctrip_[a-z0-9_]+|rpc_client_[a-z0-9_]+|http_server_[a-z0-9_]+)\b' |
		sed -E 's/_(bucket|sum|count)$//' | sort -u >"$tmp/used"
	[[ -s $tmp/used ]] || fail "${file#$root/}: queries no pipeline metric"
	while read -r name; do
		grep -qxF "$name" <<<"$known" || fail "${file#$root/}: metric $name is not in deploy/prometheus/metrics.txt (not exported by any service)"
	done <"$tmp/used"
}
check_names "$prom/alerts.yml" < <(grep -E '^\s*expr:|^\s{10,}\S' "$prom/alerts.yml")

n=0
for d in "$dashboards"/*.json; do
	n=$((n + 1))
	if ! jq -e . "$d" >/dev/null 2>"$tmp/err"; then
		fail "${d#$root/}: not JSON: $(cat "$tmp/err")"
		continue
	fi
	jq -e '.uid and .title and (.panels | length > 0)' "$d" >/dev/null || fail "${d#$root/}: no uid, title or panels"
	bad=$(jq -r '.panels[] | select(.type != "row") | select((.datasource.uid // "") != "prometheus" or ((.targets // []) | length) == 0 or any(.targets[]; (.expr // "") == "")) | .title' "$d")
	[[ -z $bad ]] || fail "${d#$root/}: panels without the prometheus datasource or a query: $bad"
	dup=$(jq -r '[.panels[].id] | group_by(.) | map(select(length > 1) | .[0]) | .[]' "$d")
	[[ -z $dup ]] || fail "${d#$root/}: duplicate panel ids: $dup"
	check_names "$d" < <(jq -r '.panels[].targets[]?.expr' "$d")
done
[[ $n -gt 0 ]] || fail "no dashboard in ${dashboards#$root/}"

if [[ $failed -ne 0 ]]; then
	exit 1
fi
rules=$(grep -c '^\s*- alert:' "$prom/alerts.yml")
echo "check-alerts: ok: $rules alert rules checked and unit-tested; prometheus.yml valid; $n dashboard(s); every queried metric is in metrics.txt ($(wc -l <<<"$known") metrics)"
