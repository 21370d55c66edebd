// End to end: the demo web app (demo/, built fresh by Vite for this run) in a real headless
// Chromium, against the real server with the demo app, its own sign-in and its dev outbox.
//
// - a new user signs up, creates organizations, deletes one: the verification dialog opens, a
//   wrong password is refused in it, the right one passes, and the organization leaves the live
//   list without a reload;
// - a user without a password (signed in by a magic link from the dev outbox) deletes one with
//   an email code: only the email method is offered;
// - a member watches, in a second browser context, the member list change as the owner adds
//   and removes someone;
// - at phone width (375 px) nothing overflows and the dialog fits.
//
// Screenshots go to <repo>/test-artifacts/ (the dialog, the main page, each failure). Chromium
// is Debian's (/usr/bin/chromium, or $CHROMIUM_PATH), driven by playwright-core: without it
// these tests FAIL, saying how to install it (`.ci/run` does). Nothing is skipped.

import assert from "node:assert/strict";
import { constants } from "node:fs";
import { access, mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";

import { chromium } from "playwright-core";

import { buildDemo } from "../scripts/demo.mjs";
import { latestCode, newEmail, signUp } from "./support/accounts.mjs";
import { DEMO_APP, REPO_ROOT, startServer, stopAllServers, waitFor } from "./support/harness.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const ARTIFACTS = path.join(REPO_ROOT, "test-artifacts");
const TEST_TIMEOUT_MS = 90_000;
// A test that hangs is stopped a little before node's own timeout, so its pages still get
// their failure screenshots.
const BODY_TIMEOUT_MS = TEST_TIMEOUT_MS - 10_000;
const STEP_TIMEOUT_MS = 15_000;
const DESKTOP = { width: 1280, height: 860 };
const PHONE = { width: 375, height: 812 };
const PASSWORD = "correct horse battery";

async function requireChromium() {
  try {
    await access(CHROMIUM, constants.X_OK);
  } catch {
    throw new Error(
      `Chromium is missing: ${CHROMIUM} is not an executable. The end-to-end tests need Debian's ` +
        "Chromium: `apt-get update && apt-get install -y chromium` (.ci/run installs it), or set " +
        "CHROMIUM_PATH to another Chromium binary. Never `npx playwright install`.",
    );
  }
}

const slug = (text) =>
  text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-|-$/g, "")
    .slice(0, 60);

const artifact = (name) => path.join(ARTIFACTS, name);

