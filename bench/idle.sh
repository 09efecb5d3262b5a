#!/usr/bin/env bash
# bench/idle.sh: what an idle worker costs Redis. Builds cmd/worker and
# cmd/sandbox at REV (default: the working tree), starts a throwaway
# redis-server, a sandbox and one worker with nothing to do, lets them
# settle, then counts for SECONDS (default 20) the commands the worker
# sends Redis and the CPU redis-server spends on them.
#
#   bench/idle.sh [REV] [SECONDS]
#   bench/idle.sh a461a6f 20; bench/idle.sh 8c4af76 20
#
# Prints "REV commands/s redis_cpu_%" (the share of one core). Worker flags:
# WORKER_FLAGS (default "-rate-limit 0 -concurrency 50").
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-}
secs=${2:-20}
flags=${WORKER_FLAGS:--rate-limit 0 -concurrency 50}
# shellcheck source=bench/redis.sh
source bench/redis.sh # $tmp, removed on exit, and bench_redis_start
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	[[ -n "$rev" ]] && git worktree remove --force "$tmp/src" 2>/dev/null
	bench_cleanup
}
trap cleanup EXIT
src=.
if [[ -n "$rev" ]]; then
	git worktree add -q --detach "$tmp/src" "$rev"
	src=$tmp/src
fi
(cd "$src" && go build -tags disable_grpc_modules -o "$tmp/" ./cmd/worker ./cmd/sandbox)
bench_redis_start
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sp=$(freeport) wp=$(freeport) ap=$(freeport)
"$tmp/sandbox" -addr "127.0.0.1:$sp" >"$tmp/sandbox.log" 2>&1 &
pids+=($!)
# shellcheck disable=SC2086
REDIS_URL=$url REFONTE_API_URL="http://127.0.0.1:$sp/v1" REFONTE_TEST_API_KEY=test_sandbox_key \
	REFONTE_CALLBACK_AUTH_KEY=sandbox_callback_secret \
	"$tmp/worker" -listen "127.0.0.1:$wp" -admin-listen "127.0.0.1:$ap" $flags >"$tmp/worker.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do curl -fs "http://127.0.0.1:$wp/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
sleep 8 # start-up writes (server records, first polls) settle
redis_cpu() { redis-cli -p "$port" info cpu | awk -F: '/^used_cpu_(user|sys):/ {s += $2} END {printf "%.4f", s}'; }
redis-cli -p "$port" config resetstat >/dev/null
c0=$(redis_cpu)
sleep "$secs"
c1=$(redis_cpu)
n=$(redis-cli -p "$port" info stats | awk -F: '/^total_commands_processed:/ {print $2 + 0}')
awk -v r="${rev:-worktree}" -v n="$n" -v s="$secs" -v c0="$c0" -v c1="$c1" \
	'BEGIN {printf "%s %.0f commands/s %.2f redis_cpu_%%\n", r, n / s, (c1 - c0) / s * 100}'
