#!/usr/bin/env bash
# Soak and fault test: the release binary as its own process, on PostgreSQL (default) or SQLite,
# driven by tests/bench/soak.py (sign-ins by password, TOTP and passkey, edge hand-overs, code
# exchanges, refreshes, userinfo, proxied requests, sign-offs with their checks, staff turnover,
# the demo app installed, used and uninstalled), for a bounded time. Prints throughput, p50/p99
# per operation and the server's RSS over time, and fails on any security or durability
# violation, on a failure outside a fault window, or on RSS growing through the run.
#   tests/bench/soak.sh [seconds] [fault] [postgres|sqlite]
# SOAK_USERS (12) virtual users, of whom SOAK_PASSKEY_USERS (2) sign in with a passkey and
# SOAK_TOTP_USERS (2) with TOTP; SOAK_APPS=0 leaves out the app installs.
# fault (injected at a third of the run):
#   none              just the load
#   postgres-restart  PostgreSQL restarted: requests fail with 503 meanwhile and recover alone
#   sigkill           Stackgate killed with SIGKILL and started again: nothing acknowledged lost,
#                     no code redeemable twice
#   disk-full         (SQLite, as root) the data directory's file system fills up for 15 s:
#                     writes fail with 503 meanwhile, then recover; the database stays intact
# On SQLite the database's integrity is checked at the end, whatever the fault.
# Every sign-off also notifies a relying party that never answers (back-channel logout) and the
# proxied app shares the edge with a route to an upstream that never answers: neither may slow
# the rest down or pile up memory.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-300}
fault=${2:-none}
backend=${3:-postgres}
users=${SOAK_USERS:-12}
case $fault in none|postgres-restart|sigkill|disk-full) ;; *) echo "unknown fault: $fault" >&2; exit 64 ;; esac
case $backend in postgres|sqlite) ;; *) echo "unknown backend: $backend" >&2; exit 64 ;; esac
if [ "$fault" = postgres-restart ] && [ "$backend" != postgres ]; then
  echo "postgres-restart needs the postgres backend" >&2; exit 64
fi
if [ "$fault" = disk-full ] && { [ "$backend" != sqlite ] || [ "$(id -u)" != 0 ]; }; then
  echo "disk-full needs the sqlite backend and root (it mounts a small tmpfs for the data)" >&2; exit 64
fi

for tool in nginx python3 curl; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing="${missing:-} $tool"
done
# The driver's passkeys are P-256 keys made and used by python3-cryptography.
python3 -c 'import cryptography' 2>/dev/null || missing="${missing:-} python3-cryptography"
if [ -n "${missing:-}" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
nginx=$(command -v nginx || echo /usr/sbin/nginx)
cargo build --release -q -p stackgate
# The real path: apps are started by the binary's own (resolved) path, which pgrep matches below.
bin=$(realpath target/release/stackgate)

work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up=$(free_port); web=$(free_port); edge=$(free_port); hang=$(free_port)
cleanup() {
  kill "$(cat "$work/pid" 2>/dev/null)" ${nginx_pid:-} ${hang_pid:-} 2>/dev/null || true
  sleep 0.5
  mountpoint -q "$work/data" 2>/dev/null && umount "$work/data"
  [ -n "${pgdb:-}" ] && psql "$pgserver" -qc "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
if [ "$fault" = disk-full ]; then
  mkdir -p "$work/data"
  mount -t tmpfs -o size=256m,mode=0700 tmpfs "$work/data"
fi

# The app behind the edge: nginx serving a 1 KiB page.
mkdir -p "$work/nginx" "$work/www"
head -c 1024 /dev/zero | tr '\0' 'x' >"$work/www/index.html"
chmod 755 "$work" "$work/www" && chmod 644 "$work/www/index.html"
cat >"$work/nginx/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log stderr error;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server { listen 127.0.0.1:$up; root $work/www; }
}
NGINX
"$nginx" -p "$work/nginx" -c nginx.conf &
nginx_pid=$!
# A peer that accepts connections and never answers: the back-channel logout endpoint of one
# relying party, and the upstream of one route.
python3 - "$hang" <<'PY' &
import collections, resource, socket, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1024)
held = collections.deque()
while True:
    c, _ = s.accept(); held.append((time.monotonic(), c))
    # Long after every timeout of Stackgate's has fired, let go (file descriptors are finite).
    while held and held[0][0] < time.monotonic() - 30:
        held.popleft()[1].close()
