"""The soak driver: virtual users, each a person with a browser, going round a realistic day in a
loop against a running Stackgate: sign in through the login form, hand the session over to an
app behind the edge proxy, sign in to an OpenID Connect app (authorize, code exchange), use it
(userinfo, refreshes, proxied requests), then sign off, and check that nothing of the ended
session is accepted any more. A witness keeps tokens it never uses, to check after a fault that
everything the server acknowledged is still there and no code can be redeemed twice. An admin
meanwhile goes round people joining and leaving: created through the admin API, signed in to
the app behind the edge, taken out of the app's group (refused at once), deleted (signed out
at once).

Standard library only. Threads share the GIL, so the throughput printed is the driver's floor,
not the server's ceiling; the point is errors, latency and memory over time.

  soak.py CONFIG.json

CONFIG holds base, edge, app_host, client_id, client_secret, users [[name, password]...],
admin_token, password (for the people the admin creates), seconds, out (a folder), pidfile (the server's pid, rewritten on restart) and faultfile (the
shell writes "start END" there while it injects a fault)."""
import base64, hashlib, http.client, json, os, random, re, secrets, sys, threading, time
import urllib.parse

cfg = json.load(open(sys.argv[1]))
BASE = urllib.parse.urlparse(cfg["base"])
EDGE = cfg["edge"]
APP_HOST = cfg["app_host"]
REDIRECT = "https://app.soak.example/cb"
DEADLINE = time.monotonic() + cfg["seconds"]
BASIC = base64.b64encode(f'{cfg["client_id"]}:{cfg["client_secret"]}'.encode()).decode()
GRACE = 15  # seconds after a fault ends during which failures still count as the fault's

lock = threading.Lock()
latencies = {}    # op -> [seconds]
outcomes = {}     # (op, class) -> count
violations = []   # security or durability failures: any one fails the run
fault_windows = []


def fault_active(now):
    try:
        text = open(cfg["faultfile"]).read().split()
    except FileNotFoundError:
        return False
    start = float(text[0])
    end = float(text[1]) if len(text) > 1 else float("inf")
    if (start, end) not in fault_windows:
        with lock:
            fault_windows[:] = [w for w in fault_windows if w[0] != start] + [(start, end)]
    return start <= now <= end + GRACE


def record(op, status, seconds, expected):
    now = time.time()
    if status in expected:
        kind = "ok"
    elif status in (503, "conn") and fault_active(now):
        kind = f"fault-{status}"
    else:
        kind = f"unexpected-{status}"
    with lock:
        outcomes[(op, kind)] = outcomes.get((op, kind), 0) + 1
        if kind == "ok":
            latencies.setdefault(op, []).append(seconds)
    return kind == "ok"


class Failed(Exception):
    pass


class Browser:
    """Cookies per host, like a browser; one keep-alive connection per host."""

    def __init__(self):
        self.jar = {}
        self.conns = {}

    def call(self, op, method, host, port, path, body=None, headers=None, expected=(200,), host_header=None):
        headers = dict(headers or {})
        jar = self.jar.setdefault(host_header or host, {})
        if jar:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        if host_header:
            headers["Host"] = host_header
        if method == "POST" and "Origin" not in headers and not host_header:
            headers["Origin"] = cfg["base"]
        key = (host, port)
        started = time.monotonic()
        try:
            conn = self.conns.get(key) or http.client.HTTPConnection(host, port, timeout=30)
            self.conns[key] = conn
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            self.conns.pop(key, None)
            record(op, "conn", 0, expected)
            raise Failed(op)
        for value in resp.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            jar[name] = rest.split(";")[0]
        if not record(op, resp.status, time.monotonic() - started, expected):
            raise Failed(f"{op}: {resp.status}")
        return resp, data

    def web(self, op, method, path, body=None, headers=None, expected=(200,)):
        return self.call(op, method, BASE.hostname, BASE.port, path, body, headers, expected)


def form(fields):
    return urllib.parse.urlencode(fields), {"Content-Type": "application/x-www-form-urlencoded"}


def csrf_of(page):
    return re.search(rb'name="csrf" value="([^"]+)"', page).group(1).decode()


