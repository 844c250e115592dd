#!/usr/bin/env bash
# Benchmark: POST /oauth/token (client_credentials, client_secret_basic, a generated
# kwsa_… secret) against /auth/check with a warm API key on the same server, measured by
# wrk on loopback in the same run with the same connections and client script; then the
# first use of imported bcrypt client secrets against their later uses.
# Bounded: ROUNDS x 2 runs of DURATION seconds, plus CLIENTS x 3 single requests.
#
#   bench/token.sh                              # 2 rounds of 10 s per route, 20 bcrypt clients
#   DURATION=5 ROUNDS=1 CLIENTS=10 bench/token.sh  # quicker
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
CONNECTIONS=${CONNECTIONS:-50}
CLIENTS=${CLIENTS:-20}
COST=${COST:-10}
export DURATION CONNECTIONS

. bench/lib.sh
ensure_wrk

cargo build --release -q -p keyward -p keyward-bench --bins
work=$(mktemp -d)
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# Setup through the real CLI, before the server starts (nothing is cached yet).
db="sqlite://$work/token.db"
kw() { KEYWARD_DATABASE_URL="$db" RUST_LOG=warn target/release/keyward "$@"; }
kw migrate >/dev/null 2>&1
kw org create bench --plan enterprise >/dev/null 2>&1
kw user create bench@example.com --org bench --role admin >/dev/null 2>&1
api_key=$(kw key create --org bench --user bench@example.com --name baseline 2>/dev/null)
secret=$(kw serviceaccount add --org bench --name bench-client --role admin 2>/dev/null)
client_id=$(kw serviceaccount list --org bench --json 2>/dev/null | jq -r '.data[] | select(.name == "bench-client") | .client_id')
basic="Basic $(printf '%s:%s' "$client_id" "$secret" | base64 -w0)"

echo "hashing $CLIENTS imported client secrets with bcrypt (cost $COST)..." >&2
target/release/bcrypt_secrets "$CLIENTS" "$COST" >"$work/legacy.txt" 2>"$work/bcrypt.txt"
bcrypt_ms=$(awk '/ms per hash/ {print $(NF - 3)}' "$work/bcrypt.txt")
while read -r id plain hash; do
  kw serviceaccount import --org bench --client-id "$id" --bcrypt-hash "$hash" --role admin >/dev/null 2>&1
done <"$work/legacy.txt"

start_server "$db" "$work/serve.log"
server=$server_pid
addr=$server_addr

# token_request ID SECRET: one client_credentials request; prints "status seconds".
token_request() {
  curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -u "$1:$2" -d grant_type=client_credentials "$addr/oauth/token"
}
read -r status _ < <(token_request "$client_id" "$secret")
[ "$status" = 200 ] || { echo "/oauth/token answered $status" >&2; exit 1; }
status=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $api_key" "$addr/auth/check")
[ "$status" = 200 ] || { echo "/auth/check answered $status" >&2; exit 1; }

# 1. Imported bcrypt secrets: each client's first use (bcrypt check, then re-hash to the
# fast form) against its second and third (cache hit). Sequential, one request in flight.
: >"$work/first.txt"; : >"$work/later.txt"
while read -r id plain hash; do
  for use in 1 2 3; do
    read -r status seconds < <(token_request "$id" "$plain")
    [ "$status" = 200 ] || { echo "/oauth/token answered $status for imported client $id (use $use)" >&2; exit 1; }
    if [ "$use" = 1 ]; then echo "$seconds" >>"$work/first.txt"; else echo "$seconds" >>"$work/later.txt"; fi
  done
