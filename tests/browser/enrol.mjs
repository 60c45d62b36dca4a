// A member of a group whose policy requires phishing-resistant sign-in, without a passkey yet,
// signs in with a password in Debian's Chromium: they must land on their sign-in methods page,
// reach nothing else, add a passkey (virtual platform authenticator), and then go on.
// Usage: node enrol.mjs BASE_URL USERNAME PASSWORD SCREENSHOT_DIR. Prints one JSON line.
import { args, authenticator, run, signIn } from "./lib.mjs";

const { base, username, password, shots } = args();
await run(shots, async (browser, result) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const cdp = await context.newCDPSession(page);
  await authenticator(cdp);
  await page.goto(`${base}/login`);
  // Conditional mediation finds no passkey for this browser yet; the password it is.
  await signIn(page, username, password);
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
});
