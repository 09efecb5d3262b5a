#!/usr/bin/env bash
# bench/run.sh: the system-level benchmark report of refonte-batch (issue 7).
#
# Builds cmd/enqueue, cmd/worker and cmd/sandbox, starts its own
# redis-servers (free ports, no persistence) and sandboxes, runs every
# system-level benchmark of the project and prints ONE markdown table on
# stdout (progress goes to stderr): the figure, its target and the command
# that measures it, with the date and the machine. Run it on a quiet machine:
#   bench/run.sh | tee bench-report.md
# Knobs (environment): ENQ_ROWS (1000000, bench/enqueue.sh), RL_DURATION
# (20s, bench/ratelimit.sh), BENCH_ROWS (20000, the go end-to-end
# benchmarks; E2E_RUNS (3) drains averaged in each, and the real-binaries
# runs of which each row gives the median), E2E_ROWS (20000, the
# real-binaries runs), MEM_ROWS (100000),
# RL_ROWS (2000, the 3-worker rate-limit run). QUICK=1 divides them all by 10
# for a smoke run. A benchmark that fails shows "error" in its row; the
# script still prints the table and exits 1 if any figure missed its target
# or failed.
set -uo pipefail
cd "$(dirname "$0")/.."

div=1
[[ -n "${QUICK:-}" ]] && div=10
ENQ_ROWS=${ENQ_ROWS:-$((1000000 / div))}
RL_DURATION=${RL_DURATION:-20s}
[[ -n "${QUICK:-}" ]] && RL_DURATION=${RL_DURATION_QUICK:-5s}
BENCH_ROWS=${BENCH_ROWS:-$((20000 / div))}
E2E_RUNS=${E2E_RUNS:-3} # measured drains averaged per go end-to-end benchmark
E2E_ROWS=${E2E_ROWS:-$((20000 / div))}
MEM_ROWS=${MEM_ROWS:-$((100000 / div))}
RL_ROWS=${RL_ROWS:-$((2000 / div))}

tmp=$(mktemp -d)
pids=()
rows=()   # markdown table rows
missed=0

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT

log() { echo "bench/run.sh: $*" >&2; }

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# row METRIC FIGURE TARGET COMMAND [ok|miss|info]
row() {
	local mark=""
	case "${5:-info}" in
	ok) mark=" ✅" ;;
	miss) mark=" ❌"; missed=1 ;;
	esac
	rows+=("| $1 | $2$mark | $3 | \`$4\` |")
}

# check VALUE OP TARGET: prints ok or miss (OP is >= or <=).
check() { python3 -c "import sys; v,t=float(sys.argv[1]),float(sys.argv[3]); print('ok' if (v>=t if sys.argv[2]=='>=' else v<=t) else 'miss')" "$1" "$2" "$3" 2>/dev/null || echo miss; }

# start_redis [extra redis-server args...]: sets REDIS_PORT and REDIS_URL.
start_redis() {
	REDIS_PORT=$(freeport)
	mkdir -p "$tmp/redis-$REDIS_PORT"
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
		--dir "$tmp/redis-$REDIS_PORT" --logfile "$tmp/redis-$REDIS_PORT/redis.log" "$@" &
	pids+=($!)
	REDIS_PID=$!
	for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
	REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
}

# start_sandbox [flags...]: sets SANDBOX (http://host:port).
start_sandbox() {
	local port
	port=$(freeport)
	"$tmp/bin/sandbox" -addr "127.0.0.1:$port" "$@" >"$tmp/sandbox-$port.log" 2>&1 &
	pids+=($!)
	SANDBOX_PID=$!
	SANDBOX="http://127.0.0.1:$port"
	for _ in $(seq 100); do curl -fs "$SANDBOX/_sandbox/stats" >/dev/null 2>&1 && break; sleep 0.05; done
}

# start_worker [flags...]: starts a worker on REDIS_URL and SANDBOX; appends
# its address to WORKERS and its pid to WORKER_PIDS.
start_worker() {
	local port
	port=$(freeport)
	REDIS_URL="$REDIS_URL" REFONTE_API_URL="$SANDBOX/v1" REFONTE_TEST_API_KEY=test_sandbox_key \
		REFONTE_CALLBACK_AUTH_KEY=sandbox_callback_secret \
		"$tmp/bin/worker" -listen "127.0.0.1:$port" "$@" >"$tmp/worker-$port.log" 2>&1 &
	pids+=($!)
	WORKER_PIDS+=($!)
	WORKERS+=("127.0.0.1:$port")
	for _ in $(seq 200); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
}

