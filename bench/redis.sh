# Sourced by the bench scripts: a temporary folder ($tmp, removed on exit)
# and a throwaway local redis-server on a free loopback port ($port, $url,
# stopped on exit), started by bench_redis_start.
tmp=$(mktemp -d)
redis_pid=""
bench_cleanup() {
	if [[ -n "$redis_pid" ]]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap bench_cleanup EXIT

bench_redis_start() {
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" --logfile "$tmp/redis.log" &
	redis_pid=$!
	for _ in $(seq 50); do
		redis-cli -p "$port" ping >/dev/null 2>&1 && break
		sleep 0.1
	done
	redis-cli -p "$port" ping >/dev/null || { echo "redis-server did not start" >&2; exit 2; }
	url="redis://127.0.0.1:$port/0"
}
