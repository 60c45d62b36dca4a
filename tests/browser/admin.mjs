// The admin console and the user portal in Debian's Chromium: an admin invites a person from
// the People page; the person opens the link from the email aiosmtpd captured, chooses a
// password, adds a passkey (virtual authenticator) and sees exactly their group's apps; the
// admin moves them to another group and the launcher and the edge follow; the admin signs them
// out everywhere. Every page is saved at a phone's width and a desktop's.
// Usage: node admin.mjs BASE_URL ADMIN PASSWORD SCREENSHOT_DIR MAILDIR NOTES_URL
// Prints one JSON line.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { args, authenticator, run, signIn } from "./lib.mjs";

const { base, username, password, shots } = args();
const [maildir, notesUrl] = process.argv.slice(6);
const PASSWORD = "a long enough password for maya";
const VIEWPORTS = { narrow: { width: 390, height: 844 }, wide: { width: 1280, height: 900 } };

// The newest message's body, quoted-printable soft line breaks undone.
function newestMail() {
  const dir = `${maildir}/new`;
  const files = readdirSync(dir).map((f) => `${dir}/${f}`);
  files.sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs);
  const raw = readFileSync(files[files.length - 1], "utf8");
  return raw.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
}

await run(shots, async (browser, result) => {
  const shotsOf = async (page, name) => {
    for (const [label, size] of Object.entries(VIEWPORTS)) {
      await page.setViewportSize(size);
      await page.screenshot({ path: `${shots}/${name}-${label}.png`, fullPage: true });
    }
    await page.setViewportSize(VIEWPORTS.wide);
  };

  // The admin, on a desktop.
  const adminContext = await browser.newContext({ viewport: VIEWPORTS.wide });
  const admin = await adminContext.newPage();
  admin.setDefaultTimeout(15000);
  await admin.goto(`${base}/admin/users`);
  await signIn(admin, username, password);
  await admin.waitForURL(`${base}/admin/users`);
  await shotsOf(admin, "admin-people");

  // Invite Maya into the newsroom.
  await admin.locator("#username").fill("maya");
  await admin.locator("#display_name").fill("Maya Okafor");
  await admin.locator("#email").fill("maya@example.org");
  await admin.getByRole("checkbox", { name: /newsroom/ }).check();
  await admin.getByRole("button", { name: "Add person" }).click();
  await admin.locator("#link").waitFor();
  result.invited = await admin.locator("#link").innerText();
  await shotsOf(admin, "admin-person-invited");

  // Maya, on her phone, from the email.
  const mail = newestMail();
  const link = mail.match(/https?:\/\/\S+\/account\/link\?token=\S+/)[0];
  const mayaContext = await browser.newContext({ viewport: VIEWPORTS.narrow, isMobile: true, hasTouch: true });
  // Passkey autofill on the sign-in page would sign her straight back in (the virtual
  // authenticator answers at once); the test wants to see the page that asks.
  await mayaContext.addInitScript(() => {
    if (window.PublicKeyCredential) PublicKeyCredential.isConditionalMediationAvailable = undefined;
  });
  const maya = await mayaContext.newPage();
  maya.setDefaultTimeout(15000);
  const cdp = await mayaContext.newCDPSession(maya);
  await authenticator(cdp);
  await maya.goto(link);
  await shotsOf(maya, "invitation");
  await maya.locator("#password").fill(PASSWORD);
  await maya.locator("#password_confirm").fill(PASSWORD);
  await maya.getByRole("button", { name: "Continue" }).click();
  try {
    await maya.waitForURL(`${base}/account/security`);
  } catch (err) {
    throw new Error(`${err}\nMaya's page ${maya.url()}:\n${await maya.locator("body").innerText()}`);
  }
  await maya.locator(`input[name=kind][value=passkey]`).check();
  await maya.locator("#key-name").fill("Maya's phone");
  await maya.locator("#key-password").fill(PASSWORD);
  await maya.getByRole("button", { name: "Add", exact: true }).click();
  await maya.locator("#webauthn-keys").getByText("Maya's phone").waitFor();
  await shotsOf(maya, "account-security");
  await maya.goto(`${base}/`);
  result.launcher_newsroom = await maya.locator(".launcher a").allInnerTexts();
  await shotsOf(maya, "launcher");
  // The edge agrees: Notes is for finance, and Maya is not in it (yet).
  const denied = await maya.goto(notesUrl);
  result.notes_before = denied.status();
  await shotsOf(maya, "edge-denied");
  await maya.goto(`${base}/account/sessions`);
  result.sessions_rows = await maya.locator("#sessions tbody tr").count();
  await shotsOf(maya, "sessions");

  // The admin sees her passkey and session, and moves her from the newsroom to finance.
  await admin.goto(`${base}/admin/users?q=maya`);
  await admin.getByRole("link", { name: "maya", exact: true }).click();
  result.devices = await admin.locator("#devices").innerText();
  await admin.getByRole("button", { name: "Remove from newsroom" }).click();
  await admin.locator("#done").waitFor();
  await admin.getByLabel("Add to a group").selectOption("finance");
  await admin.getByRole("button", { name: "Add", exact: true }).click();
  await admin.locator("#done").waitFor();
  result.groups_after = await admin.locator("#member-of").innerText();
  await shotsOf(admin, "admin-person");

  await maya.goto(`${base}/`);
  result.launcher_finance = await maya.locator(".launcher a").allInnerTexts();
  const allowed = await maya.goto(notesUrl);
  result.notes_after = allowed.status();

  // Signed out everywhere by the admin: Stackgate and the edge both ask her to sign in.
  await admin.getByRole("button", { name: "Sign out everywhere" }).click();
  await admin.locator("#done").waitFor();
  await maya.goto(`${base}/`);
  result.after_sign_out = new URL(maya.url()).pathname;
  await maya.goto(notesUrl);
  result.notes_after_sign_out = new URL(maya.url()).pathname;

  // The rest of the console, for the record.
  await admin.goto(`${base}/admin/groups`);
  await shotsOf(admin, "admin-groups");
  await admin.getByRole("link", { name: "finance" }).click();
  await admin.locator("#members").waitFor();
  await shotsOf(admin, "admin-group");
  await admin.goto(`${base}/admin/audit?target=maya`);
  result.audit = await admin.locator("#audit tbody").innerText();
  await shotsOf(admin, "admin-audit");
  const csv = await adminContext.request.get(await admin.locator("#export-csv").getAttribute("href").then((h) => new URL(h, base).href));
  result.csv_status = csv.status();
  result.csv_has_invite = (await csv.text()).includes("user.invite");
  await admin.goto(`${base}/admin/apps`);
  await shotsOf(admin, "admin-apps");
  await admin.getByRole("link", { name: "Notes", exact: true }).click();
  await admin.locator("h1").waitFor();
  await shotsOf(admin, "admin-app");
  await admin.goto(`${base}/admin/clients`);
  await shotsOf(admin, "admin-clients");
  await admin.goto(`${base}/admin/policy`);
  result.generated_policy = await admin.locator("#generated").innerText();
  await shotsOf(admin, "admin-policy");
  await admin.goto(`${base}/admin/settings`);
  await shotsOf(admin, "admin-settings");

  // On a phone the tables drop their header row; each value then says which column it is.
  await admin.setViewportSize(VIEWPORTS.narrow);
  await admin.goto(`${base}/admin/users`);
  result.narrow_state_label = await admin
    .locator("#people tbody td[data-label=State]")
    .first()
    .evaluate((td) => getComputedStyle(td, "::before").content);
});
