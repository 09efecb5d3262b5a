#!/usr/bin/env bash
# Runs the shared rate limiter benchmark (bench/ratelimit) at the issue's
# target settings against a throwaway local redis-server, or against
# $REDIS_URL when set. Extra arguments are passed to the benchmark, e.g.
#   bench/ratelimit.sh -duration 5s -json
# Exit status: the benchmark's (0 all targets met, 1 a target missed, 2 error).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=bench/redis.sh
source bench/redis.sh

url="${REDIS_URL:-}"
if [[ -z "$url" ]]; then
	bench_redis_start
fi

go build -o "$tmp/ratelimit-bench" ./bench/ratelimit
args=(-redis "$url" -rate 500 -burst 10 -procs 3 -goroutines 50 -duration 20s "$@")
echo "+ go run ./bench/ratelimit ${args[*]}" >&2
"$tmp/ratelimit-bench" "${args[@]}"
