#!/usr/bin/env bash
# Priority (issue #15): a NORMAL-row normal run is queued and worked at a
# shared -rate-limit RATE; a HIGH-row run enqueued afterwards with
# -priority high must be fully submitted quickly (target: 100 rows in
# under 10 s behind 20,000 at 50/s), because workers serve a mode's high
# queue before its normal and low ones. Real binaries: cmd/sandbox
# (-complete-after 0), one cmd/worker (-rate-limit RATE -concurrency
# CONC), cmd/enqueue, a throwaway local redis-server. Prints the seconds
# from the start of the high enqueue to its last row submitted (polled
# with enqueue status -json every 100 ms), and how many normal rows were
# submitted by then.
# Knobs (environment): NORMAL=20000 HIGH=100 RATE=50 CONC=50 HEAD_START=5 (s
# the normal run is worked before the high one is enqueued).
set -euo pipefail
cd "$(dirname "$0")/.."

NORMAL="${NORMAL:-20000}"
HIGH="${HIGH:-100}"
RATE="${RATE:-50}"
CONC="${CONC:-50}"
HEAD_START="${HEAD_START:-5}"
# shellcheck source=bench/redis.sh
source bench/redis.sh
pids=()
cleanup_all() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	bench_cleanup
}
trap cleanup_all EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$tmp/bin"
go build -o "$tmp/bin/" ./cmd/enqueue ./cmd/worker ./cmd/sandbox
go build -o "$tmp/bin/enqueue-bench" ./bench/enqueue
"$tmp/bin/enqueue-bench" gen -rows "$NORMAL" -seed 1 -out "$tmp/normal.jsonl" >/dev/null
"$tmp/bin/enqueue-bench" gen -rows "$HIGH" -seed 2 -out "$tmp/high.jsonl" >/dev/null
bench_redis_start

sport=$(freeport)
"$tmp/bin/sandbox" -addr "127.0.0.1:$sport" -complete-after 0 >"$tmp/sandbox.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$sport/_sandbox/stats" >/dev/null 2>&1 && break; sleep 0.05; done
wport=$(freeport)
REDIS_URL="$url" REFONTE_API_URL="http://127.0.0.1:$sport/v1" REFONTE_TEST_API_KEY=test_sandbox_key \
	REFONTE_CALLBACK_AUTH_KEY=sandbox_callback_secret \
	"$tmp/bin/worker" -listen "127.0.0.1:$wport" -admin-listen "" -rate-limit "$RATE" -concurrency "$CONC" >"$tmp/worker.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do curl -fs "http://127.0.0.1:$wport/readyz" >/dev/null 2>&1 && break; sleep 0.05; done

submit() { # submit FILE [flags...]: prints the run ID
	local f=$1
	shift
	"$tmp/bin/enqueue" -redis "$url" -type imageannotation -project demo -json \
		-callback-url "http://127.0.0.1:$wport/callback" "$@" "$f" 2>>"$tmp/enqueue.log" | tail -1 | jq -r .run_id
}
status() { "$tmp/bin/enqueue" status -redis "$url" -json "$1" | jq -r ".$2"; }

normal=$(submit "$tmp/normal.jsonl")
sleep "$HEAD_START"
t0=$(date +%s.%N)
high=$(submit "$tmp/high.jsonl" -priority high)
while [[ $(status "$high" submitted) -lt "$HIGH" ]]; do
	sleep 0.1
	if python3 -c "import sys,time; sys.exit(0 if time.time()-float(sys.argv[1]) > 120 else 1)" "$t0"; then
		echo "error: the high run was not submitted within 120 s" >&2
		exit 1
	fi
done
t1=$(date +%s.%N)
normal_submitted=$(status "$normal" submitted)
python3 - "$t0" "$t1" "$HIGH" "$NORMAL" "$normal_submitted" "$RATE" "$(status "$high" priority)" <<'PY'
import sys
t0, t1, high, normal, nsub, rate, prio = sys.argv[1:]
secs = float(t1) - float(t0)
print(f"priority: {prio} run of {int(high)} rows fully submitted {secs:.2f} s after its enqueue started, "
      f"behind a normal run of {int(normal):,} rows at -rate-limit {rate} "
      f"({int(nsub):,} normal rows submitted by then, {int(normal) - int(nsub):,} still queued); "
      f"target < 10 s: {'met' if secs < 10 else 'MISSED'}")
PY
