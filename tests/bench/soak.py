"""The soak driver: virtual users, each a person with a browser, going round a realistic day in a
loop against a running Stackgate: sign in through the login form (a password; a password and a
TOTP code; or a passkey), hand the session over to an app behind the edge proxy, sign in to an
OpenID Connect app (authorize, code exchange), use it (userinfo, refreshes, proxied requests),
then sign off, and check that nothing of the ended session is accepted any more. A witness keeps
tokens it never uses, to check after a fault that everything the server acknowledged is still
there and no code can be redeemed twice. An admin meanwhile goes round people joining and
leaving: created through the admin API, signed in to the app behind the edge, taken out of the
app's group (refused at once), deleted (signed out at once). Another installs the demo app from
the catalog, has someone sign in to it, uninstalls it and checks nothing of it is left.

Standard library only, and python3-cryptography for the passkeys' P-256 keys. Threads share the
GIL, so the throughput printed is the driver's floor, not the server's ceiling; the point is
errors, latency and memory over time.

  soak.py CONFIG.json

CONFIG holds base (the issuer, http://localhost:PORT), edge, app_host, client_id, client_secret,
users [[name, password]...] (the first is the witness), passkey_users and totp_users (how many
of the rest sign in so; they enrol first), admin_token, password (for the people the admin
creates), apps_user ([name, password] of the person signing in to installed apps, or null for
no installs), data_dir, seconds, out (a folder), pidfile (the server's pid, rewritten on
restart) and faultfile (the shell writes "start END" there while it injects a fault)."""
import base64, hashlib, hmac, http.client, json, os, random, re, secrets, sys, threading, time
import urllib.parse

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

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
    """Cookies per host, like a browser; one keep-alive connection per host. `source` is the
    loopback address it connects from: the server throttles sign-ins per client address, and a
    person's browser is not everyone's."""

    def __init__(self, source="127.0.0.1"):
        self.jar = {}
        self.conns = {}
        self.source = source

    def call(self, op, method, host, port, path, body=None, headers=None, expected=(200,), host_header=None):
        headers = dict(headers or {})
        jar = self.jar.setdefault(host_header or host, {})
        if jar:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        if host_header:
            headers["Host"] = host_header
        if method == "POST" and "Origin" not in headers and host_header == BASE.netloc:
            headers["Origin"] = cfg["base"]
        key = (host, port)
        started = time.monotonic()
        try:
            conn = self.conns.get(key) or http.client.HTTPConnection(
                host, port, timeout=30, source_address=(self.source, 0))
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
        # The issuer is http://localhost:PORT (WebAuthn needs a name, not an address); the
        # server listens on 127.0.0.1, so connect there and name the host as a browser would.
        return self.call(op, method, "127.0.0.1", BASE.port, path, body, headers, expected,
                         host_header=BASE.netloc)

    def json(self, op, path, payload, expected=(200,)):
        resp, data = self.web(op, "POST", path, json.dumps(payload),
                              {"Content-Type": "application/json"}, expected)
        return resp, json.loads(data or b"{}")

    def csrf(self):
        return self.jar[BASE.netloc]["stackgate_csrf"]


def form(fields):
    return urllib.parse.urlencode(fields), {"Content-Type": "application/x-www-form-urlencoded"}


def csrf_of(page):
    return re.search(rb'name="csrf" value="([^"]+)"', page).group(1).decode()


def sign_in(browser, user, password):
    _, page = browser.web("login-page", "GET", "/login")
    body, headers = form({"csrf": csrf_of(page), "username": user, "password": password, "return_to": "/"})
    resp, _ = browser.web("login", "POST", "/login", body, headers, expected=(303,))
    return resp


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cbor(value):
    """The few CBOR shapes an authenticator's answer needs (RFC 8949)."""
    def head(major, n):
        if n < 24:
            return bytes([major << 5 | n])
        for extra, size in ((24, 1), (25, 2), (26, 4)):
            if n < 1 << (8 * size):
                return bytes([major << 5 | extra]) + n.to_bytes(size, "big")
        raise ValueError(n)
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, bytes):
        return head(2, len(value)) + value
    if isinstance(value, str):
        return head(3, len(value.encode())) + value.encode()
    if isinstance(value, dict):
        return head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(value)


