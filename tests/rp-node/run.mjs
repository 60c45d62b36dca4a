// A real relying party (openid-client, the certified RP library) driving Stackgate end to end:
// discovery, code flow with PKCE through the login form, userinfo, introspection, refresh
// rotation and refresh-token reuse detection. Prints one JSON line; exit 0 only if all passed.
import { createHash } from 'node:crypto';
import * as client from 'openid-client';

const TIMEOUT_S = 10; // an unreachable issuer should fail in seconds, not hang a CI job
const steps = [];
let current = 'env';

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`environment variable ${name} is required`);
  return value;
}

// Errors from fetch/openid-client hide the useful part (ECONNREFUSED, the OAuth error code)
// in `cause`; flatten the chain into one readable line.
function describe(err) {
  const parts = [];
  for (let e = err; e; e = e.cause) {
    if (typeof e !== 'object') { parts.push(String(e)); break; }
    let text = e.message || e.code || JSON.stringify(e);
    if (e.error) text += ` [${e.error}${e.error_description ? `: ${e.error_description}` : ''}]`;
    if (e.status) text += ` (HTTP ${e.status})`;
    parts.push(text);
    if (parts.length > 4) break;
  }
  return parts.join(' <- ');
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

// --- A minimal browser: manual redirects, host-only cookie jar, same-origin guard. ---
const jar = new Map();

async function browse(issuer, url, init = {}) {
  // Only ever talk to the issuer: this is also what guarantees REDIRECT_URI is never fetched.
  check(new URL(url).origin === new URL(issuer).origin, `refusing to fetch off-issuer URL ${url}`);
  const headers = new Headers(init.headers);
  if (jar.size) headers.set('cookie', [...jar].map(([k, v]) => `${k}=${v}`).join('; '));
  const res = await fetch(url, { ...init, headers, redirect: 'manual', signal: AbortSignal.timeout(TIMEOUT_S * 1000) });
  for (const line of res.headers.getSetCookie()) {
    const [pair, ...attrs] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq < 1) continue;
    const name = pair.slice(0, eq).trim();
    const expired = attrs.some((a) => /^\s*max-age\s*=\s*(0|-)/i.test(a));
    if (expired) jar.delete(name); else jar.set(name, pair.slice(eq + 1).trim());
  }
  return res;
}

async function expect303(res, what) {
  if (res.status !== 303) {
    const body = (await res.text().catch(() => '')).replace(/\s+/g, ' ').slice(0, 300);
    throw new Error(`${what}: expected 303, got ${res.status}: ${body}`);
  }
  const location = res.headers.get('location');
  check(location, `${what}: 303 without Location`);
  return location;
}

// Templates HTML-escape attribute values (minijinja escapes / as &#x2f;), so undo that.
function decodeEntities(s) {
  const named = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, ent) => {
    if (ent[0] === '#') {
      const code = ent[1] === 'x' || ent[1] === 'X' ? parseInt(ent.slice(2), 16) : parseInt(ent.slice(1), 10);
      return String.fromCodePoint(code);
    }
    return named[ent.toLowerCase()] ?? m;
  });
}

