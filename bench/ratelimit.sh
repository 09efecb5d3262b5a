#!/usr/bin/env bash
# Runs the shared rate limiter benchmark (bench/ratelimit) at the issue's
# target settings against a throwaway local redis-server, or against
# $REDIS_URL when set. Extra arguments are passed to the benchmark, e.g.
#   bench/ratelimit.sh -duration 5s -json
# Exit status: the benchmark's (0 all targets met, 1 a target missed, 2 error).
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
redis_pid=""
cleanup() {
	if [[ -n "$redis_pid" ]]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

url="${REDIS_URL:-}"
if [[ -z "$url" ]]; then
	port=$((20000 + RANDOM % 20000))
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" --logfile "$tmp/redis.log" &
	redis_pid=$!
	for _ in $(seq 50); do
		redis-cli -p "$port" ping >/dev/null 2>&1 && break
		sleep 0.1
	done
	redis-cli -p "$port" ping >/dev/null
	url="redis://127.0.0.1:$port/0"
fi

go build -o "$tmp/ratelimit-bench" ./bench/ratelimit
args=(-redis "$url" -rate 500 -burst 10 -procs 3 -goroutines 50 -duration 20s "$@")
echo "+ go run ./bench/ratelimit ${args[*]}" >&2
"$tmp/ratelimit-bench" "${args[@]}"
