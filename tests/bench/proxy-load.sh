#!/usr/bin/env bash
# Load test of the edge proxy: the release binary as its own process, driven by wrk, against
# baselines measured in the same run on the same machine:
#   direct   wrk → upstream (nginx serving a 1 KiB file)
#   nginx    wrk → nginx proxy_pass (pooled upstream connections) → upstream
#   edge     wrk → Stackgate edge (session cookie checked in memory, Cedar policy, identity
#            headers and signed assertion added) → upstream
# Each run also reports the proxy's and the upstream's CPU per request and how much of the
# cores stayed idle. Then 10,000 concurrent connections held open against the edge, with its RSS
# sampled.
#   tests/bench/proxy-load.sh [seconds per run]
#   BENCH_BIN=/path/to/stackgate tests/bench/proxy-load.sh   (another build)
#   PERF=report.txt tests/bench/proxy-load.sh                    (profile the edge's run)
#   RATE=5000 tests/bench/proxy-load.sh   (then, at a steady rate, default 2000 requests/s, the
#       latency each adds, with oha, open loop and corrected for coordinated omission)
#   INSTRUCTIONS=20000 tests/bench/proxy-load.sh   (instead of the runs above: the instructions
#       the edge and nginx's proxy each execute per request, counted by callgrind over that many
#       requests after a warm-up; the same figure on every run of the same build, whatever else
#       the machine does, so small changes can be compared; user space only: both make the
#       same system calls per request, two writev and two recvfrom)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
threads=2
connections=64

for tool in wrk nginx python3 curl; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing="${missing:-} $tool"
done
if [ -n "${missing:-}" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
nginx=$(command -v nginx || echo /usr/sbin/nginx)
# BENCH_BIN=path: measure that build instead (to compare two builds in the same hour).
if [ -n "${BENCH_BIN:-}" ]; then
  bin=$BENCH_BIN
else
  cargo build --release -q -p stackgate
  bin=$PWD/target/release/stackgate
fi
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up=$(free_port); ngx=$(free_port); web=$(free_port); edge=$(free_port)
trap 'kill ${server_pid:-} ${nginx_pid:-} ${upstream_pid:-} 2>/dev/null || true; rm -rf "$work"' EXIT

# Two nginx instances with worker_processes auto (2 here, as many as Stackgate's threads): the
# upstream, and the proxy_pass baseline. Apart, so the CPU time each proxy spends per request can
# be read off its own processes: that figure does not depend on how the scheduler shares the two
# cores between wrk, the upstream and the proxy, which moves requests per second by a quarter
# from one run to the next.
mkdir -p "$work/www"
head -c 1024 /dev/zero | tr '\0' 'x' >"$work/www/index.html"
# nginx's workers run as nobody when started by root: they must read the file.
chmod 755 "$work" "$work/www" && chmod 644 "$work/www/index.html"
# Under callgrind, the instructions of one process (nginx without its master) are counted only
# between two marks, set by the client below.
callgrind() { # output file, command...
  local out=$1; shift
  # exec: started with &, the subshell becomes valgrind, so $! is the process to mark.
  exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" "$@"
}
start_nginx() { # name, server block
  mkdir -p "$work/$1"
  local wrap=() master=""
  if [ -n "${INSTRUCTIONS:-}" ] && [ "$1" = proxy ]; then
    wrap=(callgrind "$work/nginx.callgrind"); master="master_process off;"
  fi
  cat >"$work/$1/nginx.conf" <<NGINX
daemon off;
$master
worker_processes auto;
worker_rlimit_nofile 20000;
pid $work/$1/nginx.pid;
error_log stderr error;
events { worker_connections 20000; }
http {
  access_log off;
  client_body_temp_path $work/$1/body;
  proxy_temp_path $work/$1/proxy;
  fastcgi_temp_path $work/$1/fastcgi;
  uwsgi_temp_path $work/$1/uwsgi;
  scgi_temp_path $work/$1/scgi;
  keepalive_requests 100000;
  $2
}
NGINX
  "${wrap[@]}" "$nginx" -p "$work/$1" -c nginx.conf >"$work/$1/out.log" 2>&1 &
}
start_nginx upstream "server { listen 127.0.0.1:$up; root $work/www; }"
upstream_pid=$!
start_nginx proxy "upstream app { server 127.0.0.1:$up; keepalive 128; }
  server {
    listen 127.0.0.1:$ngx;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
  }"
nginx_pid=$!

cat >"$work/stackgate.toml" <<TOML
[[proxy_route]]
host = "bench.localhost"
upstream = "http://127.0.0.1:$up"
app = "bench"
groups = ["staff"]
TOML
export STACKGATE_CONFIG=$work/stackgate.toml STACKGATE_DATA_DIR=$work/data STACKGATE_LISTEN=127.0.0.1:$web \
  STACKGATE_ISSUER=http://127.0.0.1:$web STACKGATE_PROXY_LISTEN=127.0.0.1:$edge STACKGATE_LOG=warn
password='correct horse battery staple'
echo "$password" | "$bin" user add bench --email bench@bench.example --password-stdin >/dev/null
"$bin" group add staff >/dev/null
"$bin" group add-member staff bench >/dev/null
wrap=()
[ -z "${INSTRUCTIONS:-}" ] || wrap=(callgrind "$work/edge.callgrind")
"${wrap[@]}" "$bin" serve >"$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$web/readyz" >/dev/null && break; sleep 0.1; done
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$up/" >/dev/null && break; sleep 0.1; done
rss_of() { # pids: the sum of their RSS in MiB
  local total=0 pid
  for pid in "$@"; do
    total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)))
  done
  python3 -c "print(f'{$total/1024:.1f}')"
}
rss() { rss_of "$server_pid"; }
echo "edge RSS idle: $(rss) MiB"

