#!/usr/bin/env bash
# Smoke test of the README's quick start: runs the quick-start command exactly
# as the README shows it (everything in process: miniredis, the API sandbox in
# test mode, a worker), then the deliberately broken example. Checks exit
# codes, that the results file has one line per valid row and that the
# rejects file lists the invalid ones. Needs only Go; no Redis, no network,
# no key. Removes the files it generated. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

deadline=60
started=$SECONDS
tmp=$(mktemp -d)
generated=(examples/street-scenes.csv.results.jsonl examples/street-scenes.csv.rejects.jsonl
  examples/broken.csv.results.jsonl examples/broken.csv.rejects.jsonl)
cleanup() { rm -rf "$tmp"; rm -f "${generated[@]}"; }
trap cleanup EXIT
rm -f "${generated[@]}"

fail() { echo "smoke-quickstart: FAIL: $*" >&2; exit 1; }
# lines FILE: its line count (0 when it does not exist).
lines() { if [ -f "$1" ]; then wc -l <"$1" | tr -d ' '; else echo 0; fi; }

# 1. The README's quick-start command, verbatim.
echo "== quick start: go run ./cmd/enqueue -dev ... examples/street-scenes.csv"
set +e
timeout "$deadline" go run ./cmd/enqueue -dev -type imageannotation -project demo \
  -params examples/street-scenes.params.json examples/street-scenes.csv >"$tmp/out" 2>"$tmp/err"
code=$?
set -e
cat "$tmp/out"
[ "$code" -eq 0 ] || { tail -20 "$tmp/err" >&2; fail "quick start exited $code, want 0"; }
rows=$(($(lines examples/street-scenes.csv) - 1))
results=$(lines examples/street-scenes.csv.results.jsonl)
[ "$results" -eq "$rows" ] || fail "results file has $results lines, want $rows (one per row)"
completed=$(grep -c '"state":"completed"' examples/street-scenes.csv.results.jsonl || true)
[ "$completed" -eq "$rows" ] || fail "$completed of $rows rows completed"
grep -q "results: examples/street-scenes.csv.results.jsonl" "$tmp/out" || fail "the summary does not print the results path"
for field in rows valid invalid submitted completed failed elapsed; do
  grep -qE "^ +$field +" "$tmp/out" || fail "the summary table lacks '$field'"
done
[ ! -e examples/street-scenes.csv.rejects.jsonl ] || fail "a rejects file was written for a valid dataset"

# 2. The broken example: valid rows go through, invalid ones land in the
# rejects file, exit code 3. `go run` turns a child's non-zero exit into 1,
# so this one runs the built binary to see the real code.
echo "== broken example: enqueue -dev examples/broken.csv (expect exit 3 and a rejects file)"
go build -o "$tmp/enqueue" ./cmd/enqueue
set +e
timeout "$((deadline - (SECONDS - started)))" "$tmp/enqueue" -dev -type imageannotation -project demo \
  examples/broken.csv >"$tmp/out" 2>"$tmp/err"
code=$?
set -e
cat "$tmp/out"
[ "$code" -eq 3 ] || { tail -20 "$tmp/err" >&2; fail "broken example exited $code, want 3"; }
[ -s examples/broken.csv.rejects.jsonl ] || fail "no rejects file for the broken example"
rows=$(($(lines examples/broken.csv) - 1))
rejects=$(lines examples/broken.csv.rejects.jsonl)
results=$(lines examples/broken.csv.results.jsonl)
[ "$rejects" -gt 0 ] && [ "$results" -gt 0 ] || fail "want both valid and rejected rows, got $results results, $rejects rejects"
[ $((results + rejects)) -eq "$rows" ] || fail "$results results + $rejects rejects != $rows rows"
grep -q '"line":' examples/broken.csv.rejects.jsonl || fail "rejects lack the line number"
completed=$(grep -c '"state":"completed"' examples/broken.csv.results.jsonl || true)
[ "$completed" -eq "$results" ] || fail "$completed of $results valid broken.csv rows completed"

elapsed=$((SECONDS - started))
[ "$elapsed" -lt "$deadline" ] || fail "took ${elapsed}s, want < ${deadline}s"
echo "smoke-quickstart: OK (${elapsed}s)"
