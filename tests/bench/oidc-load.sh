#!/usr/bin/env bash
# Load test of the OpenID provider: the release binary as its own process, driven by wrk.
#   tests/bench/oidc-load.sh [sqlite|postgres] [seconds per run]
# Sign-in steps are prepared in advance (one code per exchange, as browsers would have made
# them), then wrk measures code exchanges, refreshes, userinfo and JWKS; nginx serving the same
# JWKS document as a static file is the baseline measured in the same run. Prints the server's
# RSS idle and after load. Only loopback addresses are used.
set -euo pipefail
cd "$(dirname "$0")/../.."
backend=${1:-sqlite}
seconds=${2:-5}
threads=2
connections=32

for tool in wrk nginx python3; do
  command -v "$tool" >/dev/null 2>&1 || missing="${missing:-} $tool"
done
if [ -n "${missing:-}" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${missing/python3/python3} >/dev/null
fi
cargo build --release -q -p stackgate
bin=$PWD/target/release/stackgate

work=$(mktemp -d)
trap 'kill $server_pid 2>/dev/null || true; [ -n "${nginx_prefix:-}" ] && nginx -p "$nginx_prefix" -c nginx.conf -s stop 2>/dev/null || true; [ -n "${pgdb:-}" ] && psql "$pgserver" -qc "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export STACKGATE_DATA_DIR=$work/data STACKGATE_LISTEN=127.0.0.1:$port STACKGATE_ISSUER=http://127.0.0.1:$port STACKGATE_LOG=warn
if [ "$backend" = postgres ]; then
  pgserver=${STACKGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
  pgdb=stackgate_bench_$$
  psql "$pgserver" -qc "CREATE DATABASE $pgdb"
  export STACKGATE_DATABASE_URL=${pgserver%/*}/$pgdb
fi

password='correct horse battery staple'
echo "$password" | "$bin" user add bench --email bench@bench.example --admin --password-stdin >/dev/null
secret=$("$bin" client add bench --name Bench --redirect-uri https://app.bench.example/cb --first-party 2>/dev/null)
"$bin" serve >"$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$server_pid/status"; }
echo "backend: $backend; server RSS idle: $(rss)"

# The sign-in, done once; then codes and refresh tokens made ahead of the timed runs.
wanted=$((seconds * 4500))
python3 tests/bench/prepare.py "http://127.0.0.1:$port" bench "$password" "$secret" "$wanted" "$work" >&2

basic=$(printf 'bench:%s' "$secret" | base64 -w0)
lua() {
  cat >"$work/$1.lua" <<LUA
local items, n = {}, 0
local thread_id, threads = 0, $threads
function setup(thread) thread:set("id", n) n = n + 1 end
function init(args)
  thread_id = id
  for line in io.lines("$work/$2") do items[#items + 1] = line end
  i = thread_id
end
function request()
  i = i + threads
  local item = items[(i % #items) + 1]
  return wrk.format("POST", "/token", {
    ["Authorization"] = "Basic $basic",
    ["Content-Type"] = "application/x-www-form-urlencoded"
  }, string.format("$3", item))
end
LUA
}
lua exchange codes.txt "grant_type=authorization_code&code=%s&redirect_uri=https%%3A%%2F%%2Fapp.bench.example%%2Fcb&code_verifier=$(cat "$work/verifier.txt")"
lua refresh refresh.txt "grant_type=refresh_token&refresh_token=%s"

run() { # name, wrk args...
  local name=$1; shift
  local out; out="$work/$(printf '%s' "$name" | tr -c 'a-z0-9' '_').out"
  wrk -t$threads -c$connections -d${seconds}s --latency "$@" >"$out" 2>&1
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' "$out")
  p50=$(awk '$1 == "50%" {print $2}' "$out")
  p99=$(awk '$1 == "99%" {print $2}' "$out")
  errors=$(awk '/Non-2xx/ {print $5}' "$out")
  printf '%-34s %10s req/s   p50 %-9s p99 %-9s non-2xx %s\n' "$name" "$rps" "$p50" "$p99" "${errors:-0}"
}
url=http://127.0.0.1:$port
run "code exchange (POST /token)" -s "$work/exchange.lua" "$url/token"
run "refresh (POST /token)" -s "$work/refresh.lua" "$url/token"
run "userinfo (GET /userinfo)" -H "Authorization: Bearer $(cat "$work/access.txt")" "$url/userinfo"
run "jwks (GET /jwks.json)" "$url/jwks.json"
echo "server RSS after load: $(rss)"

# Baseline: nginx serving the same JWKS document as a static file.
nginx_prefix=$work/nginx
chmod 755 "$work"
mkdir -p "$nginx_prefix/logs" "$nginx_prefix/html"
curl -s "$url/jwks.json" >"$nginx_prefix/html/jwks.json"
nport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$nginx_prefix/nginx.conf" <<NGINX
worker_processes 2;
pid $nginx_prefix/nginx.pid;
error_log $nginx_prefix/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  server { listen 127.0.0.1:$nport; root $nginx_prefix/html; }
}
NGINX
nginx -p "$nginx_prefix" -c nginx.conf
sleep 0.3
run "baseline: nginx static jwks.json" "http://127.0.0.1:$nport/jwks.json"
