#!/usr/bin/env bash
# Scale benchmark: /auth/check (Bearer, warm cache) with 1,000, 100,000 and 1,000,000
# keys stored. The three servers run side by side and are measured in interleaved
# rounds, so machine noise does not favour one size. Prints throughput, p99 and
# resident memory per size, the p99 growth from the smallest to the largest, and how
# many database queries 10,000 requests with wrong keys cause (three kinds of wrong).
#
#   bench/scale.sh                                    # ~10 min, mostly seeding 1M keys
#   SIZES="1000 100000" DURATION=5 bench/scale.sh     # quicker
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

SIZES=${SIZES:-"1000 100000 1000000"}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
export CONNECTIONS=${CONNECTIONS:-50} DURATION

ensure_wrk
cargo build --release -q -p keyward -p keyward-bench --bins
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

declare -A addr pid
for n in $SIZES; do
  echo "seeding $n keys..." >&2
  target/release/keyward-bench --database "sqlite://$work/$n.db" --keys "$n" --sample 1000 \
    --wrong-file "$work/wrong.txt" >"$work/$n.keys"
done
for n in $SIZES; do
  start_server "sqlite://$work/$n.db" "$work/$n.log"
  pids+=("$server_pid"); pid[$n]=$server_pid; addr[$n]=$server_addr
  KEYS_FILE="$work/$n.keys" wrk -t1 -c"$CONNECTIONS" -d2s -s bench/auth_check.lua "${addr[$n]}" >/dev/null
done

declare -A rps p99
for n in $SIZES; do rps[$n]=0; p99[$n]=0; done
for round in $(seq "$ROUNDS"); do
  for n in $SIZES; do
    read -r r p < <(KEYS_FILE="$work/$n.keys" BENCH_PATH=/auth/check measure -s bench/auth_check.lua "${addr[$n]}")
    printf 'round %d  %8d keys  %9.0f req/s  p99 %6.2f ms\n' "$round" "$n" "$r" "$p"
    rps[$n]=$(awk -v a="${rps[$n]}" -v b="$r" 'BEGIN {print a + b}')
    p99[$n]=$(awk -v a="${p99[$n]}" -v b="$p" 'BEGIN {print a + b}')
  done
done

echo
printf '%10s  %12s  %10s  %10s\n' "keys" "req/s" "p99 ms" "RSS MiB"
first=""; last=""
for n in $SIZES; do
  rss=$(awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/${pid[$n]}/status")
  printf '%10d  %12.0f  %10.2f  %10s\n' "$n" "$(awk -v v="${rps[$n]}" -v r="$ROUNDS" 'BEGIN {print v / r}')" \
    "$(awk -v v="${p99[$n]}" -v r="$ROUNDS" 'BEGIN {print v / r}')" "$rss"
  [ -z "$first" ] && first=$n
  last=$n
done
awk -v a="${p99[$first]}" -v b="${p99[$last]}" -v f="$first" -v l="$last" \
  'BEGIN {printf "p99 growth from %d to %d keys: %+.1f%% (target: at most +10%%)\n", f, l, (b / a - 1) * 100}'

echo
echo "database queries caused by wrong keys (server with $last keys):"
for mode in distinct repeat typo; do
  before=$(metric "${addr[$last]}" 'keyward_grant_cache_lookups_total{outcome="miss"}')
  out=$(WRONG_FILE="$work/wrong.txt" WRONG_MODE=$mode WRONG_REQUESTS=10000 \
    wrk -t1 -c10 -d60s -s bench/wrong.lua "${addr[$last]}")
  sent=$(echo "$out" | awk '/requests in/ {print $1}')
  after=$(metric "${addr[$last]}" 'keyward_grant_cache_lookups_total{outcome="miss"}')
  printf '  %-8s %6d requests -> %6d database queries (%.3f per request)\n' "$mode" "$sent" "$((after - before))" \
    "$(awk -v q="$((after - before))" -v s="$sent" 'BEGIN {print q / s}')"
done
