#!/usr/bin/env bash
# dlq.sh — inspect and replay dead-lettered webhook deliveries with the nats CLI.
#
# The webhook sender copies every exhausted WEBHOOKS message to dlq.webhooks.<endpoint_id> on the
# DLQ stream, with the original body and Dlq-* headers. This script lists those copies, shows one,
# and republishes the original body to its WEBHOOKS subject. Run with -h for usage.
set -euo pipefail

readonly DLQ_STREAM=DLQ
readonly STREAM=$DLQ_STREAM
readonly SCRIPT=dlq.sh
# shellcheck source=lib/natscli.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/natscli.sh"
readonly DLQ_PREFIX=dlq.webhooks.
readonly DELIVER_PREFIX=webhooks.deliver.

: "${NATS_URL:=nats://127.0.0.1:4222}"
export NATS_URL

usage() {
	cat <<'EOF'
Usage: dlq.sh [-y] <command> [args]

Inspect and replay dead-lettered webhook deliveries (stream DLQ, subjects dlq.webhooks.<endpoint_id>).

Commands:
  list [endpoint_id]            one line per dead letter: DLQ seq, time, endpoint, event id,
                                reason, deliveries, last error
  show <dlq_seq>                headers and body (pretty-printed by jq when it is JSON) of one DLQ
                                message
  replay <dlq_seq>              republish the original body, byte for byte, to its
                                Dlq-Origin-Subject (webhooks.deliver.<endpoint_id>) with a new
                                Nats-Msg-Id <event_id>.<endpoint_id>.replay-<unix nanos>, so the
                                WEBHOOKS duplicate window does not drop it. The body, and so the
                                webhook-id the merchant sees, is unchanged. Prints the publish ack.
  replay-all [-y] [endpoint_id] replay every dead letter that `list` shows (asks first unless -y)
  help                          this text

Options:
  -y, --yes                     do not ask for confirmation (replay-all)

Environment:
  NATS_URL                      server to use (default nats://127.0.0.1:4222); credentials and
                                TLS come from the usual nats CLI variables (NATS_CREDS, NATS_USER,
                                NATS_PASSWORD, NATS_CA, ...) and NATS_TIMEOUT

Requires: bash 4+, the nats CLI (written against v0.5.0), jq 1.6+ and base64.

Notes:
  - Replays go straight to WEBHOOKS; they do not update webhook_dead_letters.replay_count the way
    the API's POST /v1/dead-letters/{id}/replay does. Replayed messages carry
    Ctrip-Replay-Of: dlq:<dlq_seq>.
  - The DLQ stream keeps dead letters until MaxAge (30d), also after a replay: replay-all replays
    everything still listed, including letters replayed before. Merchants see the same
    webhook-id again and deduplicate, but filter by endpoint when you can.
  - A dead letter whose original had aged out of WEBHOOKS (empty Dlq-Origin-Subject) cannot be
    replayed.
  - A copy with Dlq-Body-Truncated (the original was too large to carry beside the Dlq-* headers
    under the server's max payload) holds only the body's first bytes: it is not replayed from
    here; the API's replay sends the full body kept in Postgres (Dlq-Id).

Examples:
  NATS_URL=nats://nats:4222 scripts/dlq.sh list
  scripts/dlq.sh list ep_01J9Z...
  scripts/dlq.sh show 42
  scripts/dlq.sh replay 42
  scripts/dlq.sh replay-all -y ep_01J9Z...
EOF
}

TMP=""
tmpdir() {
	if [[ -z $TMP ]]; then
		TMP=$(mktemp -d "${TMPDIR:-/tmp}/dlq.XXXXXX")
		trap 'rm -rf "$TMP"' EXIT
	fi
}

valid_seq() {
	[[ $1 =~ ^[1-9][0-9]*$ ]] || die "invalid DLQ sequence '$1' (want a positive integer)"
}

valid_endpoint() {
	[[ $1 =~ ^[^.*\>[:space:]]+$ ]] || die "invalid endpoint id '$1' (no dots, wildcards or spaces)"
}

# Shared jq definitions. A "record" is one DLQ message normalised to
# {seq, time, subject, headers: [{k, v}], data: <base64 body>}.
# shellcheck disable=SC2016 # jq, not shell, variables
readonly JQ_DEFS='
def hget($n): ([.headers[] | select((.k | ascii_downcase) == ($n | ascii_downcase)) | .v][0]) // "";
def body_json: try (.data | @base64d | fromjson) catch null;
def event_id: (body_json | if type == "object" and (.id | type) == "string" then .id else "" end);
def endpoint: if (.subject | startswith("dlq.webhooks.")) then .subject[13:] else "" end;
def dash: if . == null or . == "" then "-" else tostring | gsub("[\t\r\n]"; " ") end;
# Raw NATS header block ("NATS/1.0\r\nK: V\r\n...\r\n\r\n", base64) -> [{k, v}]; a value is
# everything after the first colon, so it may itself contain colons and spaces.
def parse_hdrs:
  if . == null or . == "" then []
  else @base64d | split("\r\n") | .[1:]
    | map(select(length > 0) | index(":") as $i | select($i != null)
          | {k: (.[0:$i] | sub("^\\s+"; "") | sub("\\s+$"; "")),
             v: (.[$i + 1:] | sub("^\\s+"; "") | sub("\\s+$"; ""))})
  end;
# `nats stream get --json` output -> record.
def from_get: {seq: .seq, time: ((.time // "")[0:19] + "Z"), subject: .subject,
               headers: (.hdrs | parse_hdrs), data: (.data // "")};
# `nats sub --dump=-` JSON (a serialised nats.Msg) -> record. The stream sequence and timestamp
# come from the JetStream ack subject: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>
# or, in the v2 form, with <domain>.<account hash> before <stream> and a random token at the end.
def from_dump: (.Reply | split(".")) as $t | (if ($t | length) == 9 then 0 else 2 end) as $o
  | {seq: ($t[5 + $o] | tonumber),
     time: ($t[7 + $o] | .[0:(length - 9)] | tonumber | todate),
     subject: .Subject,
     headers: ((.Header // {}) | to_entries | map({k: .key, v: (.value[0] // "")})),
     data: (.Data // "")};
def line: [(.seq | tostring), .time, (endpoint | dash), (event_id | dash), (hget("Dlq-Reason") | dash),
           (hget("Dlq-Deliveries") | dash), (hget("Dlq-Last-Error") | dash)] | join("\t");
'

# get_record <seq>: one DLQ message as a record (JSON, one line).
get_record() {
	local seq=$1 out
	tmpdir
	if ! out=$(natsc stream get "$DLQ_STREAM" "$seq" --json 2>"$TMP/err"); then
		die "cannot get $DLQ_STREAM #$seq: $(nats_err)"
	fi
	jq -c "$JQ_DEFS from_get" <<<"$out"
}

# collect_records <subject filter> <file>: every DLQ message on the filter, oldest first, as
# records (one JSON per line). One ordered consumer, no per-message round trip.
collect_records() {
	local filter=$1 file=$2 total
	tmpdir
	: >"$file"
	if ! total=$(natsc stream subjects "$DLQ_STREAM" "$filter" --json 2>"$TMP/err" | jq '[.[]] | add // 0'); then
		die "cannot read subjects of stream $DLQ_STREAM: $(nats_err)"
	fi
	[[ $total -gt 0 ]] || return 0
	# --dump=- writes each message as NUL-terminated JSON (json.Marshal escapes newlines, so one
	# per line after tr). -T stops at the end of the stream, --count if more arrive meanwhile,
	# --wait if messages vanished between counting and subscribing (-T never fires on nothing).
	if ! natsc sub --stream="$DLQ_STREAM" --all -T --count="$total" --wait=10s --dump=- "$filter" 2>"$TMP/err" |
		tr '\0' '\n' | jq -c "$JQ_DEFS from_dump" >"$file"; then
		die "cannot read stream $DLQ_STREAM: $(nats_err)"
	fi
}

print_table() {
	local file=$1
	{
		printf 'SEQ\tTIME\tENDPOINT\tEVENT_ID\tREASON\tDELIVERIES\tLAST_ERROR\n'
		jq -r "$JQ_DEFS line" "$file"
	} | while IFS=$'\t' read -r seq time ep ev reason n err; do
		printf '%-8s %-20s %-30s %-30s %-18s %-10s %s\n' "$seq" "$time" "$ep" "$ev" "$reason" "$n" "$err"
	done
}

filter_for() {
	if [[ $# -gt 0 && -n $1 ]]; then
		valid_endpoint "$1"
		printf '%s%s' "$DLQ_PREFIX" "$1"
	else
		printf '%s>' "$DLQ_PREFIX"
	fi
}

cmd_list() {
	[[ $# -le 1 ]] || die "list takes at most one endpoint id"
	local filter
	filter=$(filter_for "${1:-}")
	tmpdir
	collect_records "$filter" "$TMP/records"
	if [[ ! -s $TMP/records ]]; then
		warn "no dead letters on $filter"
		return 0
	fi
	print_table "$TMP/records"
}

cmd_show() {
	[[ $# -eq 1 ]] || die "usage: dlq.sh show <dlq_seq>"
	valid_seq "$1"
	local rec
	rec=$(get_record "$1")
	jq -r --arg stream "$DLQ_STREAM" \
		'"\($stream) #\(.seq)  subject \(.subject)  time \(.time)", "",
		 (if (.headers | length) == 0 then "(no headers)" else .headers[] | "\(.k): \(.v)" end), ""' <<<"$rec"
	tmpdir
	jq -r .data <<<"$rec" | base64 -d >"$TMP/body"
	if [[ ! -s $TMP/body ]]; then
		echo "(empty body)"
	elif ! jq . "$TMP/body" 2>/dev/null; then
		cat "$TMP/body"
		echo
	fi
}

# replay_record <record JSON>: republish one dead letter to WEBHOOKS and print the ack.
replay_record() {
	local rec=$1 f seq subject ep event origin etype tp ts data msgid nanos ack v
	mapfile -t f < <(jq -r "$JQ_DEFS"' .seq, .subject, endpoint, event_id, hget("Dlq-Origin-Subject"),
		hget("Ctrip-Event-Type"), hget("traceparent"), hget("tracestate"), hget("Dlq-Origin-Stream"),
		hget("Dlq-Origin-Seq"), .data, hget("Dlq-Body-Truncated"), hget("Dlq-Id")' <<<"$rec")
	[[ ${#f[@]} -eq 13 ]] || die "cannot decode DLQ record: $rec"
	seq=${f[0]} subject=${f[1]} ep=${f[2]} event=${f[3]} origin=${f[4]} etype=${f[5]} tp=${f[6]} ts=${f[7]}
	data=${f[10]}

	if [[ ! $subject =~ ^dlq\.webhooks\.[^.]+$ ]]; then
		warn "DLQ #$seq is on '$subject', not a dead letter on ${DLQ_PREFIX}*: refusing to replay"
		return 1
	fi
	if [[ -n ${f[11]} ]]; then
		warn "DLQ #$seq: the copy holds only the first bytes of a ${f[11]}-byte body (it did not fit under the server's max payload); replay it through the API: POST /v1/dead-letters/${f[12]}/replay"
		return 1
	fi
	if [[ -z $origin ]]; then
		warn "DLQ #$seq: no Dlq-Origin-Subject (the original had aged out of WEBHOOKS): nothing to replay"
		return 1
	fi
	if [[ $origin != "$DELIVER_PREFIX$ep" ]]; then
		warn "DLQ #$seq: Dlq-Origin-Subject '$origin' does not match endpoint '$ep' (want $DELIVER_PREFIX$ep): refusing"
		return 1
	fi
	nanos=$(date +%s%N 2>/dev/null || true)
	if [[ ! $nanos =~ ^[0-9]+$ && -n ${EPOCHREALTIME:-} ]]; then
		nanos="${EPOCHREALTIME/[.,]/}000" # BSD date has no %N: microseconds from bash 5
	fi
	[[ $nanos =~ ^[0-9]+$ ]] || die "cannot read the clock in nanoseconds"
	if [[ -n $event ]]; then
		msgid="$event.$ep.replay-$nanos"
	else
		# Not an envelope (a poison dead letter): fall back to the origin position, like shared/deadletter.
		warn "DLQ #$seq: body has no event id; replaying it anyway (it will likely be dead-lettered again)"
		msgid="${f[8]:-WEBHOOKS}.${f[9]:-$seq}.replay-$nanos"
	fi

	local -a hdrs=(-H "Nats-Msg-Id:$msgid" -H "Ctrip-Replay-Of:dlq:$seq")
	[[ -n $etype ]] && hdrs+=(-H "Ctrip-Event-Type:$etype")
	[[ -n $tp ]] && hdrs+=(-H "traceparent:$tp")
	[[ -n $ts ]] && hdrs+=(-H "tracestate:$ts")
	# The nats CLI expands Go templates in header values even with --no-templates.
	for v in "$msgid" "$etype" "$tp" "$ts"; do
		if [[ $v == *"{{"* ]]; then
			warn "DLQ #$seq: header value '$v' contains '{{', which the nats CLI would expand: refusing"
			return 1
		fi
	done

	# A JetStream publish is a request: the reply is the pub ack, as JSON. The body goes through
	# stdin untouched (--no-templates: no {{ }} expansion; stdin: no argv limits or quoting).
	tmpdir
	if ! ack=$(base64 -d <<<"$data" | nats --server="$NATS_URL" request --raw --no-templates --force-stdin "${hdrs[@]}" "$origin" 2>"$TMP/err"); then
		warn "DLQ #$seq: publish to $origin failed: $(nats_err)"
		return 1
	fi
	# "No responders" (no stream on the subject) exits 0 with nothing on stdout, and jq 1.6 -e
	# succeeds on empty input: check both.
	if [[ -z ${ack//[[:space:]]/} ]] ||
		! jq -e 'type == "object" and .stream != null and .seq != null and .error == null' >/dev/null 2>&1 <<<"$ack"; then
		warn "DLQ #$seq: publish to $origin not acknowledged by JetStream: ${ack:-$(nats_err)}"
		return 1
	fi
	if [[ $(jq -r '.duplicate // false' <<<"$ack") == true ]]; then
		warn "DLQ #$seq: WEBHOOKS reported Nats-Msg-Id $msgid as a duplicate; nothing was replayed"
		return 1
	fi
	jq -r --arg seq "$seq" --arg ep "$ep" --arg ev "${event:--}" --arg id "$msgid" --arg subj "$origin" \
		'"replayed DLQ #\($seq) (endpoint \($ep), event \($ev)) -> \(.stream) #\(.seq) on \($subj), Nats-Msg-Id \($id)"' <<<"$ack"
}

cmd_replay() {
	[[ $# -eq 1 ]] || die "usage: dlq.sh replay <dlq_seq>"
	valid_seq "$1"
	local rec
	rec=$(get_record "$1")
	replay_record "$rec" || exit 1
}

cmd_replay_all() {
	local ep=""
	while [[ $# -gt 0 ]]; do
		case $1 in
		-y | --yes) YES=1 ;;
		-*) die "replay-all: unknown option $1" ;;
		*)
			[[ -z $ep ]] || die "replay-all takes at most one endpoint id"
			ep=$1
			;;
		esac
		shift
	done
	local filter
	filter=$(filter_for "$ep")
	tmpdir
	collect_records "$filter" "$TMP/records"
	local n
	n=$(wc -l <"$TMP/records" | tr -d ' ')
	if [[ $n -eq 0 ]]; then
		warn "no dead letters on $filter"
		return 0
	fi
	print_table "$TMP/records"
	if [[ $YES != 1 ]]; then
		[[ -t 0 ]] || die "refusing to replay $n dead letters without confirmation: stdin is not a terminal, pass -y"
		local ans
		read -r -p "Replay these $n dead letters to WEBHOOKS ($NATS_URL)? [y/N] " ans
		[[ $ans == y || $ans == Y || $ans == yes ]] || die "aborted"
	fi
	local ok=0 failed=0 rec
	while IFS= read -r rec; do
		if replay_record "$rec"; then
			ok=$((ok + 1))
		else
			failed=$((failed + 1))
		fi
	done <"$TMP/records"
	echo "replayed $ok of $n dead letters ($failed failed)"
	[[ $failed -eq 0 ]]
}

YES=0
main() {
	while [[ $# -gt 0 ]]; do
		case $1 in
		-h | --help) usage; exit 0 ;;
		-y | --yes) YES=1; shift ;;
		-*) die "unknown option $1 (see dlq.sh -h)" ;;
		*) break ;;
		esac
	done
	[[ $# -gt 0 ]] || { usage >&2; exit 2; }
	local cmd=$1
	shift
	case $cmd in
	help) usage ;;
	list) require base64; cmd_list "$@" ;;
	show) require base64; cmd_show "$@" ;;
	replay) require base64; cmd_replay "$@" ;;
	replay-all) require base64; cmd_replay_all "$@" ;;
	*) die "unknown command '$cmd' (see dlq.sh -h)" ;;
	esac
}

main "$@"
