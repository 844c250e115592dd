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
ROUNDS=${ROUNDS:-8}
# Server on core 0, load generator on core 1 (when there are two): p99 on a shared pair of
# cores is mostly scheduling noise, which hides a 10 % difference between sizes.
if [ "$(nproc)" -ge 2 ]; then
  export SERVER_CPUS=${SERVER_CPUS-0} CLIENT_CPUS=${CLIENT_CPUS-1}
fi
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

declare -A rps p99 p99s
for n in $SIZES; do rps[$n]=0; p99[$n]=0; p99s[$n]=""; done
reversed=$(echo "$SIZES" | tr ' ' '\n' | tac | tr '\n' ' ')
for round in $(seq "$ROUNDS"); do
  # Alternate the order, so that no size is always measured first (or right after the
  # same neighbour) in a round.
  order=$SIZES
  [ $((round % 2)) -eq 0 ] && order=$reversed
  for n in $order; do
    read -r r p < <(KEYS_FILE="$work/$n.keys" BENCH_PATH=/auth/check measure -s bench/auth_check.lua "${addr[$n]}")
    printf 'round %d  %8d keys  %9.0f req/s  p99 %6.2f ms\n' "$round" "$n" "$r" "$p"
    rps[$n]=$(awk -v a="${rps[$n]}" -v b="$r" 'BEGIN {print a + b}')
    p99[$n]=$(awk -v a="${p99[$n]}" -v b="$p" 'BEGIN {print a + b}')
    p99s[$n]="${p99s[$n]} $p"
  done
done

# The median of a size's per-round p99s: one round disturbed by the machine (another
# process, a usage flush landing in it) moves a mean but not the median.
median() { echo "$@" | tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

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
  'BEGIN {printf "p99 growth from %d to %d keys, mean of rounds:   %+.1f%%\n", f, l, (b / a - 1) * 100}'
awk -v a="$(median ${p99s[$first]})" -v b="$(median ${p99s[$last]})" -v f="$first" -v l="$last" \
  'BEGIN {printf "p99 growth from %d to %d keys, median of rounds: %+.1f%% (%.2f -> %.2f ms; target: at most +10%%)\n", f, l, (b / a - 1) * 100, a, b}'

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