stop_stack() {
	for p in "${WORKER_PIDS[@]}" ${SANDBOX_PID:-} ${REDIS_PID:-}; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	WORKER_PIDS=() WORKERS=() SANDBOX_PID="" REDIS_PID=""
}
WORKER_PIDS=() WORKERS=()

# stat NAME: one counter of the sandbox's stats.
stat() { curl -fs "$SANDBOX/_sandbox/stats" | jq -r ".$1"; }

# gen ROWS FILE: the synthetic imageannotation JSONL dataset (~400 B rows).
gen() { "$tmp/bin/enqueue-bench" gen -rows "$1" -out "$2" >/dev/null; }

# gobench PKG BENCH [go test args...]: runs one go benchmark; prints "value unit" pairs.
gobench() {
	local pkg=$1 name=$2
	shift 2
	go test -run '^$' -bench "^${name}\$" "$@" "$pkg" 2>&1 | tee -a "$tmp/gobench.log" |
		awk -v n="$name" '$1 ~ "^"n"(-[0-9]+)?$" { for (i = 3; i < NF; i += 2) print $i, $(i+1) }'
}
metric() { awk -v u="$2" '$2 == u { print $1 }' <<<"$1" | tail -1; }
fmt() { python3 -c "import sys; print(f'{float(sys.argv[1]):,.${2:-0}f}')" "$1" 2>/dev/null || echo "$1"; }

log "building the programs"
mkdir -p "$tmp/bin"
# ./cmd/enqueue and ./bench/enqueue are both "enqueue": build them apart.
# The build tags of deploy/Dockerfile: the programs as they ship.
if ! { go build -tags disable_grpc_modules -o "$tmp/bin/" ./cmd/enqueue ./cmd/worker ./cmd/sandbox &&
	go build -o "$tmp/bin/enqueue-bench" ./bench/enqueue; } 2>"$tmp/build.log"; then
	cat "$tmp/build.log" >&2
	exit 2
fi

date_utc=$(date -u '+%Y-%m-%d %H:%M UTC')
cpus=$(nproc)
ram=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
cpu_model=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 1. enqueue vs the plain asynq loop (bench/enqueue.sh) -------------------
log "enqueue: $ENQ_ROWS rows (bench/enqueue.sh)"
cmd="ROWS=$ENQ_ROWS bench/enqueue.sh"
if out=$(ROWS=$ENQ_ROWS bench/enqueue.sh 2>"$tmp/enqueue-sh.log") || [[ -n "$out" ]]; then
	kv() { grep -o "$1=[^ ]*" <<<"$out" | head -1 | cut -d= -f2; }
	r=$(kv rows_per_s) rss=$(kv peak_rss_mib) loop=$(kv loop_rows_per_s) ratio=$(kv ratio)
	if [[ -n "$r" ]]; then
		row "enqueue rate ($(fmt "$ENQ_ROWS") rows JSONL, validation + job records)" "$(fmt "$r") rows/s" "≥ 50,000 rows/s" "$cmd" "$(check "$r" '>=' 50000)"
		row "enqueue peak RSS" "$rss MiB" "≤ 64 MiB" "$cmd" "$(check "$rss" '<=' 64)"
		row "plain asynq.Client.Enqueue loop, 1 goroutine" "$(fmt "$loop") rows/s" "(reference)" "$cmd"
		row "enqueue ÷ plain loop" "${ratio}×" "≥ 2.5×" "$cmd" "$(check "$ratio" '>=' 2.5)"
	else
		row "enqueue rate vs plain asynq loop" "error: $(tail -1 "$tmp/enqueue-sh.log")" "≥ 50,000 rows/s, ≤ 64 MiB, ≥ 2.5×" "$cmd" miss
	fi
else
	row "enqueue rate vs plain asynq loop" "error: $(tail -1 "$tmp/enqueue-sh.log")" "≥ 50,000 rows/s, ≤ 64 MiB, ≥ 2.5×" "$cmd" miss
fi