describe("the demo web app in Chromium", { timeout: 240_000 }, () => {
  let server;
  let browser;
  let webDir;
  // A setup that failed (no Chromium, above all) fails every test with its message, rather
  // than leaving them "cancelled" by a failed hook.
  let setupError = null;

  before(async () => {
    try {
      await requireChromium();
      await mkdir(ARTIFACTS, { recursive: true });
      webDir = await mkdtemp(path.join(os.tmpdir(), "stepup-demo-"));
      await buildDemo({ outDir: webDir, logLevel: "error" });
      server = await startServer({ realAuth: true, app: DEMO_APP, webDir });
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
    } catch (error) {
      setupError = error;
    }
  });

  after(async () => {
    await browser?.close();
    await stopAllServers();
    if (webDir) await rm(webDir, { recursive: true, force: true });
  });

  /**
   * A test with browser pages: `open(viewport?)` gives a page in a new context (its own
   * cookies: its own user). Any failure, a hang included, leaves a screenshot of every page
   * in test-artifacts/failure-<test>-<n>.png; an uncaught error in a page fails the test.
   */
  function e2e(name, body) {
    test(name, { timeout: TEST_TIMEOUT_MS }, async () => {
      if (setupError) throw setupError;
      const contexts = [];
      const pages = [];
      const pageErrors = [];
      const cspViolations = [];
      const open = async (viewport = DESKTOP) => {
        const context = await browser.newContext({ viewport, baseURL: server.url });
        contexts.push(context);
        const page = await context.newPage();
        page.setDefaultTimeout(STEP_TIMEOUT_MS);
        page.on("pageerror", (error) => pageErrors.push(`${error.name}: ${error.message}`));
        // The server sends a Content-Security-Policy: the page must work within it.
        page.on("console", (message) => {
          if (message.type() === "error" && /Content Security Policy/i.test(message.text())) {
            cspViolations.push(message.text());
          }
        });
        pages.push(page);
        return page;
      };
      let timer;
      const hang = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`"${name}" hung for ${BODY_TIMEOUT_MS} ms`)), BODY_TIMEOUT_MS);
      });
      try {
        await Promise.race([body({ open }), hang]);
        assert.deepEqual(pageErrors, [], "uncaught errors in the page");
        assert.deepEqual(cspViolations, [], "what the Content-Security-Policy refused");
      } catch (error) {
        for (const [index, page] of pages.entries()) {
          const file = artifact(`failure-${slug(name)}-${index + 1}.png`);
          await page.screenshot({ path: file, fullPage: true, timeout: 5_000 }).catch(() => {});
        }
        const logs = server.stderr().trim();
        if (logs) error.message += `\n--- server log (tail) ---\n${logs.slice(-4_000)}`;
        throw error;
      } finally {
        clearTimeout(timer);
        for (const context of contexts) await context.close().catch(() => {});
      }
    });
  }

  // ---- steps, as a person takes them ------------------------------------------------------

  async function signUpInPage(page, { name, email, password = PASSWORD }) {
    const response = await page.goto("/");
    assert.match(response.headers()["content-security-policy"] ?? "", /script-src 'self'/);
    await page.getByRole("button", { name: "Create an account" }).click();
    await page.getByLabel("Name", { exact: true }).fill(name);
    await page.getByLabel("Email", { exact: true }).fill(email);
    await page.getByLabel("Password", { exact: true }).fill(password);
    await page.getByRole("button", { name: "Create account" }).click();
    await page.locator(".topbar").waitFor();
    return { name, email, password };
  }

  async function signInWithMagicLinkInPage(page, email) {
    await page.goto("/");
    await page.getByRole("tab", { name: "Email link" }).click();
    await page.getByLabel("Email", { exact: true }).fill(email);
    await page.getByRole("button", { name: "Email me a sign-in link" }).click();
    await page.getByText("Check your email").waitFor();
    // The server is in dev mode: the page points at the dev outbox and the link in it.
    const outboxLink = page.getByRole("link", { name: /Open dev outbox/ });
    assert.equal(await outboxLink.getAttribute("href"), `/api/dev/outbox?to=${encodeURIComponent(email)}`);
    const signInLink = page.getByRole("link", { name: "Open the sign-in link" });
    await signInLink.waitFor();
    await page.screenshot({ path: artifact("magic-link-sent.png") });
    await signInLink.click();
    await page.locator(".topbar").waitFor();
  }

  /** Create an organization from the sidebar; resolves once its page shows it. */
  async function createOrg(page, name) {
    await page.getByRole("button", { name: "+ New" }).click();
    const input = page.locator("#sidebar-org-name");
    await input.fill(name);
    await input.press("Enter");
    await waitForText(page.getByTestId("org-title"), name);
  }

  async function openOrg(page, name) {
    await page.locator(".org-link", { hasText: name }).click();
    await waitForText(page.getByTestId("org-title"), name);
  }

  /** The names in the live organization list, in order. */
  const sidebarNames = (page) => page.locator(".org-list .org-name").allTextContents();

  async function waitForText(locator, text) {
    await locator.waitFor();
    await waitFor(async () => (await locator.textContent()) === text, STEP_TIMEOUT_MS, `the text "${text}"`);
  }

  /** The open verification dialog, once it is open and painted. */
  async function verificationDialog(page) {
    const dialog = page.locator("dialog.sv-dialog[open]");
    await dialog.waitFor();
    await dialog.locator(".sv-title").waitFor();
    return dialog;
  }

  /** Wait for the dialog's status line to say `expected` (a string, or a RegExp it matches). */
  async function dialogStatus(dialog, expected) {
    const status = dialog.locator(".sv-status");
    const matches = (text) => (expected instanceof RegExp ? expected.test(text) : text === expected);
    await waitFor(async () => matches(await status.textContent()), STEP_TIMEOUT_MS, `the dialog to say ${expected}`);
  }

  /** Mark the document, to prove later that a change came live and not from a reload. */
  const markDocument = (page) => page.evaluate(() => (window.__e2eMark = "still here"));
  const documentMark = (page) => page.evaluate(() => window.__e2eMark ?? null);

  // ---- the cases ----------------------------------------------------------------------------

  e2e("a new user deletes an organization: the dialog, a wrong then the right password, the live list", async ({ open }) => {
    const page = await open();
    const ada = await signUpInPage(page, { name: "Ada Lovelace", email: newEmail("ada") });
    await createOrg(page, "Keeper Inc");
    await createOrg(page, "Doomed Co");
    assert.deepEqual(await sidebarNames(page), ["Doomed Co", "Keeper Inc"]);
    await page.screenshot({ path: artifact("main-page.png") });

    await markDocument(page);
    await page.getByRole("button", { name: "Delete organization" }).click();
    const dialog = await verificationDialog(page);
    assert.match(await dialog.locator(".sv-description").textContent(), /^Delete organization "Doomed Co"/);
    assert.equal(await dialog.locator(".sv-title").textContent(), "Confirm it's you");
    assert.ok(await dialog.locator("input[type=password]").isVisible(), "the password is offered");
    assert.ok(await dialog.getByRole("button", { name: "Email me a code" }).isVisible(), "so is an email code");
    await page.screenshot({ path: artifact("dialog-password.png") });

    const password = dialog.locator("input[type=password]");
    await password.fill("not my password");
    await password.press("Enter");
    await dialogStatus(dialog, "That password is not right.");
    assert.equal(await password.getAttribute("aria-invalid"), "true");
    await page.screenshot({ path: artifact("dialog-wrong-password.png") });
    assert.deepEqual(await sidebarNames(page), ["Doomed Co", "Keeper Inc"], "nothing deleted yet");

    await password.fill(ada.password);
    await password.press("Enter");
    await dialog.waitFor({ state: "detached" });
    await waitFor(
      async () => JSON.stringify(await sidebarNames(page)) === JSON.stringify(["Keeper Inc"]),
      STEP_TIMEOUT_MS,
      "Doomed Co to leave the live list",
    );
    assert.equal(await documentMark(page), "still here", "no reload: the list changed live");
    await page.getByText("Deleted “Doomed Co”.").waitFor();
    await page.screenshot({ path: artifact("after-delete.png") });

    // The trail: my activity names the failed and the passed verification.
    await page.getByRole("link", { name: "Account" }).click();
    const activity = page.locator(".audit");
    await activity.waitFor();
    await waitFor(
      async () => (await activity.locator("[data-event='verification.failed']").count()) === 1,
      STEP_TIMEOUT_MS,
      "the failed verification in the activity log",
    );
    assert.equal(await activity.locator("[data-event='verification.passed']").count(), 1);
    assert.equal(await activity.locator("[data-event='action.performed']").count(), 1);
  });

  e2e("a user without a password deletes an organization with an email code from the dev outbox", async ({ open }) => {
    const page = await open();
    const email = newEmail("link");
    await signInWithMagicLinkInPage(page, email);
    await createOrg(page, "Linkless Ltd");

    await markDocument(page);
    await page.getByRole("button", { name: "Delete organization" }).click();
    const dialog = await verificationDialog(page);
    assert.match(await dialog.locator(".sv-description").textContent(), /^Delete organization "Linkless Ltd"/);
    assert.equal(await dialog.locator("input[type=password]").isVisible(), false, "no password to offer");
    const send = dialog.getByRole("button", { name: "Email me a code" });
    assert.ok(await send.isVisible(), "only the email method");
    await page.screenshot({ path: artifact("dialog-email-only.png") });

    const askedAt = Date.now() - 20;
    await send.click();
    // The server names the address half masked ("li*****@example.com").
    await dialogStatus(dialog, /^We sent a 6-digit code to \S+@example\.com\.$/);
    const code = await latestCode(server.url, email, { after: askedAt });
    await page.screenshot({ path: artifact("dialog-email-code.png") });
    // Six digits typed: the dialog sends them by itself.
    await dialog.locator("input[name=code]").fill(code);
    await dialog.waitFor({ state: "detached" });
    await waitFor(async () => (await sidebarNames(page)).length === 0, STEP_TIMEOUT_MS, "the list to empty");
    assert.equal(await documentMark(page), "still here");
    await page.getByText("Deleted “Linkless Ltd”.").waitFor();

    await page.getByRole("link", { name: "Account" }).click();
    await page.getByText("With a code we email you (this account has no password)").waitFor();
  });

  e2e("a member sees the member list change live as the owner adds and removes someone", async ({ open }) => {
    const ownerPage = await open();
    const memberPage = await open();
    const owner = await signUpInPage(ownerPage, { name: "Olivia Owner", email: newEmail("owner") });
    const member = await signUpInPage(memberPage, { name: "Max Member", email: newEmail("member") });
    const carol = await signUp(server.url, { email: newEmail("carol"), name: "Carol Newcomer" });

    await createOrg(ownerPage, "Shared Space");
    await addMember(ownerPage, member.email, "Member");
    // The member's list of organizations gains it, live.
    await memberPage.locator(".org-link", { hasText: "Shared Space" }).waitFor();
    await markDocument(memberPage);
    await openOrg(memberPage, "Shared Space");
    const memberRows = memberPage.locator(".member-list .member");
    await waitFor(async () => (await memberRows.count()) === 2, STEP_TIMEOUT_MS, "two members");
    assert.equal(await memberPage.locator(".add-member").count(), 0, "a member cannot add anyone");

    // The owner adds Carol: she appears on the member's screen.
    await addMember(ownerPage, carol.email, "Admin");
    const carolRow = memberPage.locator(`.member[data-email="${carol.email}"]`);
    await carolRow.waitFor();
    assert.match(await carolRow.textContent(), /Carol Newcomer/);
    assert.match(await carolRow.locator(".badge").textContent(), /Admin/);
    await memberPage.screenshot({ path: artifact("live-members-member.png") });

    // The owner removes her (level 3: always a dialog): she leaves the member's screen.
    await ownerPage.getByRole("button", { name: `Remove ${carol.email}` }).click();
    const dialog = await verificationDialog(ownerPage);
    assert.match(await dialog.locator(".sv-description").textContent(), new RegExp(`^Remove ${escape(carol.email)}`));
    await ownerPage.screenshot({ path: artifact("dialog-remove-member.png") });
    const password = dialog.locator("input[type=password]");
    await password.fill(owner.password);
    await password.press("Enter");
    await dialog.waitFor({ state: "detached" });
    await carolRow.waitFor({ state: "detached" });
    assert.equal(await memberRows.count(), 2);
    assert.equal(await documentMark(memberPage), "still here", "the member's page changed live");
    await ownerPage.screenshot({ path: artifact("live-members-owner.png") });
  });

  e2e("at phone width nothing overflows, and the dialog fits", async ({ open }) => {
    const page = await open(PHONE);
    await signUpInPage(page, { name: "Pat Phone", email: newEmail("phone") });
    await createOrg(page, "Pocket Org");
    await addMember(page, (await signUp(server.url, { email: newEmail("friend") })).email, "Member");
    await assertNoHorizontalOverflow(page, "the organization page");
    await page.screenshot({ path: artifact("phone-org.png") });

    await page.getByRole("button", { name: "Delete organization" }).scrollIntoViewIfNeeded();
    await page.getByRole("button", { name: "Delete organization" }).click();
    const dialog = await verificationDialog(page);
    const box = await dialog.boundingBox();
    assert.ok(box.x >= 0 && box.x + box.width <= PHONE.width, `the dialog fits: ${JSON.stringify(box)}`);
    await page.screenshot({ path: artifact("phone-dialog.png") });
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await dialog.waitFor({ state: "detached" });
    await page.getByText("Not deleted: you cancelled the confirmation.").waitFor();

    await page.goto("/#/account");
    await page.locator(".profile").waitFor();
    await assertNoHorizontalOverflow(page, "the account page");
  });

  async function addMember(page, email, role) {
    const form = page.locator("form.add-member");
    await form.getByLabel("Email", { exact: true }).fill(email);
    await form.getByLabel("Role", { exact: true }).selectOption({ label: role });
    await form.getByRole("button", { name: "Add member" }).click();
    await page.locator(`.member[data-email="${email}"]`).waitFor();
  }

  async function assertNoHorizontalOverflow(page, what) {
    const widths = await page.evaluate(() => ({
      document: document.documentElement.scrollWidth,
      viewport: window.innerWidth,
    }));
    assert.ok(widths.document <= widths.viewport, `${what} overflows: ${JSON.stringify(widths)}`);
  }
});

function escape(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
