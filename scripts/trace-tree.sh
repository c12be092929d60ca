#!/usr/bin/env bash
# Prints the trace of one payment from Jaeger: every span, indented under its parent, with its
# service and duration, and a summary line (trace id, span count, services). The trace is found
# by the payment.id attribute the api puts on the request that created the payment; every
# service that knows the payment's id is searched too, so a payment whose spans fell into more
# than one trace is reported as such (and the script exits 1).
#
#   scripts/trace-tree.sh pay_01J...                      # JAEGER_URL=http://127.0.0.1:16686
#   JAEGER_URL=http://jaeger:16686 LOOKBACK=2d scripts/trace-tree.sh pay_01J...
#
# Links (the chain head, the block scan or the expiry pass that caused a span, in another trace)
# are shown at the end of the span's line as "linked: <trace id>/<span id>". Needs bash, curl and
# jq.
set -euo pipefail
if [[ $# -ne 1 || -z $1 ]]; then
	echo "usage: $0 <payment id>" >&2
	exit 2
fi
payment=$1
jaeger=${JAEGER_URL:-http://127.0.0.1:16686}
lookback=${LOOKBACK:-2d}
limit=${LIMIT:-20}

get() { curl -fsS --max-time 30 -G "$jaeger$1" "${@:2}"; }

tags=$(jq -cn --arg p "$payment" '{"payment.id": $p}')
# Every trace any service holds a span of this payment in.
traces=$(for svc in $(get /api/services | jq -r '.data // [] | .[]'); do
	get /api/traces --data-urlencode "service=$svc" --data-urlencode "tags=$tags" \
		--data-urlencode "lookback=$lookback" --data-urlencode "limit=$limit" | jq -r '.data // [] | .[].traceID'
done | sort -u)
if [[ -z $traces ]]; then
	echo "no trace in $jaeger has a span with payment.id=$payment" >&2
	exit 1
fi
n=$(wc -l <<<"$traces")

for id in $traces; do
	get "/api/traces/$id" | jq -r '
		.data[0] as $t
		| ($t.spans | map({key: .spanID, value: .}) | from_entries) as $byID
		| def parent: [.references[]? | select(.refType == "CHILD_OF" and .traceID == $t.traceID) | .spanID][0];
		  def indent($d): [range($d)] | map("  ") | add // "";
		  def ms: (. / 1000 * 100 | round / 100 | tostring) + " ms";
		  ($t.spans | map(. + {parent: (parent | if . != null and $byID[.] != null then . else null end)})) as $spans
		| ($spans | group_by(.parent // "") | map({key: (.[0].parent // ""), value: (sort_by(.startTime))}) | from_entries) as $children
		| def show($d):
		    "\(indent($d))\(.operationName)  [\($t.processes[.processID].serviceName)]  \(.duration | ms)"
		    + ([.tags[]? | select(.key == "webhook.attempt" or .key == "http.response.status_code" or .key == "sweep.tx_hash"
		                          or (.key == "error" and .value == true)) | "\(.key)=\(.value)"] | if length > 0 then "  " + join(" ") else "" end)
		    + ([.references[]? | select(.refType == "FOLLOWS_FROM" or .traceID != $t.traceID) | "\(.traceID)/\(.spanID)"]
		      | if length > 0 then "  linked: " + join(" ") else "" end),
		    (($children[.spanID] // [])[] | show($d + 1));
		  ($children[""] // [])[] | show(0)
		, "",
		"trace \($t.traceID): \($t.spans | length) spans, services: \([$t.processes[] | .serviceName] | unique | join(", "))"'
done
if ((n > 1)); then
	echo "payment $payment is in $n traces, not one" >&2
	exit 1
fi
