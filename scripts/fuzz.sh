#!/usr/bin/env bash
# Runs every fuzz target of the repository for FUZZTIME each, one after another (`make fuzz`).
# Go runs one -fuzz target per invocation, so the targets are discovered here: every
# `func FuzzXxx(f *testing.F)` in a _test.go file under shared/, streams/, services/ and
# deploy/. A target outside a *_fuzz_test.go file stops the run, so that none hides among the
# ordinary tests. Each target's seeds (f.Add and testdata/fuzz/FuzzXxx/) also run in `make test`.
#
#   FUZZTIME=1m      how long each target runs (a go test -fuzztime value: 30s, 10m, 100000x)
#   FUZZ_PARALLEL=   fuzzing workers per target (go test -parallel; default GOMAXPROCS)
#   FUZZ_TARGETS=    a regular expression: run only the matching targets (e.g. 'FuzzParse|FuzzVerify')
#   FUZZ_LIST=1      only list the targets (package and name)
#
# A failing input is written by go under the package's testdata/fuzz/FuzzXxx/; commit it with
# the fix, and it becomes a seed. The run stops at the first failing target.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
fuzztime=${FUZZTIME:-1m}
only=${FUZZ_TARGETS:-.}

mapfile -t found < <(grep -rHoE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' shared streams services deploy |
	sed -E 's/\($//' | sort)
if [ ${#found[@]} -eq 0 ]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi

targets=()
for hit in "${found[@]}"; do
	file=${hit%%:*}
	name=${hit##*func }
	case $file in
	*_fuzz_test.go) ;;
	*)
		echo "fuzz: $name is in $file; fuzz targets live in *_fuzz_test.go files" >&2
		exit 1
		;;
	esac
	[[ $name =~ $only ]] || continue
	targets+=("./$(dirname "$file") $name")
done
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz: no target matches FUZZ_TARGETS=$only" >&2
	exit 1
fi

if [ -n "${FUZZ_LIST:-}" ]; then
	printf '%s\n' "${targets[@]}"
	exit 0
fi

parallel=()
[ -n "${FUZZ_PARALLEL:-}" ] && parallel=(-parallel "$FUZZ_PARALLEL")
summary=()
for t in "${targets[@]}"; do
	pkg=${t% *}
	name=${t#* }
	echo "=== fuzz $name ($pkg) for $fuzztime"
	log=$(mktemp)
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "${parallel[@]}" "$pkg" 2>&1 | tee "$log"; then
		echo "fuzz: $name FAILED; the failing input is under $pkg/testdata/fuzz/$name/" >&2
		rm -f "$log"
		exit 1
	fi
	execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || true)
	rm -f "$log"
	summary+=("$(printf '%-28s %-40s %12s execs' "$name" "$pkg" "${execs:-?}")")
done
echo "=== fuzz: ${#targets[@]} targets, $fuzztime each, no failure"
printf '%s\n' "${summary[@]}"