# --- 2. limiter accuracy, 3 processes (bench/ratelimit.sh) ------------------
log "limiter: 3 processes × 50 goroutines at 500/s for $RL_DURATION"
start_redis
cmd="bench/ratelimit.sh -duration $RL_DURATION -json"
if out=$(REDIS_URL=$REDIS_URL bench/ratelimit.sh -duration "$RL_DURATION" -json 2>"$tmp/ratelimit.log"; true) && jq -e . >/dev/null 2>&1 <<<"$out"; then
	ach=$(jq -r .achieved <<<"$out") win=$(jq -r .max_1s_window_slot <<<"$out") lim=$(jq -r .window_limit <<<"$out")
	cpg=$(jq -r .redis_calls_per_grant <<<"$out") p99=$(jq -r .lateness_p99_ms <<<"$out")
	row "limiter achieved rate (500/s, 3 procs × 50 goroutines)" "$(fmt "$ach" 3) of the limit" "≥ 0.97" "$cmd" "$(check "$ach" '>=' 0.97)"
	row "limiter most grants in any 1-s window" "$win" "≤ $lim (limit + burst)" "$cmd" "$(check "$win" '<=' "$lim")"
	row "limiter Redis calls per grant" "$(fmt "$cpg" 2)" "≤ 1.1" "$cmd" "$(check "$cpg" '<=' 1.1)"
	row "limiter p99 wake-up lateness" "$(fmt "$p99" 2) ms" "≤ 5 ms" "$cmd" "$(check "$p99" '<=' 5)"
else
	row "limiter accuracy (3 processes)" "error: $(tail -1 "$tmp/ratelimit.log")" "≥ 0.97, no window > limit+burst" "$cmd" miss
fi
stop_stack

# --- 3. end-to-end, in-process worker vs asynq's no-op drain (go bench) -----
log "end-to-end go benchmarks ($BENCH_ROWS rows)"
cmd="BENCH_ROWS=$BENCH_ROWS go test -run '^\$' -bench '^BenchmarkEndToEnd\$' -benchtime ${E2E_RUNS}x ./app/worker/"
out=$(BENCH_ROWS=$BENCH_ROWS gobench ./app/worker/ BenchmarkEndToEnd -benchtime "${E2E_RUNS}x")
r=$(metric "$out" rows/s) noop=$(metric "$out" noop_rows/s) ratio=$(metric "$out" ratio_to_noop)
if [[ -n "$r" ]]; then
	row "end-to-end rows/s (1 worker, no limit, 0 latency)" "$(fmt "$r") rows/s" "≥ 3,000 rows/s" "$cmd" "$(check "$r" '>=' 3000)"
	row "asynq no-op-handler drain, same rows" "$(fmt "$noop") rows/s" "(reference)" "$cmd"
	row "end-to-end ÷ no-op drain" "$(fmt "$ratio" 2)×" "≥ 0.25×" "$cmd" "$(check "$ratio" '>=' 0.25)"
else
	row "end-to-end rows/s vs no-op drain" "error (see go test output)" "≥ 3,000 rows/s, ≥ 0.25×" "$cmd" miss
fi
cmd="BENCH_ROWS=$BENCH_ROWS go test -run '^\$' -bench '^BenchmarkEndToEndLatency100ms\$' -benchtime ${E2E_RUNS}x ./app/worker/"
out=$(BENCH_ROWS=$BENCH_ROWS gobench ./app/worker/ BenchmarkEndToEndLatency100ms -benchtime "${E2E_RUNS}x")
r=$(metric "$out" rows/s)
if [[ -n "$r" ]]; then
	row "end-to-end rows/s, 100 ms API latency, concurrency 200" "$(fmt "$r") rows/s" "≥ 1,500 rows/s" "$cmd" "$(check "$r" '>=' 1500)"
else
	row "end-to-end rows/s, 100 ms API latency, concurrency 200" "error (see go test output)" "≥ 1,500 rows/s" "$cmd" miss
fi

# --- 4. callback endpoint alone (go bench) ----------------------------------
log "callback handler benchmark"
cmd="go test -run '^\$' -bench '^BenchmarkCallbackHandler\$' -benchtime 20000x ./jobs/callback"
out=$(gobench ./jobs/callback BenchmarkCallbackHandler -benchtime 20000x)
r=$(metric "$out" callbacks/s)
if [[ -n "$r" ]]; then
	row "callback endpoint alone, callbacks matched" "$(fmt "$r") callbacks/s" "≥ 5,000 callbacks/s" "$cmd" "$(check "$r" '>=' 5000)"
