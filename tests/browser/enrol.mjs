// A member of a group whose policy requires phishing-resistant sign-in, without a passkey yet,
// signs in with a password in Debian's Chromium: they must land on their sign-in methods page,
// reach nothing else, add a passkey (virtual platform authenticator), and then go on.
// Usage: node enrol.mjs BASE_URL USERNAME PASSWORD SCREENSHOT_DIR. Prints one JSON line.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const [base, username, password, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/lib/chromium/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--host-resolver-rules=MAP localhost 127.0.0.1"],
});
const result = {};
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable", { enableUI: false });
  await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true,
      isUserVerified: true, automaticPresenceSimulation: true },
  });
  await page.goto(`${base}/login`);
  // Conditional mediation finds no passkey for this browser yet; the password it is.
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.waitForURL(/\/account\/security/);
  result.notice = await page.locator("#must-add").innerText();
  await page.screenshot({ path: `${shots}/enrolment-required.png`, fullPage: true });
  await page.goto(`${base}/`);
  result.home_redirects_to = new URL(page.url()).pathname;
  await page.locator("#key-name").fill("phone");
  await page.locator("#key-password").fill(password);
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await page.locator("#webauthn-keys").getByText("phone").waitFor();
  result.notice_after = await page.locator("#must-add").count();
  await page.goto(`${base}/`);
  result.home = await page.locator("main").innerText();
  result.cookie = (await context.cookies()).find((c) => c.name.endsWith("stackgate_session"))?.value ?? null;
} catch (err) {
  result.failure = String(err && err.stack ? err.stack : err);
  try {
    const [page] = browser.contexts()[0].pages();
    result.failure_url = page.url();
    result.failure_page = (await page.locator("body").innerText()).slice(0, 2000);
  } catch (_) {
    // The failure itself is what matters.
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