function hiddenInputs(html) {
  const out = {};
  for (const [tag] of html.matchAll(/<input\b[^>]*>/gi)) {
    const attrs = Object.fromEntries([...tag.matchAll(/([\w-]+)\s*=\s*"([^"]*)"/g)].map(([, k, v]) => [k.toLowerCase(), v]));
    if (attrs.type?.toLowerCase() === 'hidden' && attrs.name) out[attrs.name] = decodeEntities(attrs.value ?? '');
  }
  return out;
}

// openid-client does not check at_hash for the code flow (it is optional there), so when the
// ID token carries one, verify it: left half of SHA-256(access_token), base64url (ES256).
function atHash(accessToken) {
  const digest = createHash('sha256').update(accessToken, 'ascii').digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}

async function main() {
  const ISSUER = env('ISSUER'), CLIENT_ID = env('CLIENT_ID'), CLIENT_SECRET = env('CLIENT_SECRET');
  const REDIRECT_URI = env('REDIRECT_URI'), USERNAME = env('USERNAME'), PASSWORD = env('PASSWORD');

  current = 'discovery';
  // Pinning ES256 makes the library reject any other ID token alg, whatever discovery says.
  const config = await client.discovery(
    new URL(ISSUER), CLIENT_ID,
    { client_secret: CLIENT_SECRET, id_token_signed_response_alg: 'ES256' },
    client.ClientSecretBasic(CLIENT_SECRET), // the library default is client_secret_post
    { execute: [client.allowInsecureRequests], timeout: TIMEOUT_S },
  ).catch((err) => {
    throw new Error(`cannot discover ${ISSUER}/.well-known/openid-configuration`, { cause: err });
  });
  steps.push('discovery');

  current = 'authorize';
  const pkceCodeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState(), nonce = client.randomNonce();
  const authUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: 'openid profile email groups offline_access',
    code_challenge: await client.calculatePKCECodeChallenge(pkceCodeVerifier),
    code_challenge_method: 'S256',
    state, nonce,
  });
  const toLogin = new URL(await expect303(await browse(ISSUER, authUrl), 'GET /authorize (no session)'), ISSUER);
  check(toLogin.pathname === '/login', `expected redirect to /login, got ${toLogin}`);

  const loginPage = await browse(ISSUER, toLogin);
  check(loginPage.status === 200, `GET /login: expected 200, got ${loginPage.status}`);
  const { csrf, return_to } = hiddenInputs(await loginPage.text());
  check(csrf && return_to, 'login page lacks hidden csrf/return_to inputs');

  const origin = new URL(ISSUER).origin; // what a browser sends on a same-origin form POST
  const posted = await browse(ISSUER, new URL('/login', ISSUER), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin, 'sec-fetch-site': 'same-origin' },
    body: new URLSearchParams({ csrf, username: USERNAME, password: PASSWORD, return_to }),
  });
  const afterLogin = await expect303(posted, 'POST /login');
  check(afterLogin === return_to, `POST /login redirected to ${afterLogin}, expected ${return_to}`);

  const callback = await expect303(await browse(ISSUER, new URL(afterLogin, ISSUER)), 'GET /authorize (signed in)');
  check(callback.startsWith(REDIRECT_URI), `expected redirect to ${REDIRECT_URI}, got ${callback}`);
  const callbackUrl = new URL(callback); // parsed only: nothing listens at REDIRECT_URI
  for (const p of ['code', 'state', 'iss']) check(callbackUrl.searchParams.get(p), `callback lacks "${p}": ${callback}`);
  steps.push('authorize');

  current = 'code';
  // Validates state, iss, then the ID token: ES256 signature via jwks_uri, iss, aud, exp, nonce.
  const tokens = await client.authorizationCodeGrant(config, callbackUrl,
    { pkceCodeVerifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true });
  const claims = tokens.claims();
  check(tokens.refresh_token, 'no refresh_token despite offline_access');
  if (claims.at_hash !== undefined) check(claims.at_hash === atHash(tokens.access_token), 'ID token at_hash mismatch');
  const { sub, preferred_username, groups, amr } = claims;
  steps.push('code');

  current = 'userinfo';
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, sub);
  check(userinfo.preferred_username === USERNAME, `userinfo preferred_username ${userinfo.preferred_username} != ${USERNAME}`);
  steps.push('userinfo');

  current = 'introspect';
  const live = await client.tokenIntrospection(config, tokens.access_token);
  check(live.active === true, `fresh access token introspected as ${JSON.stringify(live)}`);
  steps.push('introspect');

  current = 'refresh';
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  check(refreshed.access_token, 'refresh returned no access_token');
  check(refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token, 'refresh token was not rotated');
  steps.push('refresh');

  current = 'reuse-refused';
  // Replaying the rotated-out token is the theft signal: it must fail and kill the family.
  let reuseError;
  try { await client.refreshTokenGrant(config, tokens.refresh_token); } catch (err) { reuseError = err; }
  check(reuseError, 'reused refresh token was accepted');
  check(reuseError.error === 'invalid_grant', `reuse failed, but not with invalid_grant: ${describe(reuseError)}`);
  steps.push('reuse-refused');

  current = 'revoked-inactive';
  const dead = await client.tokenIntrospection(config, refreshed.access_token);
  check(dead.active === false, `access token still active after family revocation: ${JSON.stringify(dead)}`);
  steps.push('revoked-inactive');

  return {
    ok: true, sub, username: userinfo.preferred_username, id_token_username: preferred_username,
    groups, amr, at_hash: claims.at_hash === undefined ? 'absent' : 'verified', steps,
  };
}

try {
  console.log(JSON.stringify(await main()));
} catch (err) {
  const message = describe(err);
  console.log(JSON.stringify({ ok: false, failed: current, error: message, steps }));
  console.error(`stackgate rp-node: step "${current}" failed: ${message}`);
  process.exitCode = 1;
}
