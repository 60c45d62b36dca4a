// An app installed through Stackgate, in Debian's Chromium: the demo app sends the person to
// Stackgate, they sign in, land back in the app signed in; they sign out in Stackgate, and the
// app's own session is gone (back-channel logout).
// Usage: node demo.mjs BASE_URL USERNAME PASSWORD SCREENSHOT_DIR APP_URL. Prints one JSON line.
import { args, run, signIn } from "./lib.mjs";

const { base, username, password, shots } = args();
const app = process.argv[6];

await run(shots, async (browser, result) => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });

  await page.goto(`${app}/`);
  result.before = await page.locator("#who").innerText();
  await page.getByRole("link", { name: "Sign in with Stackgate" }).click();
  await page.getByLabel("Username").waitFor();
  result.sign_in_page = new URL(page.url()).origin;
  await signIn(page, username, password);
  await page.waitForURL(`${app}/`);
  result.signed_in = await page.locator("#who").innerText();
  await shot("demo-signed-in");

  // Stackgate's home lists the app in the person's launcher; admins manage it there too.
  await page.goto(`${base}/admin/apps`);
  await shot("admin-apps");
  await page.goto(`${base}/`);
  result.launcher = await page.locator(".launcher a").allInnerTexts();
  await shot("launcher");

  // Sign out where people sign in: Stackgate's own page.
  await page.getByRole("button", { name: "Sign out", exact: true }).click();
  await page.waitForLoadState();
  await shot("stackgate-signed-out");

  // The app hears it on its back channel; its page says so on the next load.
  for (let i = 0; i < 50; i++) {
    await page.goto(`${app}/`);
    result.after = await page.locator("#who").innerText();
    if (result.after.startsWith("Not signed in")) break;
    await page.waitForTimeout(100);
  }
  await shot("demo-after-sign-out");
});
