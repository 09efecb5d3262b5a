#!/usr/bin/env bash
# Wide rows (issue #17.4): ROWS CSV rows of COLS columns each (~2.2 MB per
# line at the default 1,000,000 columns, under the 10 MiB line limit) plus
# a few ordinary rows, enqueued by the cmd/enqueue binary into a throwaway
# local redis-server under /usr/bin/time -v. Prints the peak RSS, what was
# enqueued and rejected, and the largest asynq message Redis holds.
# Knobs (environment): ROWS=30 COLS=1000000 NARROW=100 ENQUEUE_ARGS="".
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS="${ROWS:-30}"
COLS="${COLS:-1000000}"
NARROW="${NARROW:-100}"
# shellcheck source=bench/redis.sh
source bench/redis.sh
bench_redis_start

go build -o "$tmp/enqueue" ./cmd/enqueue
python3 - "$tmp/wide.csv" "$ROWS" "$COLS" "$NARROW" <<'PY'
import sys
path, rows, cols, narrow = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
with open(path, "w") as f:
    f.write("attachment," + ",".join(f"c{i}" for i in range(cols)) + "\n")
    wide_tail = ",".join("7" for _ in range(cols)) + "\n"
    narrow_tail = "," * cols + "\n"
    for r in range(rows + narrow):
        f.write(f"https://files.example.com/{r}.pdf,")
        f.write(wide_tail[1:] if r < rows else narrow_tail[1:])
PY
line_bytes=$(sed -n 2p "$tmp/wide.csv" | wc -c)
# shellcheck disable=SC2086
code=0
/usr/bin/time -v -o "$tmp/time.txt" "$tmp/enqueue" -redis "$url" -type documenttranscription -project bench -json \
	-rejects "$tmp/rejects.jsonl" ${ENQUEUE_ARGS:-} "$tmp/wide.csv" >"$tmp/summary.json" 2>"$tmp/enqueue.log" || code=$?
if [[ $code -ne 0 && $code -ne 3 ]]; then
	echo "cmd/enqueue exit $code:" >&2; tail -5 "$tmp/enqueue.log" >&2; exit 2
fi
biggest=0
for k in $(redis-cli -p "$port" --scan --pattern 'asynq:{*}:t:*'); do
	n=$(redis-cli -p "$port" hstrlen "$k" msg)
	(( n > biggest )) && biggest=$n
done
python3 - "$tmp/summary.json" "$tmp/time.txt" "$line_bytes" "$biggest" "$tmp/rejects.jsonl" <<'PY'
import json, os, re, sys
summary = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(sys.argv[2]).read()).group(1)) / 1024
reason = ""
if os.path.exists(sys.argv[5]):
    first = open(sys.argv[5]).readline()
    if first:
        reason = json.loads(first)["error"]
print(f"wide rows: line_bytes={int(sys.argv[3])} rows={summary['rows']} enqueued={summary['enqueued']} "
      f"invalid={summary['invalid']} peak_rss_mib={rss:.1f} largest_asynq_msg_bytes={int(sys.argv[4])} first_reject={reason!r}")
PY
