#!/usr/bin/env bash
# runbook.sh — read the PAYMENTS event log with the nats CLI: every event since a time, one
# payment's history, and (through dlq.sh) the dead letters. deploy/RUNBOOK.md says when to use
# which. Run with -h for usage.
set -euo pipefail

readonly STREAM=PAYMENTS
readonly SCRIPT=runbook.sh
# shellcheck source=lib/natscli.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/natscli.sh"
readonly SUBJECT_ROOT=payments.

: "${NATS_URL:=nats://127.0.0.1:4222}"
export NATS_URL

usage() {
	cat <<'EOF'
Usage: runbook.sh <command> [options] [args]

Read the PAYMENTS event log (stream PAYMENTS, subjects payments.>) with the nats CLI.

Commands:
  replay-since [-j] <time> [subject]
                  every event stored at or after <time> (RFC3339, e.g. 2026-12-02T07:00:00Z,
                  2026-12-02T08:00:00.5+01:00), oldest first, on [subject] (default payments.>,
                  e.g. payments.confirmed). Reads through a fresh consumer of its own
                  (runbook-<unix>-<pid>-<n>, deliver policy by_start_time, no acks, in memory),
                  removed when done; the services' consumers are not touched.
  payment [-j] [--since <time>] <payment_id>
                  one payment's history: every event on PAYMENTS whose data.payment_id is
                  <payment_id>, oldest first. Reads the whole stream (or from --since on) and
                  filters on the payload: the scanner's payments.detected ids are per transfer,
                  so Nats-Msg-Id prefixes would miss them.
  dead-letters [endpoint_id]
                  the dead-lettered webhook deliveries with their Dlq-* headers: `dlq.sh list`
                  (see dlq.sh -h to show and replay one).
  help            this text

Options:
  -j, --json      one JSON object per event instead of the table:
                  {"seq", "time" (the stream's, RFC3339 in ns), "subject", "msg_id",
                   "event_type", "event" (the envelope, or null when the body is not JSON)}

Output (table): SEQ  TIME  SUBJECT  PAYMENT_ID  STATUS  EVENT_ID  MSG_ID, one line per event, with
a header line; nothing but a note on stderr when no event matches.

Environment:
  NATS_URL        server to use (default nats://127.0.0.1:4222); credentials and TLS come from
                  the usual nats CLI variables (NATS_CREDS, NATS_USER, NATS_PASSWORD, NATS_CA, ...)

Requires: bash 4+, the nats CLI (written against v0.5.0), jq 1.6+.

Examples:
  scripts/runbook.sh replay-since 2026-12-02T07:00:00Z
  scripts/runbook.sh replay-since -j "$(date -u -d '-1 hour' +%FT%TZ)" payments.confirmed | jq .event.data.payment_id
  scripts/runbook.sh payment pay_01J9Z...
  scripts/runbook.sh payment --since 2026-12-01T00:00:00Z pay_01J9Z...
  scripts/runbook.sh dead-letters
EOF
}

TMP=""
CONSUMER=""
cleanup() {
	if [[ -n $CONSUMER ]]; then
		natsc consumer rm -f "$STREAM" "$CONSUMER" >/dev/null 2>&1 ||
			warn "could not remove consumer $STREAM/$CONSUMER (it removes itself after 5 minutes unused)"
	fi
	[[ -z $TMP ]] || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

tmpdir() {
	[[ -n $TMP ]] || TMP=$(mktemp -d "${TMPDIR:-/tmp}/runbook.XXXXXX")
}

valid_time() {
	[[ $1 =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$ ]] ||
		die "invalid time '$1' (want RFC3339, e.g. 2026-12-02T07:00:00Z or 2026-12-02T08:00:00.250+01:00)"
}

valid_subject() {
	[[ $1 == "$SUBJECT_ROOT"* && $1 =~ ^[^[:space:]]+$ ]] ||
		die "invalid subject '$1' (want payments.> or a subject under payments., e.g. payments.confirmed)"
}

valid_payment() {
	[[ $1 =~ ^[A-Za-z0-9_-]+$ ]] || die "invalid payment id '$1'"
}

# Shared jq definitions. A "record" is one PAYMENTS message normalised to
# {seq, time, subject, msg_id, event_type, event}.
# shellcheck disable=SC2016 # jq, not shell, variables
readonly JQ_DEFS='
def hget($n): ([(.Header // {}) | to_entries[] | select((.key | ascii_downcase) == ($n | ascii_downcase)) | .value[0]][0]) // "";
def dash: if . == null or . == "" then "-" else tostring | gsub("[\t\r\n]"; " ") end;
# Unix nanoseconds (a string of digits) -> RFC3339 with nanoseconds.
def nanotime: (.[0:(length - 9)] | tonumber | todate | .[0:19]) + "." + .[(length - 9):] + "Z";
# `nats sub --dump=-` JSON (a serialised nats.Msg) -> record. The stream sequence and timestamp
# come from the JetStream ack subject: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>
# or, in the v2 form, with <domain>.<account hash> before <stream> and a random token at the end.
def from_dump: (.Reply | split(".")) as $t | (if ($t | length) == 9 then 0 else 2 end) as $o
  | {seq: ($t[5 + $o] | tonumber), time: ($t[7 + $o] | nanotime), subject: .Subject,
     msg_id: hget("Nats-Msg-Id"), event_type: hget("Ctrip-Event-Type"),
     event: (try (.Data // "" | @base64d | fromjson) catch null)};
def payment_id: if (.event | type) == "object" and (.event.data | type) == "object" then .event.data.payment_id // "" else "" end;
def line: [(.seq | tostring), .time[0:23] + "Z", .subject, (payment_id | dash),
           ((.event.data.status? // "") | dash), ((.event.id? // "") | dash), (.msg_id | dash)] | join("\t");
'

# collect <start time or ""> <subject filter> <file>: every PAYMENTS message on the filter from
# the start time on (all of them without one), oldest first, as records (one JSON per line),
# through a fresh consumer removed afterwards.
collect() {
	local since=$1 filter=$2 file=$3 name total policy
	tmpdir
	: >"$file"
	name="runbook-$(date +%s)-$$-$RANDOM"
	# No acks (nothing to redeliver), in memory, one replica, and gone 5 minutes after its last
	# use if this script is killed before it removes it.
	jq -n --arg name "$name" --arg since "$since" --arg filter "$filter" '{
		durable_name: $name, filter_subject: $filter, ack_policy: "none", replay_policy: "instant",
		mem_storage: true, num_replicas: 1, inactive_threshold: 300000000000,
		description: "runbook.sh: a one-off read of the event log"}
		+ (if $since == "" then {deliver_policy: "all"} else {deliver_policy: "by_start_time", opt_start_time: $since} end)' \
		>"$TMP/consumer.json"
	if ! natsc consumer add "$STREAM" --config "$TMP/consumer.json" >/dev/null 2>"$TMP/err"; then
		die "cannot create consumer $STREAM/$name: $(nats_err)"
	fi
	CONSUMER=$name
	if ! total=$(natsc consumer info "$STREAM" "$name" --json 2>"$TMP/err" |
		jq -r '"\(.num_pending) \(.config.deliver_policy)"'); then
		die "cannot read consumer $STREAM/$name: $(nats_err)"
	fi
	read -r total policy <<<"$total"
	# `nats sub --durable` would create a consumer of its own (deliver all) if ours were gone.
	[[ $policy == "$(jq -r .deliver_policy "$TMP/consumer.json")" ]] ||
		die "consumer $STREAM/$name has deliver policy '$policy', not the one asked for"
	if [[ $total -gt 0 ]]; then
		# --dump=- writes each message as NUL-terminated JSON (json.Marshal escapes newlines, so
		# one per line after tr). -T stops when the consumer has nothing pending, --count at the
		# number pending when it was made (events published meanwhile are not ours), --wait if
		# messages vanished (aged out) between counting and reading.
		if ! natsc sub --stream="$STREAM" --durable="$name" -T --count="$total" --wait=10s --dump=- 2>"$TMP/err" |
			tr '\0' '\n' >"$TMP/dump"; then
			die "cannot read stream $STREAM: $(nats_err)"
		fi
		head -n "$total" "$TMP/dump" | jq -c "$JQ_DEFS from_dump" >"$file"
	fi
	natsc consumer rm -f "$STREAM" "$name" >/dev/null 2>"$TMP/err" || warn "could not remove consumer $STREAM/$name: $(nats_err)"
	CONSUMER=""
}

# show <file> <json>: the records as JSON lines or as the table.
show() {
	local file=$1 json=$2
	if [[ $json == 1 ]]; then
		cat "$file"
		return
	fi
	{
		printf 'SEQ\tTIME\tSUBJECT\tPAYMENT_ID\tSTATUS\tEVENT_ID\tMSG_ID\n'
		jq -r "$JQ_DEFS line" "$file"
	} | while IFS=$'\t' read -r seq time subject payment status event msgid; do
		printf '%-8s %-24s %-22s %-30s %-10s %-30s %s\n' "$seq" "$time" "$subject" "$payment" "$status" "$event" "$msgid"
	done
}

cmd_replay_since() {
	local json=0 args=()
	while [[ $# -gt 0 ]]; do
		case $1 in
		-j | --json) json=1 ;;
		-*) die "replay-since: unknown option $1" ;;
		*) args+=("$1") ;;
		esac
		shift
	done
	[[ ${#args[@]} -ge 1 && ${#args[@]} -le 2 ]] || die "usage: runbook.sh replay-since [-j] <time> [subject]"
	local since=${args[0]} filter=${args[1]:-payments.>}
	valid_time "$since"
	valid_subject "$filter"
	tmpdir
	collect "$since" "$filter" "$TMP/records"
	if [[ ! -s $TMP/records ]]; then
		warn "no events on $filter since $since"
		return 0
	fi
	show "$TMP/records" "$json"
}

cmd_payment() {
	local json=0 since="" args=()
	while [[ $# -gt 0 ]]; do
		case $1 in
		-j | --json) json=1 ;;
		--since)
			[[ $# -ge 2 ]] || die "payment: --since needs a time"
			since=$2
			shift
			;;
		--since=*) since=${1#--since=} ;;
		-*) die "payment: unknown option $1" ;;
		*) args+=("$1") ;;
		esac
		shift
	done
	[[ ${#args[@]} -eq 1 ]] || die "usage: runbook.sh payment [-j] [--since <time>] <payment_id>"
	local id=${args[0]}
	valid_payment "$id"
	[[ -z $since ]] || valid_time "$since"
	tmpdir
	collect "$since" "${SUBJECT_ROOT}>" "$TMP/all"
	jq -c --arg id "$id" "$JQ_DEFS"' select(payment_id == $id)' "$TMP/all" >"$TMP/records"
	if [[ ! -s $TMP/records ]]; then
		warn "no events of payment $id on $STREAM${since:+ since $since} ($(wc -l <"$TMP/all" | tr -d ' ') events read)"
		return 0
	fi
	show "$TMP/records" "$json"
}

cmd_dead_letters() {
	exec bash "$(dirname "${BASH_SOURCE[0]}")/dlq.sh" list "$@"
}

main() {
	[[ $# -gt 0 ]] || {
		usage >&2
		exit 2
	}
	local cmd=$1
	shift
	case $cmd in
	-h | --help | help) usage ;;
	replay-since) require; cmd_replay_since "$@" ;;
	payment) require; cmd_payment "$@" ;;
	dead-letters) cmd_dead_letters "$@" ;;
	*) die "unknown command '$cmd' (see runbook.sh -h)" ;;
	esac
}

main "$@"
