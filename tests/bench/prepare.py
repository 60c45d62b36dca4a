"""Prepares a load test: signs in once through the login form, then makes authorization codes
(as a browser would), exchanges half of them for refresh tokens, and writes codes, refresh
tokens, one access token and the PKCE verifier to files for wrk. Standard library only."""
import base64, hashlib, http.client, json, os, re, sys, urllib.parse

base, username, password, secret, wanted, out = sys.argv[1:7]
wanted = int(wanted)
host = urllib.parse.urlparse(base).netloc
conn = http.client.HTTPConnection(host)
cookies = {}

def call(method, path, body=None, headers=None):
    headers = dict(headers or {})
    headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    headers["Origin"] = base
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    for value in resp.headers.get_all("Set-Cookie") or []:
        name, _, rest = value.partition("=")
        cookies[name] = rest.split(";")[0]
    return resp, data

verifier = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
query = urllib.parse.urlencode({
    "response_type": "code", "client_id": "bench", "redirect_uri": "https://app.bench.example/cb",
    "scope": "openid profile email groups", "code_challenge": challenge, "code_challenge_method": "S256",
    "state": "s", "nonce": "n",
})
resp, page = call("GET", "/login")
csrf = re.search(rb'name="csrf" value="([^"]+)"', page).group(1).decode()
resp, _ = call("POST", "/login", urllib.parse.urlencode({"csrf": csrf, "username": username, "password": password, "return_to": "/"}),
               {"Content-Type": "application/x-www-form-urlencoded"})
assert resp.status == 303, f"sign-in failed: {resp.status}"

def code():
    resp, _ = call("GET", f"/authorize?{query}")
    location = resp.headers["Location"]
    return urllib.parse.parse_qs(urllib.parse.urlparse(location).query)["code"][0]

basic = base64.b64encode(f"bench:{secret}".encode()).decode()
def exchange(c):
    body = urllib.parse.urlencode({"grant_type": "authorization_code", "code": c,
                                   "redirect_uri": "https://app.bench.example/cb", "code_verifier": verifier})
    resp, data = call("POST", "/token", body, {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 200, data
    return json.loads(data)

# Refresh tokens first: codes live 60 s, so they are made last, just before the timed runs.
tokens = [exchange(code()) for _ in range(wanted)]
with open(f"{out}/refresh.txt", "w") as f:
    for t in tokens:
        f.write(t["refresh_token"] + "\n")
with open(f"{out}/access.txt", "w") as f:
    f.write(tokens[-1]["access_token"])
with open(f"{out}/verifier.txt", "w") as f:
    f.write(verifier)
with open(f"{out}/codes.txt", "w") as f:
    for _ in range(wanted):
        f.write(code() + "\n")
print(f"prepared {wanted} codes and {wanted} refresh tokens", file=sys.stderr)