# Sign in once, as a browser would: login host, then the hand-over to the app's host.
cookie=$(python3 - "$web" "$edge" "$password" <<'PY'
import base64, hashlib, http.client, re, secrets, sys, urllib.parse
web, edge, password = sys.argv[1:4]
conn = http.client.HTTPConnection(f"127.0.0.1:{web}")
jar = {}
def call(method, path, body=None, headers=None):
    headers = dict(headers or {}); headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
    headers["Origin"] = f"http://127.0.0.1:{web}"
    conn.request(method, path, body=body, headers=headers); r = conn.getresponse(); data = r.read()
    for v in r.headers.get_all("Set-Cookie") or []:
        k, _, rest = v.partition("="); jar[k] = rest.split(";")[0]
    return r, data
r, page = call("GET", "/login")
csrf = re.search(rb'name="csrf" value="([^"]+)"', page).group(1).decode()
r, _ = call("POST", "/login", urllib.parse.urlencode({"csrf": csrf, "username": "bench", "password": password, "return_to": "/"}),
            {"Content-Type": "application/x-www-form-urlencoded"})
assert r.status == 303, r.status
rd = urllib.parse.quote(f"http://bench.localhost:{edge}/", safe="")
# The browser's state cookie on the app host, and its digest for the login host.
nonce = secrets.token_urlsafe(32)
state = base64.urlsafe_b64encode(hashlib.sha256(nonce.encode()).digest()).rstrip(b"=").decode()
r, _ = call("GET", f"/proxy/sign-in?rd={rd}&state={state}")
assert r.status == 303, r.status
callback = urllib.parse.urlparse(r.headers["Location"])
e = http.client.HTTPConnection(f"127.0.0.1:{edge}")
e.request("GET", f"{callback.path}?{callback.query}", headers={"Host": f"bench.localhost:{edge}", "Cookie": f"stackgate_state={nonce}"})
r = e.getresponse(); r.read()
print([c for c in r.headers.get_all("Set-Cookie") if c.startswith("stackgate_proxy=")][0].split(";")[0])
PY
)
check=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: bench.localhost:$edge" -H "Cookie: $cookie" "http://127.0.0.1:$edge/")
[ "$check" = 200 ] || { echo "the edge did not let the session through: $check"; exit 1; }

