#!/usr/bin/env bash
# API load bench: GET and POST of workspace secrets against a release `cadenza serve`, on SQLite
# and (when reachable) PostgreSQL, with wrk on the same machine. Loopback only, bounded in time.
#
#   benches/api_load.sh [duration_seconds=10] [connections=32]
#
# Needs wrk (Debian package `wrk`; installed on demand when running as root).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
CONNS="${2:-32}"
THREADS=2
TOKEN="cdz_sk_bench-admin-token-0123456789abcdefghijkl"
PG_ADMIN="${CADENZA_BENCH_PG:-postgres://postgres@127.0.0.1:5432/postgres}"

command -v wrk >/dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; }
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)"; exit 1; }
# CADENZA_BIN runs another build (an earlier commit's, say) under the same load.
if [ -z "${CADENZA_BIN:-}" ]; then
  cargo build --release --locked -p cadenza-server --bin cadenza >/dev/null
fi
BIN="${CADENZA_BIN:-$PWD/target/release/cadenza}"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

cat > "$WORK/post.lua" <<'LUA'
local counter = 0
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
function request()
  counter = counter + 1
  local body = string.format('{"metadata":{"name":"BENCH_%d_%d"},"spec":{"value":"v-%d"}}', tid, counter, counter)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. os.getenv("TOKEN")}, body)
end
LUA

run_backend() {
  local name="$1" url="$2" port="$3"
  local data="$WORK/$name"
  mkdir -p "$data"
  CADENZA_LISTEN="127.0.0.1:$port" CADENZA_DATA_DIR="$data" CADENZA_DATABASE_URL="$url" \
    CADENZA_SECRET_KEY="$(head -c 32 /dev/urandom | base64)" CADENZA_BOOTSTRAP_API_KEY="$TOKEN" \
    CADENZA_LOG_LEVEL=warn "$BIN" serve >"$data/out.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do curl -sf "127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  local base="http://127.0.0.1:$port/v1/workspaces/external_id:default/workspace_secrets"
  local id
  id=$(curl -sf "$base" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d '{"metadata":{"name":"READ_ME"},"spec":{"value":"x"}}' | sed -E 's/.*"id":"(wsecret_[^"]+)".*/\1/')
  echo "== $name: GET $base/<id>  (${DURATION}s, $CONNS connections, $THREADS threads)"
  wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -H "Authorization: Bearer $TOKEN" "$base/$id" | grep -E "Requests/sec|Latency|50%|90%|99%|Non-2xx|Socket"
  echo "== $name: POST $base"
  TOKEN="$TOKEN" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s "$WORK/post.lua" "$base" | grep -E "Requests/sec|Latency|50%|90%|99%|Non-2xx|Socket"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

run_backend sqlite "sqlite://$WORK/sqlite/cadenza.db" 18081
[ "${CADENZA_BENCH_SQLITE_ONLY:-}" = 1 ] && exit 0
if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  db="cadenza_bench_$$"
  psql "$PG_ADMIN" -qc "CREATE DATABASE $db" >/dev/null
  run_backend postgres "${PG_ADMIN%/*}/$db" 18082
  psql "$PG_ADMIN" -qc "DROP DATABASE $db WITH (FORCE)" >/dev/null
else
  echo "== postgres: SKIPPED (127.0.0.1:5432 unreachable)"
fi
