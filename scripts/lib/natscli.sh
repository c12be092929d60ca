# Shared by scripts/dlq.sh and scripts/runbook.sh (sourced, not run): messages, tool checks and
# the nats CLI wrapper. The sourcing script sets SCRIPT (its name, for messages) and STREAM (the
# stream an error names) before calling them.

die() {
	printf '%s: %s\n' "$SCRIPT" "$*" >&2
	exit 1
}

warn() {
	printf '%s: %s\n' "$SCRIPT" "$*" >&2
}

# require checks for the nats CLI, jq and any further commands named.
require() {
	command -v nats >/dev/null 2>&1 || die "the nats CLI is not on PATH (go install github.com/nats-io/natscli/nats@v0.5.0)"
	command -v jq >/dev/null 2>&1 || die "jq is not on PATH (apt-get install jq / brew install jq)"
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || die "$c is not on PATH"
	done
}

# natsc runs the nats CLI against NATS_URL, never an interactively selected context server, and
# never lets it prompt (for a stream to pick, say).
natsc() {
	nats --server="$NATS_URL" "$@" </dev/null
}

# nats_err: the nats CLI's error from $TMP/err on one line. For a stream that does not exist,
# v0.5.0 says "could not pick a Stream to operate on", which hides the real problem.
nats_err() {
	if grep -q 'could not pick a Stream' "$TMP/err" 2>/dev/null; then
		printf 'stream %s not found on %s' "$STREAM" "$NATS_URL"
	else
		grep -v -e 'Reading payload from STDIN' -e 'Subscribing to JetStream' "$TMP/err" | tr '\n' ' ' || true
	fi
}
