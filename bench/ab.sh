#!/usr/bin/env bash
# bench/ab.sh: compare two revisions by alternating runs of their binaries,
# so that both see the same machine (this project's 2-core VMs change speed
# by a third within an hour: two runs minutes apart are not comparable).
#
#   bench/ab.sh OLD_REV NEW_REV [BENCH] [ROUNDS]
#   bench/ab.sh HEAD~1 HEAD BenchmarkEndToEndLatency100ms 4
#   bench/ab.sh HEAD~1 HEAD enqueue 4
#   bench/ab.sh HEAD~1 HEAD real 3
#
# BENCH is one of app/worker's end-to-end benchmarks (default
# BenchmarkEndToEnd; rows per drain BENCH_ROWS, default 20000), or
# "enqueue": cmd/enqueue of each revision on the same synthetic JSONL
# dataset (bench/enqueue gen, ENQ_ROWS rows, default 300000) into a
# throwaway redis-server, flushed before each run, or "real": the shipped
# programs of each revision (sandbox -complete-after 0, one worker
# -rate-limit 0 -concurrency 50, enqueue -wait of E2E_ROWS rows, default
# 20000, the performance table's "real binaries" row) on one redis-server,
# flushed before each run. ROUNDS defaults to 3.
#
# Besides rows/s (wall clock, which the load of the machine moves by ±15 %)
# each run reports CPU per row, which the load moves far less:
# - end-to-end: cpu_us/row is the user+system CPU of the whole test binary
#   and of the private redis-servers it starts and reaps (sandbox, worker,
#   asynq, Redis, and the benchmark's own set-up and asynq no-op drain, the
#   same on both sides) divided by the rows of the worker's drain.
# - enqueue: cpu_us/row is cmd/enqueue's CPU per row and redis_us/row that
#   of the throwaway redis-server.
# - real: worker_us/row and sandbox_us/row are the CPU per row of the
#   worker and sandbox processes, redis_us/row that of redis-server.
# Prints each run and each revision's means.
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: bench/ab.sh OLD_REV NEW_REV [BENCH|enqueue|real] [ROUNDS]}
new=${2:?usage: bench/ab.sh OLD_REV NEW_REV [BENCH|enqueue|real] [ROUNDS]}
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
	if [[ $bench == real ]]; then
		mkdir -p "$tmp/$side.d"
		(cd "$tmp/$side" && go build -tags disable_grpc_modules -o "$tmp/$side.d/" ./cmd/enqueue ./cmd/worker ./cmd/sandbox)
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
elif [[ $bench == real ]]; then
	rows=${E2E_ROWS:-20000}
	bench_redis_start
	go run ./bench/enqueue gen -rows "$rows" -out "$tmp/data.jsonl"
	redis_cpu() { redis-cli -p "$port" info cpu | awk -F: '/^used_cpu_(user|sys):/ {s += $2} END {printf "%.3f", s}'; }
	freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
	ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
	one() { # one SIDE: prints "SIDE (REV) R rows/s W worker_us/row S sandbox_us/row D redis_us/row"
		redis-cli -p "$port" flushall >/dev/null
		local sp wp spid wpid r0 r1 t0 t1 s1 w1 hz
		hz=$(getconf CLK_TCK)
		sp=$(freeport)
		"$tmp/$1.d/sandbox" -addr "127.0.0.1:$sp" -complete-after 0 >"$tmp/sandbox.log" 2>&1 &
		spid=$!
		wp=$(freeport)
		REDIS_URL=$url REFONTE_API_URL="http://127.0.0.1:$sp/v1" REFONTE_TEST_API_KEY=test_sandbox_key \
			REFONTE_CALLBACK_AUTH_KEY=sandbox_callback_secret \
			"$tmp/$1.d/worker" -listen "127.0.0.1:$wp" -rate-limit 0 -concurrency 50 >"$tmp/worker.log" 2>&1 &
		wpid=$!
		for _ in $(seq 200); do curl -fs "http://127.0.0.1:$wp/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
		r0=$(redis_cpu)
		s1=$(ticks "$spid")
		w1=$(ticks "$wpid")
		t0=$(date +%s.%N)
		"$tmp/$1.d/enqueue" -redis "$url" -type imageannotation -project demo -wait -json \
			-callback-url "http://127.0.0.1:$wp/callback" "$tmp/data.jsonl" >"$tmp/summary.json" 2>"$tmp/enqueue.log" ||
			{ echo "enqueue ($1) failed:" >&2; tail -5 "$tmp/enqueue.log" >&2; kill "$spid" "$wpid"; exit 2; }
		t1=$(date +%s.%N)
		r1=$(redis_cpu)
		python3 - "$1" "${!1}" "$rows" "$t0" "$t1" "$(ticks "$wpid")" "$w1" "$(ticks "$spid")" "$s1" "$hz" "$r0" "$r1" <<'PY'
import sys
side, rev, n, t0, t1, w, w0, s, s0, hz, r0, r1 = sys.argv[1:]
n, hz = int(n), float(hz)
print(f"{side} ({rev}) {n / (float(t1) - float(t0)):.0f} rows/s {(float(w) - float(w0)) / hz * 1e6 / n:.1f} worker_us/row "
      f"{(float(s) - float(s0)) / hz * 1e6 / n:.1f} sandbox_us/row {(float(r1) - float(r0)) * 1e6 / n:.1f} redis_us/row")
PY
		kill "$wpid" "$spid"
		wait "$wpid" "$spid" 2>/dev/null || true
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
