// What every browser script shares: Debian's Chromium, launched headless with the flags that
// keep it quiet here, and one JSON line on stdout with what happened (or how it failed, with
// the page it failed on).
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

export function args() {
  const [base, username, password, shots] = process.argv.slice(2);
  mkdirSync(shots, { recursive: true });
  return { base, username, password, shots };
}

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/lib/chromium/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // The server and the edge listen on 127.0.0.1; Chromium may try ::1 first for
      // localhost and its subdomains (the apps' hosts).
      "--host-resolver-rules=MAP localhost 127.0.0.1, MAP *.localhost 127.0.0.1",
    ],
  });
}

// Runs `steps(browser, result)` and prints `result` as one JSON line, whatever happens.
export async function run(shots, steps) {
  const browser = await launch();
  const result = {};
  try {
    await steps(browser, result);
  } catch (err) {
    result.failure = String(err && err.stack ? err.stack : err);
    try {
      const [page] = browser.contexts()[0].pages();
      result.failure_url = page.url();
      result.failure_page = (await page.locator("body").innerText()).slice(0, 2000);
      await page.screenshot({ path: `${shots}/failure.png`, fullPage: true });
    } catch (_) {
      // The failure itself is what matters.
    }
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(result));
}

// A virtual authenticator on the page: a platform one (passkeys) unless told otherwise.
export async function authenticator(cdp, options = {}) {
  await cdp.send("WebAuthn.enable", { enableUI: false });
  return cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
      ...options,
    },
  });
}

// The sign-in page asks for the username first, then offers that account's methods.
export async function enterUsername(page, username) {
  await page.getByLabel("Username").fill(username);
  await page.getByRole("button", { name: "Continue", exact: true }).click();
}

export async function signIn(page, username, password) {
  await enterUsername(page, username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
}