def totp(secret, step):
    """The code an authenticator app shows for a 30 s step (RFC 6238: SHA-1, six digits)."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    mac = hmac.new(key, step.to_bytes(8, "big"), hashlib.sha1).digest()
    at = mac[-1] & 0x0F
    return f"{(int.from_bytes(mac[at:at + 4], 'big') & 0x7FFFFFFF) % 1_000_000:06d}"


class Password:
    """Signs in with a password alone."""

    def __init__(self, user, password):
        self.user, self.password = user, password

    def browser(self):
        return Browser()

    def enrol(self):
        pass

    def sign_in(self, browser):
        sign_in(browser, self.user, self.password)


class Totp(Password):
    """Password, then the code of an authenticator app. A step's code is good once, so this
    person signs in at most once a step (30 s): their days are paced by the clock. Now and then
    the code just used is tried again from another browser, and must be refused."""

    def __init__(self, user, password, n):
        super().__init__(user, password)
        self.thief = f"127.0.1.{n}"
        self.secret = None
        self.last_step = 0
        # A refused code is a strike on the account; five would make it wait.
        self.replays_left = 3

    def enrol(self):
        browser = self.browser()
        sign_in(browser, self.user, self.password)
        _, page = browser.web("totp-enrol-page", "GET", "/account/totp")
        self.secret = re.search(rb'id="secret">([^<]+)<', page).group(1).decode().replace(" ", "")
        step = int(time.time()) // 30
        body, headers = form({"csrf": browser.csrf(), "code": totp(self.secret, step), "password": self.password})
        browser.web("totp-enrol", "POST", "/account/totp", body, headers, expected=(303,))
        self.last_step = step

    def password_step(self, browser):
        resp = sign_in(browser, self.user, self.password)
        if not resp.headers.get("Location", "").endswith("/login/second-factor"):
            violation("a password alone signed in someone who has TOTP")
            raise Failed("no second factor asked")

    def sign_in(self, browser):
        # A step not used yet, and not one the clock has left behind (after a fault, say).
        step = max(self.last_step + 1, int(time.time()) // 30)
        # The server takes a code one step ahead of its clock, no further.
        wait = (step - 1) * 30 - time.time()
        if wait > 0:
            time.sleep(wait)
        code = totp(self.secret, step)
        self.password_step(browser)
        self.last_step = step  # spent once sent, whether or not the answer arrives
        body, headers = form({"csrf": browser.csrf(), "code": code})
        browser.web("login-totp", "POST", "/login/second-factor", body, headers, expected=(303,))
        if self.replays_left and random.random() < 0.2:
            self.replays_left -= 1
            thief = Browser(self.thief)
            self.password_step(thief)
            body, headers = form({"csrf": thief.csrf(), "code": code})
            resp, _ = thief.web("login-totp-replay", "POST", "/login/second-factor", body, headers,
                                expected=(401, 303))
            if resp.status == 303:
                violation("a TOTP code signed in twice")


class Passkey(Password):
    """A passkey made in software: a P-256 key the server registers with "none" attestation,
    discoverable, user verification claimed. A synced one (backup eligible and backed up) sends
    counter 0 as platforms do; a device-bound one counts up like a security key. Now and then an
    answer already accepted is sent to a new ceremony, and must be refused."""

    def __init__(self, user, password, n, synced):
        super().__init__(user, password)
        # Sign-in ceremonies are limited per client address (30 a minute).
        self.source = f"127.0.2.{n}"
        self.synced = synced
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential = secrets.token_bytes(32)
        self.flags = 0x05 | (0x18 if synced else 0)  # UP, UV; BE and BS when synced
        self.counter = 0
        self.handle = None
        self.last_start = 0.0

    def browser(self):
        return Browser(self.source)

    def next_counter(self):
        if not self.synced:
            self.counter += 1
        return self.counter.to_bytes(4, "big")

    def client_data(self, kind, challenge):
        return json.dumps({"type": kind, "challenge": challenge, "origin": cfg["base"], "crossOrigin": False}).encode()

    def enrol(self):
        browser = self.browser()
        sign_in(browser, self.user, self.password)
        _, started = browser.json("passkey-enrol-start", "/account/webauthn/register/start", {
            "csrf": browser.csrf(), "kind": "passkey", "name": "soak passkey", "password": self.password})
        options = started["options"]["publicKey"]
        self.handle = unb64u(options["user"]["id"])
        public = self.key.public_key().public_numbers()
        cose = cbor({1: 2, 3: -7, -1: 1, -2: public.x.to_bytes(32, "big"), -3: public.y.to_bytes(32, "big")})
        authenticator = (hashlib.sha256(options["rp"]["id"].encode()).digest() + bytes([self.flags | 0x40])
                         + self.next_counter() + bytes(16) + len(self.credential).to_bytes(2, "big")
                         + self.credential + cose)
        browser.json("passkey-enrol-finish", "/account/webauthn/register/finish", {
            "ceremony": started["ceremony"],
            "credential": {
                "id": b64u(self.credential), "rawId": b64u(self.credential), "type": "public-key",
                "extensions": {},
                "response": {
                    "attestationObject": b64u(cbor({"fmt": "none", "attStmt": {}, "authData": authenticator})),
                    "clientDataJSON": b64u(self.client_data("webauthn.create", options["challenge"])),
                },
            }})

    def start(self, browser):
        wait = self.last_start + 2.5 - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self.last_start = time.monotonic()
        _, started = browser.json("passkey-start", "/login/passkey/start", {"csrf": browser.csrf()})
        return started

    def sign_in(self, browser):
        browser.web("login-page", "GET", "/login")
        started = self.start(browser)
        options = started["options"]["publicKey"]
        authenticator = (hashlib.sha256(options["rpId"].encode()).digest() + bytes([self.flags])
                         + self.next_counter())
        client = self.client_data("webauthn.get", options["challenge"])
        signature = self.key.sign(authenticator + hashlib.sha256(client).digest(), ec.ECDSA(hashes.SHA256()))
        answer = {
            "return_to": "/",
            "credential": {
                "id": b64u(self.credential), "rawId": b64u(self.credential), "type": "public-key",
                "extensions": {},
                "response": {
                    "authenticatorData": b64u(authenticator), "clientDataJSON": b64u(client),
                    "signature": b64u(signature), "userHandle": b64u(self.handle),
                },
            }}
        browser.json("login-passkey", "/login/passkey/finish", {"ceremony": started["ceremony"], **answer})
        if random.random() < 0.1:
            thief = self.browser()
            thief.web("login-page", "GET", "/login")
            other = self.start(thief)
            resp, _ = thief.json("login-passkey-replay", "/login/passkey/finish",
                                 {"ceremony": other["ceremony"], **answer}, expected=(401, 200))
            if resp.status == 200:
                violation("a passkey answer signed in twice")


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


def day(person):
    """One person's day, from sign-in to sign-off; raises Failed when the server did not answer."""
    browser = person.browser()
    person.sign_in(browser)
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


