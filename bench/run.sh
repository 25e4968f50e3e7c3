#!/bin/sh
# Runs the resilience benchmarks against sony/gobreaker/v2 and failsafe-go and prints the ratios.
#
#   ./run.sh [count]        count rounds (default 6), each running every benchmark once
#
# Environment: BENCH (a -bench regexp, default "."), BENCHTIME (default 1s), OUT (directory for
# the results, default ./results). The rounds are interleaved (round 1 of every benchmark, then
# round 2, ...), so a load spike from other processes hits every library alike and the ratios
# compare runs made next to each other. Writes $OUT/raw.txt (go test output), $OUT/benchstat.txt
# and $OUT/ratios.md.
set -eu

count=${1:-6}
bench=${BENCH:-.}
benchtime=${BENCHTIME:-1s}
cd "$(dirname "$0")"
out=${OUT:-results}
mkdir -p "$out"

bin="$out/bench.test"
go test -c -o "$bin" .
{
	go version
	echo "count=$count benchtime=$benchtime bench=$bench nproc=$(nproc 2>/dev/null || echo ?)"
} >"$out/raw.txt"
i=1
while [ "$i" -le "$count" ]; do
	echo "round $i/$count" >&2
	"$bin" -test.run '^$' -test.bench "$bench" -test.benchmem -test.benchtime "$benchtime" -test.count 1 |
		grep -v '^PASS$' >>"$out/raw.txt"
	i=$((i + 1))
done

# benchstat: one column per library (the sub-benchmark name becomes the key /lib), faultline as
# the base, with the % change and p-value of each peer against it.
benchstat=$(command -v benchstat || true)
if [ -z "$benchstat" ] && [ -x "$(go env GOPATH)/bin/benchstat" ]; then
	benchstat="$(go env GOPATH)/bin/benchstat"
fi
if [ -n "$benchstat" ]; then
	sed -E 's#^(Benchmark[^/ ]+)/([A-Za-z]+)-([0-9]+)#\1/lib=\2-\3#' "$out/raw.txt" >"$out/bylib.txt"
	"$benchstat" -col /lib "$out/bylib.txt" | tee "$out/benchstat.txt"
	echo
else
	echo "benchstat not found (go install golang.org/x/perf/cmd/benchstat@latest); ratios only" >&2
fi

go run ./cmd/ratios "$out/raw.txt" | tee "$out/ratios.md"