def sign_in(browser, user, password):
    _, page = browser.web("login-page", "GET", "/login")
    body, headers = form({"csrf": csrf_of(page), "username": user, "password": password, "return_to": "/"})
    browser.web("login", "POST", "/login", body, headers, expected=(303,))


def edge_session(browser):
    """The hand-over to the app's host: a one-time code exchanged on the app's own host."""
    nonce = secrets.token_urlsafe(32)
    state = base64.urlsafe_b64encode(hashlib.sha256(nonce.encode()).digest()).rstrip(b"=").decode()
    rd = urllib.parse.quote(f"http://{APP_HOST}:{EDGE}/", safe="")
    resp, _ = browser.web("edge-handover", "GET", f"/proxy/sign-in?rd={rd}&state={state}", expected=(303,))
    callback = urllib.parse.urlparse(resp.headers["Location"])
    browser.jar.setdefault(f"{APP_HOST}:{EDGE}", {})["stackgate_state"] = nonce
    browser.call("edge-callback", "GET", "127.0.0.1", EDGE, f"{callback.path}?{callback.query}",
                 expected=(302, 303), host_header=f"{APP_HOST}:{EDGE}")


def proxied(browser, expected=(200,), op="proxied"):
    resp, _ = browser.call(op, "GET", "127.0.0.1", EDGE, "/", expected=expected,
                           host_header=f"{APP_HOST}:{EDGE}")
    return resp


def authorize(browser):
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": cfg["client_id"], "redirect_uri": REDIRECT,
        "scope": "openid profile email groups", "code_challenge": challenge,
        "code_challenge_method": "S256", "state": "s", "nonce": secrets.token_urlsafe(8)})
    resp, _ = browser.web("authorize", "GET", f"/authorize?{query}", expected=(302, 303))
    code = urllib.parse.parse_qs(urllib.parse.urlparse(resp.headers["Location"]).query)["code"][0]
    return code, verifier


def token(browser, op, fields, expected=(200,)):
    body, headers = form(fields)
    headers["Authorization"] = f"Basic {BASIC}"
    resp, data = browser.web(op, "POST", "/token", body, headers, expected)
    return resp.status, json.loads(data or b"{}")


def exchange(browser, code, verifier, expected=(200,)):
    return token(browser, "code-exchange", {"grant_type": "authorization_code", "code": code,
                                            "redirect_uri": REDIRECT, "code_verifier": verifier}, expected)


def refresh(browser, refresh_token, expected=(200,)):
    return token(browser, "refresh", {"grant_type": "refresh_token", "refresh_token": refresh_token}, expected)


def userinfo(browser, access, expected=(200,)):
    resp, _ = browser.web("userinfo", "GET", "/userinfo", headers={"Authorization": f"Bearer {access}"},
                          expected=expected)
    return resp.status


def violation(what):
    with lock:
        violations.append(what)
    print(f"VIOLATION: {what}", file=sys.stderr, flush=True)


def day(user, password):
    """One person's day, from sign-in to sign-off; raises Failed when the server did not answer."""
    browser = Browser()
    sign_in(browser, user, password)
    edge_session(browser)
    code, verifier = authorize(browser)
    _, tokens = exchange(browser, code, verifier)
    # A code is good once: the replay must fail (and, per RFC 6749, revoke what it gave).
    if random.random() < 0.1:
        status, _ = exchange(browser, code, verifier, expected=(400,))
        if status != 400:
            violation(f"a code was redeemed twice ({status})")
        return  # the replay revoked this grant's tokens: start the day again
    for round in range(6):
        userinfo(browser, tokens["access_token"])
        proxied(browser)
        proxied(browser)
        if round % 2 == 1:
            _, tokens = refresh(browser, tokens["refresh_token"])
    _, page = browser.web("portal", "GET", "/")
    body, headers = form({"csrf": csrf_of(page)})
    browser.web("sign-off", "POST", "/logout", body, headers, expected=(200, 303))
    # Nothing of the ended session is accepted again, by any path.
    if proxied(browser, expected=(200, 302, 303, 401)).status == 200:
        violation("the edge accepted a signed-off session")
    status, _ = refresh(browser, tokens["refresh_token"], expected=(400, 401))
    if status == 200:
        violation("a signed-off session's refresh token was accepted")
    if userinfo(browser, tokens["access_token"], expected=(401,)) == 200:
        violation("a signed-off session's access token was accepted")
    resp, page = browser.web("portal", "GET", "/", expected=(200, 303))
    if b"You are signed in as" in page:
        violation("the portal still knew a signed-off session")