if [ -n "${INSTRUCTIONS:-}" ]; then
  for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$ngx/" >/dev/null && break; sleep 0.1; done
  count() { # pid, port, headers (one per line)
    python3 - "$1" "$2" "$3" "$INSTRUCTIONS" <<'PY'
import http.client, subprocess, sys
pid, port, header, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
headers = dict(h.split(": ", 1) for h in header.split("\n") if h)
# Four kept-alive connections taking turns, as a browser or a load balancer would hold them.
conns = [http.client.HTTPConnection("127.0.0.1", port) for _ in range(4)]
def requests(k):
    for i in range(k):
        c = conns[i % 4]
        c.request("GET", "/", headers=headers)
        r = c.getresponse()
        assert r.status == 200 and len(r.read()) == 1024, r.status
requests(400)  # warm-up: connections open, caches and pools filled
subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
requests(n)
subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
PY
  }
  total() { # callgrind output files
    cat "$@" 2>/dev/null | awk '/^totals:/ {s += $2} END {print s}'
  }
  count "$nginx_pid" "$ngx" "Host: bench.localhost"
  count "$server_pid" "$edge" "Host: bench.localhost:$edge
Cookie: $cookie"
  sleep 1
  for name in nginx edge; do
    python3 -c "print(f'$name: {$(total "$work/$name".callgrind.*)/$INSTRUCTIONS:,.0f} instructions per request (user space, callgrind)')"
  done
  [ -z "${KEEP_CALLGRIND:-}" ] || cp "$work"/edge.callgrind* "$work"/nginx.callgrind* "$KEEP_CALLGRIND"/
  exit 0
fi