else
	row "callback endpoint alone, callbacks matched" "error (see go test output)" "≥ 5,000 callbacks/s" "$cmd" miss
fi

# --- 5. the real binaries end to end ----------------------------------------
# e2e_run WORKERS ROWS WORKER_FLAGS SANDBOX_FLAGS: prints completed rows/s
# from the start of enqueue to the run being done (enqueue -wait).
e2e_run() {
	local nw=$1 n=$2 wflags=$3 sflags=$4
	start_redis
	# shellcheck disable=SC2086
	start_sandbox $sflags
	for _ in $(seq "$nw"); do
		# shellcheck disable=SC2086
		start_worker $wflags
	done
	[[ -f "$tmp/e2e-$n.jsonl" ]] || gen "$n" "$tmp/e2e-$n.jsonl"
	local t0 t1
	t0=$(date +%s.%N)
	timeout 600 "$tmp/bin/enqueue" -redis "$REDIS_URL" -type imageannotation -project demo -wait -json \
		-callback-url "http://${WORKERS[0]}/callback" "$tmp/e2e-$n.jsonl" >"$tmp/e2e.json" 2>"$tmp/e2e.log"
	t1=$(date +%s.%N)
	local done
	done=$(tail -1 "$tmp/e2e.json" | jq -r '.completed // 0')
	stop_stack
	[[ "$done" == "$n" ]] || { echo "error: $done of $n completed"; return; }
	python3 -c "import sys; print(f'{int(sys.argv[1])/(float(sys.argv[3])-float(sys.argv[2])):.0f}')" "$n" "$t0" "$t1"
}
# e2e_median WORKERS ROWS WORKER_FLAGS SANDBOX_FLAGS: the median of
# E2E_RUNS e2e_runs, each on a fresh stack (one run moves by ±10 % with
# this machine's load), or the first error.
e2e_median() {
	local runs=() r
	for _ in $(seq "$E2E_RUNS"); do
		r=$(e2e_run "$@")
		[[ "$r" == error* ]] && { echo "$r"; return; }
		log "  one run: $r rows/s"
		runs+=("$r")
	done
	printf '%s\n' "${runs[@]}" | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2)}'
}
for nw in 1 3; do
	log "real binaries: $nw worker(s), $E2E_ROWS rows, no limit, 0 latency, median of $E2E_RUNS runs"
	r=$(e2e_median "$nw" "$E2E_ROWS" "-rate-limit 0 -concurrency 50" "-complete-after 0")
	cmd="sandbox -complete-after 0; $nw× worker -rate-limit 0 -concurrency 50; enqueue -wait $(fmt "$E2E_ROWS") rows; median of $E2E_RUNS runs"
	if [[ "$r" == error* ]]; then
		row "real binaries end to end, $nw worker process(es)" "$r" "≥ 3,000 rows/s" "$cmd" miss
	else
		row "real binaries end to end (enqueue start → run done), $nw worker process(es)" "$(fmt "$r") rows/s" "≥ 3,000 rows/s" "$cmd" "$(check "$r" '>=' 3000)"
	fi
done
log "real binaries: 1 worker, concurrency 200, 100 ms latency"
r=$(e2e_median 1 "$E2E_ROWS" "-rate-limit 0 -concurrency 200" "-complete-after 0 -latency 100ms")
cmd="sandbox -complete-after 0 -latency 100ms; worker -rate-limit 0 -concurrency 200; enqueue -wait $(fmt "$E2E_ROWS") rows; median of $E2E_RUNS runs"
if [[ "$r" == error* ]]; then
	row "real binaries, 100 ms API latency, concurrency 200" "$r" "≥ 1,500 rows/s" "$cmd" miss
else
	row "real binaries, 100 ms API latency, concurrency 200" "$(fmt "$r") rows/s" "≥ 1,500 rows/s" "$cmd" "$(check "$r" '>=' 1500)"
fi

