#!/usr/bin/env bash
# bench/ab.sh: compare two revisions on one of app/worker's end-to-end
# benchmarks by alternating runs of their test binaries, so that both see
# the same machine (this project's 2-core VMs change speed by a third
# within an hour: two runs minutes apart are not comparable).
#
#   bench/ab.sh OLD_REV NEW_REV [BENCH] [ROUNDS]
#   bench/ab.sh HEAD~1 HEAD BenchmarkEndToEndLatency100ms 4
#
# BENCH defaults to BenchmarkEndToEnd, ROUNDS to 3, rows per drain to
# BENCH_ROWS (20000). Prints each run's rows/s and each revision's mean.
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: bench/ab.sh OLD_REV NEW_REV [BENCH] [ROUNDS]}
new=${2:?usage: bench/ab.sh OLD_REV NEW_REV [BENCH] [ROUNDS]}
bench=${3:-BenchmarkEndToEnd}
rounds=${4:-3}
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/old" 2>/dev/null; git worktree remove --force "$tmp/new" 2>/dev/null; rm -rf "$tmp"' EXIT
for side in old new; do
  rev=${!side}
  git worktree add -q --detach "$tmp/$side" "$rev"
  # The worker package is app/worker (jobs/worker before the layout move).
  pkg=./app/worker/
  [ -d "$tmp/$side/app/worker" ] || pkg=./jobs/worker/
  (cd "$tmp/$side" && go test -c -o "$tmp/$side.test" "$pkg")
done
for _ in $(seq 1 "$rounds"); do
  for side in old new; do
    r=$(BENCH_ROWS=${BENCH_ROWS:-20000} "$tmp/$side.test" -test.run '^$' -test.bench "^${bench}\$" -test.benchtime 1x |
      grep -oE '[0-9.]+ rows/s' | head -1)
    echo "$side (${!side}) $r"
  done
done | awk '{print; s[$1]+=$3; c[$1]++} END {for (k in s) printf "mean %s %.0f rows/s over %d runs\n", k, s[k]/c[k], c[k]}'
