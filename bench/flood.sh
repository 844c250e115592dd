#!/usr/bin/env bash
# Benchmark: a valid key's /auth/check p99 while another client floods /auth/check with
# well-formed wrong keys (every one a cache miss: the checksum holds, the key is not
# stored) from the same address, against the same p99 with no flood, measured in the
# same run on the same server in alternating rounds. The flood address runs into the
# failed-authentication limit (rate_limits.failed_authentications) within its first
# second; after that its requests are answered 429 without a database lookup, while the
# valid key (in the cache) still passes from that address.
# Bounded: ROUNDS x 2 runs of DURATION seconds, plus seeding and warm-up.
#
#   bench/flood.sh                         # 1,000 keys, 3 rounds of 5 s per phase
#   DURATION=3 ROUNDS=1 bench/flood.sh     # quicker
set -euo pipefail
cd "$(dirname "$0")/.."

KEYS=${KEYS:-1000}
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-10}
FLOOD_CONNECTIONS=${FLOOD_CONNECTIONS:-20}

. bench/lib.sh
ensure_wrk

cargo build --release -q -p keyward -p keyward-bench --bins
work=$(mktemp -d)
server=""
flood=""
cleanup() {
  [ -n "$flood" ] && kill "$flood" 2>/dev/null
  [ -n "$server" ] && kill "$server" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

echo "seeding $KEYS keys..." >&2
target/release/keyward-bench --database "sqlite://$work/bench.db" --keys "$KEYS" --sample "$KEYS" \
  --wrong-file "$work/wrong.txt" --wrong 100000 >"$work/keys.txt"

start_server "sqlite://$work/bench.db" "$work/serve.log"
server=$server_pid
addr=$server_addr

export KEYS_FILE="$work/keys.txt"
wrk -t1 -c"$CONNECTIONS" -d2s -s bench/auth_check.lua "$addr" >/dev/null
status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(head -1 "$KEYS_FILE")" "$addr/auth/check")
[ "$status" = 200 ] || { echo "/auth/check answered $status" >&2; exit 1; }

# start_flood SECONDS: wrong keys, every request a new one, in the background.
start_flood() {
  WRONG_FILE="$work/wrong.txt" WRONG_MODE=distinct WRONG_REQUESTS=100000000 \
    wrk -t1 -c"$FLOOD_CONNECTIONS" -d"$1s" -s bench/wrong.lua "$addr" >"$work/flood.out" 2>&1 &
  flood=$!
}

q_p99=0; f_p99=0; q_rps=0; f_rps=0
for round in $(seq "$ROUNDS"); do
  read -r rps p99 < <(measure -s bench/auth_check.lua "$addr")
  printf 'round %d  quiet   /auth/check  %9.0f req/s  p99 %7.2f ms\n' "$round" "$rps" "$p99"
  q_p99=$(awk -v a="$q_p99" -v b="$p99" 'BEGIN {print a + b}'); q_rps=$(awk -v a="$q_rps" -v b="$rps" 'BEGIN {print a + b}')
  start_flood $((DURATION + 2))
  sleep 1
  read -r rps p99 < <(measure -s bench/auth_check.lua "$addr")
  wait "$flood" || true
  flood=""
  flood_rps=$(awk '/^Requests\/sec/ {print $2}' "$work/flood.out")
  printf 'round %d  flooded /auth/check  %9.0f req/s  p99 %7.2f ms  (flood: %s wrong req/s)\n' \
    "$round" "$rps" "$p99" "$flood_rps"
  f_p99=$(awk -v a="$f_p99" -v b="$p99" 'BEGIN {print a + b}'); f_rps=$(awk -v a="$f_rps" -v b="$rps" 'BEGIN {print a + b}')
done

awk -v qp="$q_p99" -v fp="$f_p99" -v qr="$q_rps" -v fr="$f_rps" -v n="$ROUNDS" 'BEGIN {
  printf "\nmean of %d rounds\n", n
  printf "baseline, no flood:  %9.0f req/s  p99 %7.2f ms\n", qr / n, qp / n
  printf "under the flood:     %9.0f req/s  p99 %7.2f ms\n", fr / n, fp / n
  printf "ratio (flooded / quiet): p99 %.2f, throughput %.2f  (target: p99 <= 2.00)\n", fp / qp, fr / qr
}'
echo "what the flood got, and what it cost the database:"
curl -s "$addr/metrics" | grep -E 'keyward_http_responses_total\{route="/auth/check"|keyward_grant_cache_lookups_total|keyward_authentications_total\{result="(unknown|rate_limited)"'