# --- 6. Redis memory per queued row -----------------------------------------
[[ -f "$tmp/mem.jsonl" ]] || gen "$MEM_ROWS" "$tmp/mem.jsonl"
for conf in default listpack1024; do
	log "Redis memory per queued row ($conf, $MEM_ROWS rows)"
	if [[ $conf == default ]]; then start_redis; else start_redis --hash-max-listpack-value 1024; fi
	before=$(redis-cli -p "$REDIS_PORT" info memory | awk -F: '/^used_memory:/ { print $2+0 }')
	"$tmp/bin/enqueue" -redis "$REDIS_URL" -type imageannotation -project demo -json \
		-callback-url http://127.0.0.1:9/callback "$tmp/mem.jsonl" >"$tmp/mem.json" 2>"$tmp/mem.log"
	after=$(redis-cli -p "$REDIS_PORT" info memory | awk -F: '/^used_memory:/ { print $2+0 }')
	n=$(tail -1 "$tmp/mem.json" | jq -r '.enqueued // 0')
	stop_stack
	label="Redis memory per queued row (asynq task + job record + run row list)"
	[[ $conf == listpack1024 ]] && label="$label, hash-max-listpack-value 1024"
	cmd="used_memory after − before enqueue of $(fmt "$MEM_ROWS") rows, no worker"
	if [[ "$n" -gt 0 ]]; then
		row "$label" "$(fmt "$(python3 -c "import sys; print((int(sys.argv[2])-int(sys.argv[1]))/int(sys.argv[3]))" "$before" "$after" "$n")") B/row" "(reference: asynq alone ≈ 820 B/task)" "$cmd"
	else
		row "$label" "error: $(tail -1 "$tmp/mem.log")" "—" "$cmd" miss
	fi
done

# --- 7. 3 worker processes, -rate-limit 100, sandbox limited to 100/s -------
log "shared rate limit: 3 workers × -rate-limit 100 vs sandbox -rate-limit 100, $RL_ROWS rows"
start_redis
start_sandbox -rate-limit 100 -no-auto-complete
gen "$RL_ROWS" "$tmp/rl.jsonl"
"$tmp/bin/enqueue" -redis "$REDIS_URL" -type imageannotation -project demo -json \
	-callback-url http://127.0.0.1:9/callback "$tmp/rl.jsonl" >/dev/null 2>"$tmp/rl.log"
for _ in 1 2 3; do start_worker -rate-limit 100 -rate-burst 1 -concurrency 50; done
# Steady state: from the 10% mark to the 100% mark of tasks created.
t0="" c0=0
deadline=$((SECONDS + 600))
while ((SECONDS < deadline)); do
	c=$(stat tasks_created)
	now=$(date +%s.%N)
	if [[ -z "$t0" && "$c" -ge $((RL_ROWS / 10)) ]]; then t0=$now c0=$c; fi
	if [[ "$c" -ge "$RL_ROWS" ]]; then break; fi
	sleep 0.1
done
t1=$(date +%s.%N) c1=$(stat tasks_created) limited=$(stat rate_limited) maxwin=$(stat max_creates_in_1s)
stop_stack
cmd="sandbox -rate-limit 100 -no-auto-complete; 3× worker -rate-limit 100 -rate-burst 1 -concurrency 50; $(fmt "$RL_ROWS") rows"
if [[ -n "$t0" && "$c1" -ge "$RL_ROWS" ]]; then
	r=$(python3 -c "import sys; print(f'{(int(sys.argv[3])-int(sys.argv[1]))/(float(sys.argv[4])-float(sys.argv[2])):.1f}')" "$c0" "$t0" "$c1" "$t1")
	row "3 workers at -rate-limit 100 vs API limit 100/s: achieved" "$r creates/s" "≥ 97/s" "$cmd" "$(check "$r" '>=' 97)"
	row "3 workers at -rate-limit 100 vs API limit 100/s: 429s" "$limited (most creates in 1 s: $maxwin)" "0" "$cmd" "$(check "$limited" '<=' 0)"
else
	row "3 workers at -rate-limit 100 vs API limit 100/s" "error: $c1 of $RL_ROWS created" "≥ 97/s, 0 × 429" "$cmd" miss
fi

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
cat <<EOF
## Performance

Measured $date_utc on $cpus cores ($cpu_model), $ram RAM; $(go version | cut -d' ' -f3), $(redis-server --version | cut -d' ' -f3 | tr -d v=); load average $load_start at the start, $load_end at the end. Reproduce with \`bench/run.sh\`; ✅ met, ❌ missed.

| Measure | Figure | Target | Command |
|---|---|---|---|
EOF
printf '%s\n' "${rows[@]}"
exit "$missed"