def api(op, method, path, payload=None, expected=(200,)):
    """The admin API, with the admin's token."""
    headers = {"Authorization": f"Bearer {cfg['admin_token']}"}
    body = None
    if payload is not None:
        body = json.dumps(payload)
        headers["Content-Type"] = "application/json"
    resp, data = Browser().web(op, method, f"/api/v1{path}", body, headers, expected)
    return resp.status, data


def staff_turnover(n):
    """Someone joins, uses the app, loses the app's group, then their account."""
    name = f"churn{n}x{secrets.token_hex(3)}"
    api("admin-create", "POST", "/users",
        {"username": name, "email": f"{name}@soak.example", "password": cfg["password"], "groups": ["staff"]},
        expected=(201,))
    browser = Browser()
    sign_in(browser, name, cfg["password"])
    edge_session(browser)
    proxied(browser)
    api("admin-list", "GET", "/users?limit=50")
    api("admin-ungroup", "DELETE", f"/groups/staff/members/{name}", expected=(200, 204))
    if proxied(browser, expected=(200, 403), op="proxied-left").status == 200:
        violation("the edge let someone through after they left the app's group")
    api("admin-delete", "DELETE", f"/users/{name}", expected=(200, 204))
    if proxied(browser, expected=(200, 302, 303, 401), op="proxied-gone").status == 200:
        violation("the edge let a deleted account through")


def admin():
    n = 0
    while time.monotonic() < DEADLINE:
        n += 1
        try:
            staff_turnover(n)
        except Failed:
            pass
        except Exception as e:
            with lock:
                outcomes[("driver", f"error-{type(e).__name__}")] = outcomes.get(("driver", f"error-{type(e).__name__}"), 0) + 1
        time.sleep(1)


def virtual_user(user, password):
    while time.monotonic() < DEADLINE:
        try:
            day(user, password)
        except Failed:
            time.sleep(0.2)  # the server is down or refusing: try a new day
        except Exception as e:  # a malformed answer is a failure, not a crash of the driver
            with lock:
                outcomes[("driver", f"error-{type(e).__name__}")] = outcomes.get(("driver", f"error-{type(e).__name__}"), 0) + 1
            time.sleep(0.2)


witnessed = []  # (code, verifier, tokens, at): acknowledged by the server, never used again


def witness(user, password):
    browser = None
    while time.monotonic() < DEADLINE:
        try:
            if browser is None:
                browser = Browser()
                sign_in(browser, user, password)
            code, verifier = authorize(browser)
            _, tokens = exchange(browser, code, verifier)
            with lock:
                witnessed.append((code, verifier, tokens, time.time()))
        except Failed:
            browser = None
            time.sleep(0.2)
        time.sleep(0.5)


def check_witness():
    """Every token the server handed out is still good, and no witnessed code works again."""
    browser = Browser()
    lost = reused = 0
    for code, verifier, tokens, _ in witnessed:
        try:
            status, _ = refresh(browser, tokens["refresh_token"], expected=(200,))
        except Failed:
            lost += 1
            continue
        try:
            status, _ = exchange(browser, code, verifier, expected=(400,))
        except Failed:
            reused += 1
    if lost:
        violation(f"{lost} of {len(witnessed)} acknowledged refresh tokens were lost")
    if reused:
        violation(f"{reused} of {len(witnessed)} codes could be redeemed again")
    return len(witnessed), lost, reused


def rss_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None


def fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except FileNotFoundError:
        return None


