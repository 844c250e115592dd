#!/usr/bin/env bash
# Benchmark: /auth/check (Bearer, warm cache) against /health, the server's cheapest
# route, measured by wrk on loopback in the same run, with KEYS keys in the store.
# Prints throughput and p99 for each and the ratio. Bounded: ROUNDS x 2 runs of
# DURATION seconds, plus seeding.
#
#   bench/run.sh                       # 100,000 keys, 2 rounds of 10 s per route
#   KEYS=1000 DURATION=5 bench/run.sh  # quicker
set -euo pipefail
cd "$(dirname "$0")/.."

KEYS=${KEYS:-100000}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
CONNECTIONS=${CONNECTIONS:-50}

. bench/lib.sh
ensure_wrk

cargo build --release -q -p keyward -p keyward-bench --bins
work=$(mktemp -d)
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

echo "seeding $KEYS keys..." >&2
target/release/keyward-bench --database "sqlite://$work/bench.db" --keys "$KEYS" --sample 1000 >"$work/keys.txt"

start_server "sqlite://$work/bench.db" "$work/serve.log"
server=$server_pid
addr=$server_addr

export KEYS_FILE="$work/keys.txt"
# Warm-up: every sampled key once through the cache, and the connections.
wrk -t1 -c"$CONNECTIONS" -d2s -s bench/auth_check.lua "$addr" >/dev/null
BENCH_PATH=/health wrk -t1 -c"$CONNECTIONS" -d2s -s bench/auth_check.lua "$addr" >/dev/null
status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(head -1 "$KEYS_FILE")" "$addr/auth/check")
[ "$status" = 200 ] || { echo "/auth/check answered $status" >&2; exit 1; }

h_rps=0; h_p99=0; c_rps=0; c_p99=0
for round in $(seq "$ROUNDS"); do
  read -r rps p99 < <(BENCH_PATH=/health measure -s bench/auth_check.lua "$addr")
  printf 'round %d  /health      %10.0f req/s  p99 %7.2f ms\n' "$round" "$rps" "$p99"
  h_rps=$(awk -v a="$h_rps" -v b="$rps" 'BEGIN {print a + b}'); h_p99=$(awk -v a="$h_p99" -v b="$p99" 'BEGIN {print a + b}')
  read -r rps p99 < <(BENCH_PATH=/auth/check measure -s bench/auth_check.lua "$addr")
  printf 'round %d  /auth/check  %10.0f req/s  p99 %7.2f ms\n' "$round" "$rps" "$p99"
  c_rps=$(awk -v a="$c_rps" -v b="$rps" 'BEGIN {print a + b}'); c_p99=$(awk -v a="$c_p99" -v b="$p99" 'BEGIN {print a + b}')
done

awk -v hr="$h_rps" -v hp="$h_p99" -v cr="$c_rps" -v cp="$c_p99" -v n="$ROUNDS" -v keys="$KEYS" 'BEGIN {
  printf "\nkeys stored: %d; mean of %d rounds\n", keys, n
  printf "baseline /health:      %10.0f req/s  p99 %7.2f ms\n", hr / n, hp / n
  printf "verify   /auth/check:  %10.0f req/s  p99 %7.2f ms\n", cr / n, cp / n
  printf "ratio (auth/check / health): throughput %.2f, p99 %.2f  (target: throughput >= 0.70)\n", cr / hr, cp / hp
}'
grep -q "keyward_grant_cache_lookups_total" <(curl -s "$addr/metrics") && curl -s "$addr/metrics" | grep -E 'cache_lookups|authentications_total\{result="ok"\}' || true

# The authentication path alone, in process, on the same store and keys.
target/release/auth_micro "sqlite://$work/bench.db" "$KEYS_FILE"
