// Codes in Debian's Chromium: TOTP enrolment (the key read off the page, codes computed by
// Debian's oathtool), sign-in with a code, a reused code refused, a recovery code that works
// once, and the sign-in delay after ten wrong passwords.
// Usage: node codes.mjs BASE_URL USERNAME PASSWORD SCREENSHOT_DIR. Prints one JSON line.
import { execFileSync } from "node:child_process";
import { args, run, signIn } from "./lib.mjs";

const { base, username, password, shots } = args();
const totp = (secret, unix) =>
  execFileSync("oathtool", ["--totp", "-b", secret, "-N", `@${unix}`]).toString().trim();

await run(shots, async (browser, result) => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } }); // a phone
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  const signInWithPassword = async (pw = password) => {
    await page.goto(`${base}/login`);
    await signIn(page, username, pw);
    await page.waitForLoadState();
  };
  const enterCode = async (code) => {
    await page.getByLabel(/Code from your authenticator app|A recovery code/).fill(code);
    await page.getByRole("button", { name: "Continue" }).click();
    await page.waitForLoadState();
  };

  // TOTP enrolment, on a phone-sized screen.
  await signInWithPassword();
  await page.goto(`${base}/account/totp`);
  await shot("totp-enrol");
  const secret = (await page.locator("#secret").innerText()).replace(/\s+/g, "");
  const now = Math.floor(Date.now() / 1000);
  const step = Math.floor(now / 30);
  await page.getByLabel("Code from the app").fill(totp(secret, now));
  await page.getByLabel("Your password, to confirm it is you").fill(password);
  await page.getByRole("button", { name: "Turn on" }).click();
  await page.waitForURL(`${base}/account/security`);
  // Recovery codes, shown once.
  await page.locator("#codes-password").fill(password);
  await page.getByRole("button", { name: /recovery codes/ }).click();
  await page.locator("#recovery-codes").waitFor();
  await shot("recovery-codes");
  const codes = await page.locator("#recovery-codes code").allInnerTexts();
  result.recovery_count = codes.length;
  await context.clearCookies();

  // Password, then the next step's code from oathtool; the same code again is refused.
  await signInWithPassword();
  result.after_password = new URL(page.url()).pathname;
  await shot("second-factor-code");
  const next = totp(secret, (step + 1) * 30);
  await enterCode(next);
  result.after_code = new URL(page.url()).pathname;
  await context.clearCookies();
  await signInWithPassword();
  await enterCode(next);
  result.reused_code_error = await page.locator("#form-error").innerText();
  await shot("second-factor-reused-code");

  // A recovery code works once.
  await enterCode(codes[0]);
  result.after_recovery = new URL(page.url()).pathname;
  await context.clearCookies();
  await signInWithPassword();
  await enterCode(codes[0]);
  result.reused_recovery_error = await page.locator("#form-error").innerText();
  await context.clearCookies();

  // Ten wrong passwords: the delay starts; the right password waits, then works.
  const statuses = [];
  for (let i = 0; i < 10; i++) {
    const response = page.waitForResponse((r) => r.url() === `${base}/login` && r.request().method() === "POST");
    await signInWithPassword("wrong password");
    statuses.push((await response).status());
  }
  result.wrong_statuses = statuses;
  // Push the delay up to a few seconds (waiting out the shorter ones), so that the right
  // password below certainly arrives while a delay runs, however fast the pages load.
  for (let i = 0; i < 8; i++) {
    await signInWithPassword("wrong password");
    const text = await page.locator("#form-error").innerText().catch(() => "");
    const wait = Number((text.match(/Wait (\d+) second/) || [])[1] || 0);
    if (wait >= 3) break;
    if (wait > 0) await page.waitForTimeout(wait * 1000 + 200);
  }
  await signInWithPassword();
  result.throttled_message = await page.locator("#form-error").innerText();
  await shot("login-throttled");
  const seconds = Number((result.throttled_message.match(/Wait (\d+) second/) || [])[1] || 0);
  result.wait_seconds = seconds;
  await page.waitForTimeout(seconds * 1000 + 300);
  await signInWithPassword();
  result.after_wait = new URL(page.url()).pathname;
});