done <"$work/legacy.txt"
median_ms() { sort -g "$1" | awk '{v[NR] = $1 * 1000} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
first_ms=$(median_ms "$work/first.txt")
later_ms=$(median_ms "$work/later.txt")

# 2. Throughput. Warm-up: the connections, the client secret's and the key's cache entries.
export BENCH_AUTH
BENCH_AUTH="$basic" wrk -t1 -c"$CONNECTIONS" -d2s -s bench/token.lua "$addr" >/dev/null
BENCH_AUTH="Bearer $api_key" BENCH_PATH=/auth/check wrk -t1 -c"$CONNECTIONS" -d2s -s bench/token.lua "$addr" >/dev/null

# route NAME AUTH PATH: one measurement; prints "req_per_s p99_ms server_cpu_percent"
# (server CPU time over wall time; 200 % is both cores).
route() {
  local before after start end rps p99
  before=$(cpu_seconds "$server"); start=$(date +%s.%N)
  read -r rps p99 < <(BENCH_AUTH="$2" BENCH_PATH="$3" measure -s bench/token.lua "$addr")
  after=$(cpu_seconds "$server"); end=$(date +%s.%N)
  echo "$rps $p99 $(awk -v a="$before" -v b="$after" -v s="$start" -v e="$end" 'BEGIN {print (b - a) / (e - s) * 100}')"
}
declare -A sum
for k in c_rps c_p99 c_cpu t_rps t_p99 t_cpu; do sum[$k]=0; done
add() { sum[$1]=$(awk -v a="${sum[$1]}" -v b="$2" 'BEGIN {print a + b}'); }
for round in $(seq "$ROUNDS"); do
  read -r rps p99 cpu < <(route check "Bearer $api_key" /auth/check)
  printf 'round %d  /auth/check   %10.0f req/s  p99 %7.2f ms  server CPU %4.0f %%\n' "$round" "$rps" "$p99" "$cpu"
  add c_rps "$rps"; add c_p99 "$p99"; add c_cpu "$cpu"
  read -r rps p99 cpu < <(route token "$basic" /oauth/token)
  printf 'round %d  /oauth/token  %10.0f req/s  p99 %7.2f ms  server CPU %4.0f %%\n' "$round" "$rps" "$p99" "$cpu"
  add t_rps "$rps"; add t_p99 "$p99"; add t_cpu "$cpu"
done
tokens=$(sqlite3 "$work/token.db" "SELECT count(*) FROM oauth_tokens" 2>/dev/null || echo "?")

awk -v cr="${sum[c_rps]}" -v cp="${sum[c_p99]}" -v cc="${sum[c_cpu]}" -v tr="${sum[t_rps]}" -v tp="${sum[t_p99]}" \
  -v tc="${sum[t_cpu]}" -v n="$ROUNDS" -v c="$CONNECTIONS" -v rows="$tokens" 'BEGIN {
  printf "\nclient_credentials throughput: %d connections, mean of %d rounds; both routes get the same POST (same body, one Authorization header)\n", c, n
  printf "baseline /auth/check (Bearer API key, warm):         %10.0f req/s  p99 %7.2f ms  server CPU %4.0f %%\n", cr / n, cp / n, cc / n
  printf "token    /oauth/token (client_secret_basic, kwsa_):  %10.0f req/s  p99 %7.2f ms  server CPU %4.0f %%\n", tr / n, tp / n, tc / n
  printf "ratio (token / auth-check): throughput %.3f, p99 %.1f\n", tr / cr, tp / cp
  printf "note: a WRITE-path benchmark - every token request inserts one row (the token, stored hashed) as one INSERT, no transaction (%s token rows at the end); /auth/check writes nothing\n", rows
}'
awk -v f="$first_ms" -v l="$later_ms" -v b="$bcrypt_ms" -v n="$CLIENTS" -v cost="$COST" 'BEGIN {
  printf "\nimported bcrypt client secrets ($2b$%02d$, %d clients, one request at a time):\n", cost, n
  printf "first use  (bcrypt check + re-hash to the fast form + token): median %8.2f ms\n", f
  printf "later uses (2nd and 3rd: cache hit + token):                  median %8.2f ms\n", l
  printf "ratio first / later: %.1f\n", f / l
  printf "one bcrypt hash at cost %d on this machine (bcrypt_secrets, same run): %.2f ms; first use = %.1f of them\n", cost, b, f / b
}'
