# Shared by the benchmark scripts: sourced, not run.

# wrk from Debian's packages, installed when missing.
ensure_wrk() {
  if ! command -v wrk >/dev/null; then
    echo "installing wrk (Debian package)" >&2
    apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }
  fi
}

# start_server DB_URL LOG: starts the release server on a free port; sets $server_pid
# and $server_addr. The caller kills $server_pid (its own child) when done.
# pinned CPUS: `taskset -c CPUS` when CPUS is set (and taskset exists), else nothing, so
# a script may keep the server and the load generator on cores of their own.
pinned() {
  if [ -n "${1:-}" ] && command -v taskset >/dev/null; then echo "taskset -c $1"; fi
}

start_server() {
  KEYWARD_DATABASE_URL="$1" KEYWARD_LISTEN=127.0.0.1:0 RUST_LOG=warn $(pinned "${SERVER_CPUS:-}") target/release/keyward serve 2>"$2" &
  server_pid=$!
  server_addr=""
  for _ in $(seq 300); do
    server_addr=$(sed -n 's/^keyward listening on //p' "$2")
    [ -n "$server_addr" ] && return 0
    sleep 0.1
  done
  cat "$2" >&2
  return 1
}

# measure WRK_ARGS...: runs wrk for $DURATION seconds; prints "req_per_s p99_ms".
measure() {
  local out rps p99 unit
  out=$($(pinned "${CLIENT_CPUS:-}") wrk -t1 -c"${CONNECTIONS:-50}" -d"${DURATION:-10}s" --latency "$@")
  if echo "$out" | grep -q "Non-2xx"; then echo "$out" >&2; echo "non-2xx answers" >&2; exit 1; fi
  rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  unit=$(echo "$p99" | sed 's/[0-9.]*//')
  p99=$(echo "$p99" | sed 's/[a-z]*$//')
  case "$unit" in us) p99=$(awk -v v="$p99" 'BEGIN {print v / 1000}') ;; s) p99=$(awk -v v="$p99" 'BEGIN {print v * 1000}') ;; esac
  echo "$rps $p99"
}

# metric ADDR SERIES: the value of one Prometheus series line.
metric() {
  curl -s "$1/metrics" | awk -v s="$2" '$1 == s {print $2}'
}

# cpu_seconds PID: user + system CPU time the process has used so far, in seconds.
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}
