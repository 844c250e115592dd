#!/usr/bin/env bash
# Benchmark: one upstream reached three ways in the same run, measured by wrk on
# loopback with the same client script (and so the same request headers) each time:
#
#   direct   wrk → upstream
#   gateway  wrk → keyward's gateway (authenticates every request: Bearer key,
#            rotating over SAMPLE keys) → upstream
#   nginx    wrk → nginx proxy_pass (no authentication) → upstream
#
# The upstream is nginx answering a small static response (`return 200`), fast and
# neutral. The proxying nginx uses what a production deployment would: HTTP/1.1 with a
# keep-alive pool to the upstream, worker_processes auto. keyward keeps its own pool.
# Prints throughput and p99 for each and the gateway/nginx ratio. Bounded: ROUNDS x 3
# runs of DURATION seconds, plus warm-ups.
#
#   bench/gateway.sh                           # 3 rounds of 10 s per target
#   DURATION=5 ROUNDS=1 bench/gateway.sh       # quicker
set -euo pipefail
cd "$(dirname "$0")/.."

KEYS=${KEYS:-1000}
SAMPLE=${SAMPLE:-1000}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-50}

. bench/lib.sh
ensure_wrk
if [ ! -x /usr/sbin/nginx ]; then
  echo "installing nginx (Debian package)" >&2
  apt-get install -y -qq nginx >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq nginx; }
fi

cargo build --release -q -p keyward -p keyward-bench --bins
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
upstream_port=$(free_port)
proxy_port=$(free_port)
gateway_port=$(free_port)

# An nginx of our own: prefix, pid, logs and temp files in $work; foreground, so the
# PID we hold is the master's and killing it stops its workers.
start_nginx() { # name, http { } body
  local dir="$work/$1"
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<EOF
daemon off;
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/body; proxy_temp_path $dir/proxy; fastcgi_temp_path $dir/fcgi;
  uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
  keepalive_requests 1000000;
  $2
}
EOF
  /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" &
  pids+=($!)
}

start_nginx upstream "
  server {
    listen 127.0.0.1:$upstream_port;
    location / { default_type application/json; return 200 '{\"ok\":true}'; }
  }"
start_nginx proxy "
  upstream app { server 127.0.0.1:$upstream_port; keepalive 256; }
  server {
    listen 127.0.0.1:$proxy_port;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
    }
  }"

echo "seeding $KEYS keys..." >&2
target/release/keyward-bench --database "sqlite://$work/bench.db" --keys "$KEYS" --sample "$SAMPLE" >"$work/keys.txt"

KEYWARD_DATABASE_URL="sqlite://$work/bench.db" KEYWARD_LISTEN=127.0.0.1:0 RUST_LOG=warn \
  KEYWARD_GATEWAY__LISTEN="127.0.0.1:$gateway_port" KEYWARD_GATEWAY__UPSTREAM="http://127.0.0.1:$upstream_port" \
  target/release/keyward serve 2>"$work/serve.log" &
pids+=($!)

wait_for() { # url, expected status
  for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(head -1 "$work/keys.txt")" "$1")" = "$2" ] && return 0
    sleep 0.1
  done
  echo "$1 never answered $2" >&2
  cat "$work/serve.log" "$work"/*/error.log >&2 || true
  exit 1
}
direct="http://127.0.0.1:$upstream_port"
gateway="http://127.0.0.1:$gateway_port"
proxy="http://127.0.0.1:$proxy_port"
wait_for "$direct/" 200
wait_for "$proxy/" 200
wait_for "$gateway/" 200
# The gateway really authenticates: no key, no answer from the upstream.
[ "$(curl -s -o /dev/null -w '%{http_code}' "$gateway/")" = 401 ] || { echo "the gateway let an anonymous request through" >&2; exit 1; }

export KEYS_FILE="$work/keys.txt" BENCH_PATH=/
# Warm-up: connections, pools and every sampled key through the grant cache.
for url in "$direct" "$gateway" "$proxy"; do
  wrk -t1 -c"$CONNECTIONS" -d2s -s bench/auth_check.lua "$url" >/dev/null
done

declare -A rps_sum=() p99_sum=()
for round in $(seq "$ROUNDS"); do
  for target in direct gateway nginx; do
    case $target in direct) url=$direct ;; gateway) url=$gateway ;; nginx) url=$proxy ;; esac
    read -r rps p99 < <(measure -s bench/auth_check.lua "$url")
    printf 'round %d  %-8s %10.0f req/s  p99 %7.2f ms\n' "$round" "$target" "$rps" "$p99"
    rps_sum[$target]=$(awk -v a="${rps_sum[$target]:-0}" -v b="$rps" 'BEGIN {print a + b}')
    p99_sum[$target]=$(awk -v a="${p99_sum[$target]:-0}" -v b="$p99" 'BEGIN {print a + b}')
  done
done

awk -v n="$ROUNDS" -v c="$CONNECTIONS" \
  -v dr="${rps_sum[direct]}" -v dp="${p99_sum[direct]}" \
  -v gr="${rps_sum[gateway]}" -v gp="${p99_sum[gateway]}" \
  -v nr="${rps_sum[nginx]}" -v np="${p99_sum[nginx]}" 'BEGIN {
  printf "\nmean of %d rounds, %d connections, %d cores\n", n, c, '"$(nproc)"'
  printf "direct            %10.0f req/s  p99 %7.2f ms\n", dr / n, dp / n
  printf "keyward gateway   %10.0f req/s  p99 %7.2f ms   (Bearer key checked on every request)\n", gr / n, gp / n
  printf "nginx proxy_pass  %10.0f req/s  p99 %7.2f ms   (no authentication)\n", nr / n, np / n
  printf "gateway / nginx: throughput %.2f, p99 %.2f  (target: throughput >= 1.00)\n", gr / nr, gp / np
}'
