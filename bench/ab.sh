#!/usr/bin/env bash
# bench/ab.sh: compare two revisions by alternating runs of their binaries,
# so that both see the same machine (this project's 2-core VMs change speed
# by a third within an hour: two runs minutes apart are not comparable).
#
#   bench/ab.sh OLD_REV NEW_REV [BENCH] [ROUNDS]
#   bench/ab.sh HEAD~1 HEAD BenchmarkEndToEndLatency100ms 4
#   bench/ab.sh HEAD~1 HEAD enqueue 4
#
# BENCH is one of app/worker's end-to-end benchmarks (default
# BenchmarkEndToEnd; rows per drain BENCH_ROWS, default 20000), or
# "enqueue": cmd/enqueue of each revision on the same synthetic JSONL
# dataset (bench/enqueue gen, ENQ_ROWS rows, default 300000) into a
# throwaway redis-server, flushed before each run. ROUNDS defaults to 3.
#
# Besides rows/s (wall clock, which the load of the machine moves by ±15 %)
# each run reports CPU per row, which the load moves far less:
# - end-to-end: cpu_us/row is the user+system CPU of the whole test binary
#   and of the private redis-servers it starts and reaps (sandbox, worker,
#   asynq, Redis, and the benchmark's own set-up and asynq no-op drain, the
#   same on both sides) divided by the rows of the worker's drain.
# - enqueue: cpu_us/row is cmd/enqueue's CPU per row and redis_us/row that
#   of the throwaway redis-server.
# Prints each run and each revision's means.
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: bench/ab.sh OLD_REV NEW_REV [BENCH|enqueue] [ROUNDS]}
new=${2:?usage: bench/ab.sh OLD_REV NEW_REV [BENCH|enqueue] [ROUNDS]}
bench=${3:-BenchmarkEndToEnd}
rounds=${4:-3}
# shellcheck source=bench/redis.sh
source bench/redis.sh # $tmp, removed on exit, and bench_redis_start
trap 'git worktree remove --force "$tmp/old" 2>/dev/null; git worktree remove --force "$tmp/new" 2>/dev/null; bench_cleanup' EXIT
for side in old new; do
	rev=${!side}
	git worktree add -q --detach "$tmp/$side" "$rev"
	if [[ $bench == enqueue ]]; then
		(cd "$tmp/$side" && go build -o "$tmp/$side.bin" ./cmd/enqueue)
		continue
	fi
	# The worker package is app/worker (jobs/worker before the layout move).
	pkg=./app/worker/
	[ -d "$tmp/$side/app/worker" ] || pkg=./jobs/worker/
	(cd "$tmp/$side" && go test -c -o "$tmp/$side.bin" "$pkg")
done

# cpu_of FILE: user+system seconds from /usr/bin/time -f '%U %S'.
cpu_of() { tail -1 "$1" | awk '{print $1 + $2}'; }

if [[ $bench == enqueue ]]; then
	rows=${ENQ_ROWS:-300000}
	bench_redis_start
	go run ./bench/enqueue gen -rows "$rows" -out "$tmp/data.jsonl"
	redis_cpu() { redis-cli -p "$port" info cpu | awk -F: '/^used_cpu_(user|sys):/ {s += $2} END {printf "%.3f", s}'; }
	one() { # one SIDE: prints "SIDE (REV) R rows/s C cpu_us/row D redis_us/row"
		redis-cli -p "$port" flushall >/dev/null
		local r0 r1
		r0=$(redis_cpu)
		/usr/bin/time -f '%U %S' -o "$tmp/time" "$tmp/$1.bin" -redis "$url" -type imageannotation -project bench \
			-json "$tmp/data.jsonl" >"$tmp/summary.json" 2>"$tmp/enqueue.log" ||
			{ echo "enqueue ($1) failed:" >&2; tail -5 "$tmp/enqueue.log" >&2; exit 2; }
		r1=$(redis_cpu)
		python3 - "$1" "${!1}" "$tmp/summary.json" "$(cpu_of "$tmp/time")" "$r0" "$r1" <<'PY'
import json, sys
side, rev, path, cpu, r0, r1 = sys.argv[1:]
s = json.loads(open(path).read().strip().splitlines()[-1])
n = s["rows"]
print(f"{side} ({rev}) {n / s['seconds']:.0f} rows/s {float(cpu) * 1e6 / n:.2f} cpu_us/row "
      f"{(float(r1) - float(r0)) * 1e6 / n:.2f} redis_us/row")
PY
	}
else
	rows=${BENCH_ROWS:-20000}
	one() {
		local r
		r=$(BENCH_ROWS=$rows /usr/bin/time -f '%U %S' -o "$tmp/time" "$tmp/$1.bin" -test.run '^$' \
			-test.bench "^${bench}\$" -test.benchtime 1x | grep -oE '[0-9.]+ rows/s' | head -1)
		awk -v s="$1" -v rev="${!1}" -v r="$r" -v c="$(cpu_of "$tmp/time")" -v n="$rows" \
			'BEGIN {printf "%s (%s) %s %.1f cpu_us/row\n", s, rev, r, c * 1e6 / n}'
	}
fi
for _ in $(seq 1 "$rounds"); do
	for side in old new; do one "$side"; done
done | awk '{print; n[$1]++
	for (i = 3; i < NF; i += 2) {k = $1 SUBSEP $(i + 1); if (!(k in sum)) order[$1] = order[$1] " " $(i + 1); sum[k] += $i}}
	END {for (s in n) {m = split(order[s], us, " "); line = "mean " s
		for (j = 1; j <= m; j++) line = line sprintf(" %.1f %s", sum[s SUBSEP us[j]] / n[s], us[j])
		print line " over " n[s] " runs"}}'
