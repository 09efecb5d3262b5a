#!/usr/bin/env bash
# The producer benchmark of issue 4: a synthetic 1,000,000-row imageannotation
# JSONL dataset (~400-byte rows) enqueued by the cmd/enqueue binary into a
# throwaway local redis-server (validation and job records included), under
# /usr/bin/time -v for the peak RSS; then a plain single-goroutine
# asynq.Client.Enqueue loop over the same rows (bench/enqueue loop) for the
# ratio. Prints one line of figures. Knobs (environment):
#   ROWS=1000000       dataset size
#   LOOP_ROWS=200000   rows of the plain loop (its rate is flat; it is slow)
#   ENQUEUE_ARGS=""    extra cmd/enqueue flags, e.g. "-workers 2 -write-batch 512"
# Exit status: 0 every target met (>= 50,000 rows/s, <= 64 MiB, >= 2.5x the
# loop), 1 a target missed, 2 an error.
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS="${ROWS:-1000000}"
LOOP_ROWS="${LOOP_ROWS:-200000}"
# shellcheck source=bench/redis.sh
source bench/redis.sh
bench_redis_start

# The build tags of deploy/Dockerfile: enqueue as it ships.
go build -tags disable_grpc_modules -o "$tmp/enqueue" ./cmd/enqueue
go build -o "$tmp/enqueue-bench" ./bench/enqueue
"$tmp/enqueue-bench" gen -rows "$ROWS" -out "$tmp/synthetic.jsonl"

redis_cpu() { redis-cli -p "$port" info cpu | awk -F: '/^used_cpu_(user|sys):/ {s += $2} END {printf "%.3f", s}'; }
cpu0=$(redis_cpu)
# shellcheck disable=SC2086
/usr/bin/time -v -o "$tmp/time.txt" "$tmp/enqueue" -redis "$url" -type imageannotation -project bench -json \
	${ENQUEUE_ARGS:-} "$tmp/synthetic.jsonl" >"$tmp/summary.json" 2>"$tmp/enqueue.log" || {
	echo "cmd/enqueue failed:" >&2; tail -5 "$tmp/enqueue.log" >&2; exit 2; }
cpu1=$(redis_cpu)
redis-cli -p "$port" flushall >/dev/null
"$tmp/enqueue-bench" loop -redis "$url" -rows "$LOOP_ROWS" "$tmp/synthetic.jsonl" >"$tmp/loop.json"

python3 - "$tmp/summary.json" "$tmp/time.txt" "$tmp/loop.json" "$(nproc)" "$(cut -d' ' -f1 /proc/loadavg)" "$cpu0" "$cpu1" <<'PY'
import json, re, sys
summary = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
tv = open(sys.argv[2]).read()
rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", tv).group(1))
loop = json.load(open(sys.argv[3]))
rate = summary["rows"] / summary["seconds"]
ratio = rate / loop["rows_per_s"]
rss = rss_kib / 1024
ok = summary["enqueued"] == summary["rows"] and rate >= 50000 and rss <= 64 and ratio >= 2.5
# CPU seconds of each side: on a busy machine they show what a quiet one
# would do (each process needs its own core; the slower side bounds the rate).
enq_cpu = float(re.search(r"User time \(seconds\): ([\d.]+)", tv).group(1)) + float(re.search(r"System time \(seconds\): ([\d.]+)", tv).group(1))
redis_cpu = float(sys.argv[7]) - float(sys.argv[6])
bound = summary["rows"] / max(enq_cpu, redis_cpu)
print(f"enqueue rows={summary['rows']} enqueued={summary['enqueued']} rows_per_s={rate:.0f} peak_rss_mib={rss:.1f} "
      f"loop_rows={loop['rows']} loop_rows_per_s={loop['rows_per_s']:.0f} ratio={ratio:.2f} "
      f"enqueue_cpu_s={enq_cpu:.1f} redis_cpu_s={redis_cpu:.1f} cpu_bound_rows_per_s={bound:.0f} "
      f"cpus={sys.argv[4]} load1={sys.argv[5]} targets={'met' if ok else 'MISSED'}")
sys.exit(0 if ok else 1)
PY