def app_cycle(person):
    """An app's life: the admin installs the demo app from the catalog (the local process
    driver), someone signs in to it through the edge with OpenID Connect, the admin uninstalls
    it, and nothing of it may be left: no route at the edge, no app, no client, no route in the
    API, no process, no files."""
    started = time.monotonic()
    api("app-install", "POST", "/apps",
        {"app": "demo", "user_groups": ["staff"], "admin_groups": [], "update_policy": "none"}, expected=(202,))
    while True:
        status, data = api("app-status", "GET", "/apps/demo", expected=(200, 404))
        if status == 404:
            # Stackgate restarted meanwhile and undid the install it had not finished (audited
            # as app.install.abandoned); anything else is an install lost.
            if not fault_active(time.time()):
                violation("an install in progress vanished")
            raise Failed("install abandoned")
        view = json.loads(data)
        if view["status"] != "installing" or time.monotonic() - started > 90:
            break
        time.sleep(0.2)
    if not record("app-ready", view["status"], time.monotonic() - started, ("installed",)):
        print(f"app install ended {view['status']}: {view.get('error')}", file=sys.stderr, flush=True)
        try:
            log = open(f"{cfg['data_dir']}/apps/demo/app.log").read()[-1500:]
            print("its log ends: " + log.replace("\n", "\n  "), file=sys.stderr, flush=True)
        except OSError:
            pass
        raise Failed("install")
    host = f"demo.localhost:{EDGE}"
    browser = person.browser()
    person.sign_in(browser)
    resp, _ = browser.call("app-login", "GET", "127.0.0.1", EDGE, "/login", expected=(302, 303), host_header=host)
    asked = urllib.parse.urlparse(resp.headers["Location"])
    resp, _ = browser.web("app-authorize", "GET", f"{asked.path}?{asked.query}", expected=(302, 303))
    back = urllib.parse.urlparse(resp.headers["Location"])
    browser.call("app-callback", "GET", "127.0.0.1", EDGE, f"{back.path}?{back.query}", expected=(302, 303),
                 host_header=host)
    _, me = browser.call("app-use", "GET", "127.0.0.1", EDGE, "/me", host_header=host)
    if json.loads(me).get("email") != f"{person.user}@soak.example":
        violation(f"the app was told someone else signed in: {me[:200]!r}")
    # The process as it is now (the supervisor may have started it again since).
    pid = json.loads(api("app-status", "GET", "/apps/demo")[1]).get("pid")
    started = process_start(pid) if pid else None
    api("app-uninstall", "DELETE", "/apps/demo", expected=(204,))
    resp, _ = browser.call("app-gone", "GET", "127.0.0.1", EDGE, "/me", expected=(404, 200), host_header=host)
    if resp.status == 200:
        violation("the edge still routed to an uninstalled app")
    for path in ("/apps/demo", "/clients/demo"):
        status, _ = api("app-gone", "GET", path, expected=(404, 200))
        if status == 200:
            violation(f"{path} is left after uninstalling")
    _, routes = api("app-gone", "GET", "/proxy/routes")
    if any(route.get("app") == "demo" for route in json.loads(routes)):
        violation("a route to the demo app is left after uninstalling")
    if started is not None and process_start(pid) == started:
        violation(f"the app's process {pid} is left after uninstalling")
    if os.path.exists(f"{cfg['data_dir']}/apps/demo"):
        violation("the app's files are left after uninstalling")
    _, page = browser.web("portal", "GET", "/")
    body, headers = form({"csrf": csrf_of(page)})
    browser.web("sign-off", "POST", "/logout", body, headers, expected=(200, 303))


