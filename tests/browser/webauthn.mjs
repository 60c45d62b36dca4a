// Drives Debian's Chromium through Stackgate's pages with the DevTools protocol's virtual
// WebAuthn authenticators, as a person with a laptop (platform passkey) and a USB security key
// would. Usage: node webauthn.mjs BASE_URL USERNAME PASSWORD SCREENSHOT_DIR
// Prints one JSON line: the session cookies each sign-in produced, for the Rust test to check
// what apps receive, and what the pages said.
import { args, authenticator, enterUsername, run, signIn } from "./lib.mjs";

const { base, username, password, shots } = args();
await run(shots, async (browser, result) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const cdp = await context.newCDPSession(page);
  const platform = await authenticator(cdp);

  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  const sessionCookie = async () =>
    (await context.cookies()).find((c) => c.name.endsWith("stackgate_session"))?.value ?? null;
  const signOut = async () => {
    await page.goto(`${base}/`);
    await page.getByRole("button", { name: "Sign out", exact: true }).click();
    await page.waitForURL(/./);
    await page.getByText("You are signed out").waitFor();
  };
  const signInWithPassword = async () => {
    await page.goto(`${base}/login`);
    await signIn(page, username, password);
  };
  const addKey = async (kind, name) => {
    await page.goto(`${base}/account/security`);
    await page.locator(`input[name=kind][value=${kind}]`).check();
    await page.locator("#key-name").fill(name);
    await page.locator("#key-password").fill(password);
    await page.getByRole("button", { name: "Add", exact: true }).click();
    await page.locator("#webauthn-keys").getByText(name).waitFor();
  };

  // 1. Register a passkey on the laptop, sign out, sign in with it alone.
  await signInWithPassword();
  await page.waitForURL(`${base}/`);
  await addKey("passkey", "work laptop");
  await shot("account-security-with-passkey");
  const stored = await cdp.send("WebAuthn.getCredentials", { authenticatorId: platform.authenticatorId });
  result.passkey_resident = stored.credentials.length === 1 && stored.credentials[0].isResidentCredential;
  await signOut();
  // Autofill (conditional mediation) on the sign-in page: the virtual authenticator answers
  // it at once, as a person picking their passkey from the username field's suggestions.
  await page.goto(`${base}/login`);
  await page.waitForURL(`${base}/`);
  result.autofill_home = await page.locator("main").innerText();
  await signOut();
  // The explicit button, where autofill is not available.
  await page.addInitScript(() => {
    if (window.PublicKeyCredential) PublicKeyCredential.isConditionalMediationAvailable = undefined;
  });
  await page.goto(`${base}/login`);
  await shot("login");
  await page.getByRole("button", { name: "Sign in with a passkey" }).click();
  await page.waitForURL(`${base}/`);
  result.passkey_home = await page.locator("main").innerText();
  result.passkey_cookie = await sessionCookie();
  // Username first: the account's own methods come next, its passkey among them.
  await context.clearCookies();
  await page.goto(`${base}/login`);
  await enterUsername(page, username);
  await page.locator("#signing-in-as").waitFor();
  result.methods_offered = await page.locator("main").innerText();
  await shot("login-methods");
  await page.getByRole("button", { name: "Sign in with a passkey" }).click();
  await page.waitForURL(`${base}/`);
  result.methods_passkey_home = await page.locator("main").innerText();

  // 2. A USB security key as the second step after the password.
  await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId: platform.authenticatorId });
  const usb = await authenticator(cdp, { transport: "usb", hasResidentKey: false });
  await addKey("security_key", "blue key");
  // Forget the session without ending it, so the Rust test can use it afterwards.
  await context.clearCookies();
  await signInWithPassword();
  await page.waitForURL(`${base}/login/second-factor`);
  await shot("second-factor");
  await page.getByRole("button", { name: "Use my security key" }).click();
  await page.waitForURL(`${base}/`);
  result.security_key_cookie = await sessionCookie();

  // 3. A cloned key: the same credential with its signature counter set back.
  const keys = await cdp.send("WebAuthn.getCredentials", { authenticatorId: usb.authenticatorId });
  const key = keys.credentials[0];
  await cdp.send("WebAuthn.removeCredential", { authenticatorId: usb.authenticatorId, credentialId: key.credentialId });
  await cdp.send("WebAuthn.addCredential", { authenticatorId: usb.authenticatorId, credential: { ...key, signCount: 0 } });
  await context.clearCookies();
  await signInWithPassword();
  await page.waitForURL(`${base}/login/second-factor`);
  await page.getByRole("button", { name: "Use my security key" }).click();
  const error = page.locator("#webauthn-error");
  await error.waitFor({ state: "visible" });
  result.clone_error = await error.innerText();
  result.clone_url = page.url();
  await shot("cloned-key-refused");
});