# CPU seconds (user + system) used so far by a process and its children (nginx's workers).
cpu() {
  local pids total=0 pid
  pids="$1 $(pgrep -P "$1" | tr '\n' ' ')"
  for pid in $pids; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
ticks=$(getconf CLK_TCK)
# Microseconds of CPU per request, from CPU ticks before and after a run of so many requests.
per_request_us() { python3 -c "print(f'{1e6*($2-$1)/$ticks/$3:.1f}')"; }
# Idle and all CPU time of the machine so far, in ticks: how much of its cores a run left
# unused (a proxy that adds waits rather than work leaves cores idle; anything else running on
# the machine counts as busy).
machine() { awk '/^cpu / {print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
run() { # name, url, pid of the proxy measured (or -), extra wrk args
  local name=$1 url=$2 pid=$3; shift 3
  local before=0 upstream_before machine_before
  [ "$pid" = - ] || before=$(cpu "$pid")
  upstream_before=$(cpu "$upstream_pid"); machine_before=$(machine)
  wrk -t$threads -c$connections -d${seconds}s --latency "$@" "$url" >"$work/$name.txt" 2>&1
  local rps p50 p99 requests per_request="" upstream_cpu idle
  upstream_cpu=$(cpu "$upstream_pid")
  idle=$(machine | { read -r i a; read -r bi ba <<<"$machine_before"; python3 -c "print(f'{100*($i-$bi)/max(1,$a-$ba):.0f}')"; })
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$name.txt")
  p50=$(awk '$1=="50%" {print $2}' "$work/$name.txt")
  p99=$(awk '$1=="99%" {print $2}' "$work/$name.txt")
  # A run that got no answer at all reports none: counted as one, so the figures stay finite.
  requests=$(awk '/requests in/ {print $1}' "$work/$name.txt")
  [ "${requests:-0}" -gt 0 ] || requests=1
  if [ "$pid" != - ]; then
    per_request="   CPU $(per_request_us "$before" "$(cpu "$pid")" "$requests") µs/request"
  fi
  # What the upstream spent per request (bigger requests cost it more to parse), and the idle
  # share of the cores over the run.
  per_request+="   upstream $(per_request_us "$upstream_before" "$upstream_cpu" "$requests") µs/request   idle $idle%"
  printf '%-8s %10s req/s   p50 %8s   p99 %8s%s\n' "$name" "$rps" "$p50" "$p99" "$per_request"
  eval "${name}_rps=$rps"
}
echo "wrk: $threads threads, $connections connections, ${seconds}s per run, 1 KiB responses"
run direct "http://127.0.0.1:$up/" -
run nginx "http://127.0.0.1:$ngx/" "$nginx_pid" -H "Host: bench.localhost"
if [ -n "${PERF:-}" ]; then
  # PERF=FILE: profile the edge during its run; the report goes to FILE.
  perf record -F 999 -g -p "$server_pid" -o "$work/perf.data" -- sleep "$seconds" >/dev/null 2>&1 &
  perf_pid=$!
fi
run edge "http://127.0.0.1:$edge/" "$server_pid" -H "Host: bench.localhost:$edge" -H "Cookie: $cookie"
if [ -n "${PERF:-}" ]; then
  wait "$perf_pid" || true
  perf report -i "$work/perf.data" --stdio --no-children --percent-limit 0.7 --sort symbol 2>/dev/null | grep -v "^$" | head -120 >"$PERF" || true
  perf report -i "$work/perf.data" --stdio --children --percent-limit 2 --sort symbol -g none 2>/dev/null | grep -v "^$" | head -150 >"$PERF.children" || true
  perf report -i "$work/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null | grep -v "^$" | head -40 >"$PERF.dso" || true
  cp "$work/perf.data" "$PERF.data"
fi
python3 -c "print(f'edge throughput: {100*$edge_rps/$nginx_rps:.1f}% of nginx, {100*$edge_rps/$direct_rps:.1f}% of direct')"

# Latency at a steady rate that none of the three is near saturating (RATE requests/s, 2,000
# unless set): what each hop adds to a request. The runs above go as fast as they can with all
# processes sharing two cores, so their percentiles are mostly queueing. oha sends open loop with
# latency correction: each request is timed from when it was due, so a stall counts in full
# rather than being hidden by the requests not sent meanwhile (as wrk's closed loop does).
rate=${RATE:-2000}
# Its JSON report is read below as oha 1.16 writes it.
oha="$HOME/.cache/stackgate-bench/bin/oha"
if [ ! -x "$oha" ]; then
  echo "installing oha (once) into ~/.cache/stackgate-bench"
  cargo install --locked --quiet oha --version 1.16.0 --root "$HOME/.cache/stackgate-bench"
fi
steady() { # name, url, oha args
  local name=$1 url=$2; shift 2
  "$oha" -z "${seconds}s" -q "$rate" -c 32 --latency-correction --no-tui --output-format json \
    "$@" "$url" >"$work/steady-$name.json"
}
steady direct "http://127.0.0.1:$up/"
steady nginx "http://127.0.0.1:$ngx/" -H "Host: bench.localhost"
steady edge "http://127.0.0.1:$edge/" -H "Host: bench.localhost:$edge" -H "Cookie: $cookie"
python3 - "$work" "$rate" <<'PY'
import json, sys
work, rate = sys.argv[1], int(sys.argv[2])
runs = {name: json.load(open(f"{work}/steady-{name}.json")) for name in ("direct", "nginx", "edge")}
ms = lambda run, p: run["latencyPercentiles"][p] * 1000
print(f"steady {rate:,} requests/s (oha, open loop, latency corrected):")
for name, run in runs.items():
    codes = run["statusCodeDistribution"]
    # Requests still waiting for their turn when the run ends are counted as aborted: not failures.
    errors = {e: n for e, n in run.get("errorDistribution", {}).items() if e != "aborted due to deadline"}
    bad = sum(n for code, n in codes.items() if code != "200") + sum(errors.values())
    added = "" if name == "direct" else (
        f"   adds p50 {ms(run, 'p50') - ms(runs['direct'], 'p50'):+.3f}  p99 {ms(run, 'p99') - ms(runs['direct'], 'p99'):+.3f} ms")
    print(f"  {name:7} {run['summary']['requestsPerSec']:9,.0f} req/s   p50 {ms(run, 'p50'):.3f}  p99 {ms(run, 'p99'):.3f}"
          f"  p99.9 {ms(run, 'p99.9'):.3f} ms   not 200: {bad}{added}")
PY
echo "edge RSS after load: $(rss) MiB"
# Session lookups the edge's memory could not answer (SQLite: a re-check every half second, and
# activity recorded every minute), counted by the server since start.
lookups() { curl -s "http://127.0.0.1:$web/metrics" | awk '/^stackgate_session_database_lookups_total/ {print $2}'; }
echo "session lookups that reached the database so far: $(lookups)"

# 10,000 connections open at once: first idle, then each having made one request (one at a
# time, measured 3 s after the last: what an idle kept-alive connection keeps), then a second request on all at once (what a
# burst leaves behind), then closed (what the edge gives back).
python3 - "$edge" "$cookie" "$server_pid" <<'PY'
import resource, socket, sys, time
edge, cookie, pid = int(sys.argv[1]), sys.argv[2], sys.argv[3]
resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
def rss():
    time.sleep(1)
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
request = f"GET / HTTP/1.1\r\nHost: bench.localhost:{edge}\r\nCookie: {cookie}\r\n\r\n".encode()
def answered(s):
    data = b""
    while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + 1024:
        chunk = s.recv(65536)
        if not chunk:
            return False
        data += chunk
    return data.startswith(b"HTTP/1.1 200")
n = 10000
before = rss()
socks = [socket.create_connection(("127.0.0.1", edge)) for _ in range(n)]
connected = rss()
ok = 0
for s in socks:
    s.sendall(request)
    ok += answered(s)
# The edge frees an idle connection's HTTP buffers after one to two seconds without a request.
time.sleep(2)
idle = rss()
for s in socks:
    s.sendall(request)
burst = sum(answered(s) for s in socks)
after_burst = rss()
for s in socks:
    s.close()
closed = rss()
kib = lambda a, b: (b - a) * 1024 / n
print(f"10,000 connections: edge RSS {before:.1f} MiB before; {connected:.1f} MiB connected "
      f"({kib(before, connected):.1f} KiB each); {idle:.1f} MiB kept alive after one request each "
      f"({ok} answered 200; {kib(before, idle):.1f} KiB each); {after_burst:.1f} MiB after a request "
      f"on all at once ({burst} answered 200); {closed:.1f} MiB once closed")
PY

# 10,000 connections held open (requests keep flowing on them), against nginx's proxy and then
# the edge: each one's RSS (nginx: master and workers together) and its connections to the
# upstream, sampled every half second.
busy() { # name, port, pid, wrk args
  local name=$1 port=$2 pid=$3; shift 3
  wrk -t$threads -c10000 -d${seconds}s --timeout 30s "http://127.0.0.1:$port/" "$@" >"$work/c10k-$name.txt" 2>&1 &
  local wrk_pid=$! peak=0 upstream_peak=0 now n
  while kill -0 $wrk_pid 2>/dev/null; do
    now=$(rss_of "$pid" $(pgrep -P "$pid" | tr '\n' ' '))
    n=$(ss -Htn state established "( dport = :$up )" | wc -l)
    peak=$(python3 -c "print(max($peak, $now))"); upstream_peak=$((n > upstream_peak ? n : upstream_peak))
    sleep 0.5
  done
  printf '10,000 connections, %-5s %9s req/s, peak RSS %6s MiB, up to %5s connections to the upstream%s\n' \
    "$name:" "$(awk '/Requests\/sec/ {print $2}' "$work/c10k-$name.txt")" "$peak" "$upstream_peak" \
    "$(awk '/Socket errors/ {printf ", %s", $0}' "$work/c10k-$name.txt")"
}
busy nginx "$ngx" "$nginx_pid" -H "Host: bench.localhost"
busy edge "$edge" "$server_pid" -H "Host: bench.localhost:$edge" -H "Cookie: $cookie"
echo "session lookups that reached the database so far: $(lookups)"