PY
hang_pid=$!

cat >"$work/stackgate.toml" <<TOML
[[proxy_route]]
host = "soak.localhost"
upstream = "http://127.0.0.1:$up"
app = "soak"
groups = ["staff"]

[[proxy_route]]
host = "stuck.localhost"
upstream = "http://127.0.0.1:$hang"
app = "stuck"
groups = ["staff"]
public_paths = ["/"]
TOML
export STACKGATE_CONFIG=$work/stackgate.toml STACKGATE_DATA_DIR=$work/data STACKGATE_LISTEN=127.0.0.1:$web \
  STACKGATE_ISSUER=http://localhost:$web STACKGATE_PROXY_LISTEN=127.0.0.1:$edge STACKGATE_LOG=warn \
  STACKGATE_PROXY_UPSTREAM_RESPONSE_TIMEOUT=2
if [ "$backend" = postgres ]; then
  pgserver=${STACKGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
  pgdb=stackgate_soak_$$
  psql "$pgserver" -qc "CREATE DATABASE $pgdb"
  export STACKGATE_DATABASE_URL=${pgserver%/*}/$pgdb
fi

password='correct horse battery staple'
"$bin" group add staff >/dev/null
user_list=""
for i in $(seq 0 "$users"); do
  echo "$password" | "$bin" user add "soak$i" --email "soak$i@soak.example" --password-stdin >/dev/null
  "$bin" group add-member staff "soak$i" >/dev/null
  user_list="$user_list[\"soak$i\", \"$password\"],"
done
echo "$password" | "$bin" user add soakapps --email soakapps@soak.example --password-stdin >/dev/null
"$bin" group add-member staff soakapps >/dev/null
echo "$password" | "$bin" user add admin --email admin@soak.example --admin --password-stdin >/dev/null
token=$("$bin" token create --user admin --name soak 2>/dev/null | tail -n 1)
serve() { "$bin" serve >>"$work/serve.log" 2>&1 & echo $! >"$work/pid"; }
ready() { for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$web/readyz" >/dev/null && return 0; sleep 0.1; done; return 1; }
serve
ready
client=$(curl -sf -X POST "http://127.0.0.1:$web/api/v1/clients" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' \
  -d "{\"id\": \"soak\", \"name\": \"Soak\", \"redirect_uris\": [\"https://app.soak.example/cb\"], \"first_party\": true, \"backchannel_logout_uri\": \"http://127.0.0.1:$hang/logout\"}")
secret=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])' <<<"$client")

cat >"$work/soak.json" <<JSON
{"base": "http://localhost:$web", "edge": $edge, "app_host": "soak.localhost",
 "client_id": "soak", "client_secret": "$secret", "users": [${user_list%,}],
 "admin_token": "$token", "password": "$password", "data_dir": "$work/data",
 "passkey_users": ${SOAK_PASSKEY_USERS:-2}, "totp_users": ${SOAK_TOTP_USERS:-2},
 "apps_user": $([ "${SOAK_APPS:-1}" = 1 ] && echo "[\"soakapps\", \"$password\"]" || echo null),
 "seconds": $seconds, "out": "$work", "pidfile": "$work/pid", "faultfile": "$work/fault",
 "sample_every": ${SOAK_SAMPLE_EVERY:-10}}
JSON

# Requests to the upstream that never answers, all through the run: each must end in 504 at the
# timeout, and none may hold memory or a file descriptor afterwards.
stuck() {
  while [ -e "$work/pid" ] && [ ! -e "$work/done" ]; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -m 10 -H "Host: stuck.localhost:$edge" "http://127.0.0.1:$edge/" || true)
    echo "$(date +%s.%N) $code" >>"$work/stuck.txt"
    [ "$code" != 000 ] || sleep 0.2
  done
}

echo "soak: $seconds s, fault $fault, backend $backend, $users virtual users + 1 witness"
python3 tests/bench/soak.py "$work/soak.json" >"$work/report.txt" 2>"$work/driver.err" &
driver=$!
stuck_pids=()
for _ in 1 2 3 4; do stuck & stuck_pids+=($!); done
if [ "$fault" != none ]; then
  sleep $((seconds / 3))
  printf '%s' "$(date +%s.%N)" >"$work/fault"
  case $fault in
    postgres-restart)
      version=$(ls /etc/postgresql | sort -V | tail -n 1)
      pg_ctlcluster --skip-systemctl-redirect "$version" main restart
      ;;
    sigkill)
      # While the demo app it runs is up (if the installer is on): its process must not outlive
      # the install, killed Stackgate or not.
      if [ "${SOAK_APPS:-1}" = 1 ]; then
        for _ in $(seq 1 100); do pgrep -f "$bin demo-app" >/dev/null && break; sleep 0.05; done
        running=$(pgrep -f "$bin demo-app" || true)
        if [ -z "$running" ]; then
          echo "FAILED: no demo app process was up to be left behind by the kill"; kill_status=1
        fi
        echo "killing Stackgate with demo app processes $(echo $running)"
      fi
      kill -9 "$(cat "$work/pid")"
      wait "$(cat "$work/pid")" 2>/dev/null || true
      serve
      ready
      ;;
    disk-full)
      dd if=/dev/zero of="$work/data/filler" bs=1M status=none 2>/dev/null || true
      echo "data file system full: $(df -h "$work/data" | awk 'NR==2 {print $4}') left"
      sleep 15
      rm -f "$work/data/filler"
      ;;
  esac
  printf '%s %s' "$(cat "$work/fault")" "$(date +%s.%N)" >"$work/fault"
  echo "fault $fault injected and over after $(python3 -c "a,b=open('$work/fault').read().split(); print(f'{float(b)-float(a):.1f}')") s"
fi
status=${kill_status:-0}
wait $driver || status=$?
touch "$work/done"
# The installer's last cycle uninstalled the demo app (or cleaned up after a failed one): no
# process of it may be left, not even one whose Stackgate was killed.
left=$(pgrep -f "$bin demo-app" || true)
if [ -n "$left" ]; then
  echo "FAILED: demo app processes left after uninstalling: $(echo $left)"; ps -o pid,ppid,etimes,args -p $(echo $left | tr ' ' ,); status=1
fi
wait "${stuck_pids[@]}" 2>/dev/null || true
cat "$work/report.txt"
sed 's/^/driver: /' "$work/driver.err" | head -20
# No connection (000) counts only while a fault is on: a restarting server refuses connections.
window=$(cat "$work/fault" 2>/dev/null || echo "0 0")
from=${window% *} to=${window#* }
stuck_total=$(awk -v from="$from" -v to="$to" '!($2 == "000" && $1 >= from && $1 <= to + 15)' "$work/stuck.txt" | grep -c . || true)
stuck_504=$(awk '$2 == "504"' "$work/stuck.txt" | grep -c . || true)
echo "upstream that never answers: $stuck_504 of $stuck_total requests ended in 504 at the 2 s timeout"
if [ "$stuck_total" -eq 0 ] || [ "$stuck_504" -lt $((stuck_total * 9 / 10)) ]; then
  echo "FAILED: the edge did not time out requests to the upstream that never answers"; awk '{print $2}' "$work/stuck.txt" | sort | uniq -c | head; status=1
fi
if [ "$backend" = sqlite ]; then
  integrity=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True).execute("PRAGMA integrity_check").fetchone()[0])' "$work/data/stackgate.db")
  echo "SQLite integrity check: $integrity"
  [ "$integrity" = ok ] || status=1
fi
if [ -n "${SOAK_KEEP:-}" ]; then cp "$work/rss.csv" "$work/report.txt" "$SOAK_KEEP"/ 2>/dev/null || true; fi
grep -iE 'panicked|ERROR' "$work/serve.log" | grep -v 'back-channel\|logout' | head -5 || true
exit $status