def sampler(samples):
    started = time.monotonic()
    while time.monotonic() < DEADLINE:
        pid = open(cfg["pidfile"]).read().strip()
        rss, open_fds = rss_kib(pid), fds(pid)
        with lock:
            done = sum(v for (op, kind), v in outcomes.items() if kind == "ok")
        if rss is not None:
            samples.append((round(time.monotonic() - started), pid, rss, open_fds, done))
        time.sleep(cfg.get("sample_every", 10))


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else 0


def main():
    samples = []
    users = cfg["users"]
    threads = [threading.Thread(target=virtual_user, args=u, daemon=True) for u in users[1:]]
    threads.append(threading.Thread(target=witness, args=users[0], daemon=True))
    threads.append(threading.Thread(target=admin, daemon=True))
    sample = threading.Thread(target=sampler, args=(samples,), daemon=True)
    started = time.monotonic()
    for t in threads + [sample]:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    witnessed_count, lost, reused = check_witness()

    out = cfg["out"]
    with open(f"{out}/rss.csv", "w") as f:
        f.write("seconds,pid,rss_kib,open_fds,requests_ok\n")
        for row in samples:
            f.write(",".join(str(v) for v in row) + "\n")
    total_ok = sum(v for (op, kind), v in outcomes.items() if kind == "ok")
    print(f"{elapsed:.0f} s, {len(users) - 1} virtual users + 1 witness + 1 admin: {total_ok} requests answered as expected, {total_ok / elapsed:.0f}/s")
    print(f"{'operation':<15}{'ok':>8}{'p50 ms':>9}{'p99 ms':>9}  other outcomes")
    for op in sorted({op for op, _ in outcomes}):
        ok = outcomes.get((op, "ok"), 0)
        lat = latencies.get(op, [])
        other = ", ".join(f"{kind} {n}" for (o, kind), n in sorted(outcomes.items()) if o == op and kind != "ok")
        print(f"{op:<15}{ok:>8}{percentile(lat, 50) * 1000:>9.1f}{percentile(lat, 99) * 1000:>9.1f}  {other}")
    fault_active(time.time())  # the window as the shell left it
    for start, end in fault_windows:
        after = [(op, kind) for (op, kind) in outcomes if kind.startswith("fault-")]
        print(f"fault from {time.strftime('%H:%M:%S', time.localtime(start))} for {end - start:.1f} s; failures during it: "
              + (", ".join(f"{op} {kind} {outcomes[(op, kind)]}" for op, kind in sorted(after)) or "none"))
    print(f"witness: {witnessed_count} acknowledged token sets, {lost} lost, {reused} codes redeemable again")
    # Memory: the last quarter of the run against the second (after warm-up), same process only.
    growth_ok = True
    if samples:
        print("RSS over time (MiB): " + " ".join(f"{s[0]}s:{s[2] / 1024:.0f}" for s in samples))
        last_pid = samples[-1][1]
        mine = [s for s in samples if s[1] == last_pid]
        q = max(1, len(mine) // 4)
        warm = sorted(s[2] for s in mine[q:2 * q]) or [mine[0][2]]
        late = sorted(s[2] for s in mine[-q:])
        warm_mid, late_mid = warm[len(warm) // 2], late[len(late) // 2]
        growth = (late_mid - warm_mid) / warm_mid
        print(f"RSS median {warm_mid / 1024:.1f} MiB in the second quarter, {late_mid / 1024:.1f} MiB in the last: {growth * 100:+.1f}%; open fds {mine[q][3]} -> {mine[-1][3]}")
        growth_ok = len(mine) < 8 or growth < cfg.get("max_rss_growth", 0.25)
        if not growth_ok:
            violation(f"RSS grew {growth * 100:.0f}% between the second and the last quarter")
    unexpected = {k: v for k, v in outcomes.items() if k[1].startswith("unexpected") or k[1].startswith("error")}
    if unexpected:
        print("unexpected outcomes: " + ", ".join(f"{op} {kind} {n}" for (op, kind), n in sorted(unexpected.items())))
    if violations or unexpected or not growth_ok:
        print(f"FAILED: {len(violations)} violations, {sum(unexpected.values())} unexpected outcomes")
        sys.exit(1)
    print("passed: no violation, every failure inside a fault window")


main()