def process_start(pid):
    """When process `pid` started, while it runs (not a zombie); None once it is gone."""
    try:
        fields = open(f"/proc/{pid}/stat", "rb").read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == b"Z" else int(fields[19])


def installer(person):
    while time.monotonic() < DEADLINE:
        try:
            app_cycle(person)
        except Failed:
            # Whatever the cycle left (a fault in the middle): take it away before the next,
            # once the server answers and any install in progress is over.
            for _ in range(120):
                try:
                    status, _ = api("app-cleanup", "DELETE", "/apps/demo", expected=(204, 404, 409))
                    if status != 409:
                        break
                except Failed:
                    pass
                time.sleep(0.5)
        except Exception as e:
            with lock:
                outcomes[("driver", f"error-{type(e).__name__}")] = outcomes.get(("driver", f"error-{type(e).__name__}"), 0) + 1
        time.sleep(1)


def virtual_user(person):
    while time.monotonic() < DEADLINE:
        try:
            day(person)
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
    passkeys, totps = cfg.get("passkey_users", 0), cfg.get("totp_users", 0)
    people = []
    for n, (user, password) in enumerate(users[1:], 1):
        if n <= passkeys:
            people.append(Passkey(user, password, n, synced=n % 2 == 1))
        elif n <= passkeys + totps:
            people.append(Totp(user, password, n))
        else:
            people.append(Password(user, password))
    for person in people:
        try:
            person.enrol()
        except Failed as e:
            print(f"could not enrol {person.user}'s second factor: {e}", file=sys.stderr)
            sys.exit(1)
    threads = [threading.Thread(target=virtual_user, args=(person,), daemon=True) for person in people]
    threads.append(threading.Thread(target=witness, args=users[0], daemon=True))
    threads.append(threading.Thread(target=admin, daemon=True))
    if cfg.get("apps_user"):
        threads.append(threading.Thread(target=installer, args=(Password(*cfg["apps_user"]),), daemon=True))
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
    print(f"{elapsed:.0f} s, {len(users) - 1} virtual users ({passkeys} with passkeys, {totps} with TOTP) + 1 witness"
          f" + 1 admin{' + 1 installing apps' if cfg.get('apps_user') else ''}: {total_ok} requests answered as expected, {total_ok / elapsed:.0f}/s")
    print(f"{'operation':<21}{'ok':>8}{'p50 ms':>9}{'p99 ms':>9}  other outcomes")
    for op in sorted({op for op, _ in outcomes}):
        ok = outcomes.get((op, "ok"), 0)
        lat = latencies.get(op, [])
        other = ", ".join(f"{kind} {n}" for (o, kind), n in sorted(outcomes.items()) if o == op and kind != "ok")
        print(f"{op:<21}{ok:>8}{percentile(lat, 50) * 1000:>9.1f}{percentile(lat, 99) * 1000:>9.1f}  {other}")
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
    if violations:
        kinds = {}
        for what in violations:
            kind = re.sub(r"\d+", "N", what)
            kinds[kind] = kinds.get(kind, 0) + 1
        print("violations: " + "; ".join(f"{what} ({n})" for what, n in sorted(kinds.items())))
    if violations or unexpected or not growth_ok:
        print(f"FAILED: {len(violations)} violations, {sum(unexpected.values())} unexpected outcomes")
        sys.exit(1)
    print("passed: no violation, every failure inside a fault window")


main()
