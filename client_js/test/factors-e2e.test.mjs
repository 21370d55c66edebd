// End to end, the strong factors: the demo web app in real Chromium against the real server.
//
// - a passkey: a virtual authenticator (the DevTools protocol's WebAuthn domain, through
//   playwright-core) stands in for a phone or a security key; the user adds a passkey on the
//   Security page (the step-up dialog asks for the password first: adding a factor is itself
//   protected), then deletes an organization confirming with that passkey alone;
// - an authenticator app: the user sets one up from the QR page's key, with codes computed
//   here (RFC 6238, HMAC-SHA1), and deletes an organization with a code from it.
//
// The server runs with PUBLIC_URL on localhost: a passkey's relying party is a host name.
// Chromium is Debian's (/usr/bin/chromium or $CHROMIUM_PATH); without it these tests fail.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { constants } from "node:fs";
import { access, mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";

import { chromium } from "playwright-core";

import { buildDemo } from "../scripts/demo.mjs";
import { newEmail } from "./support/accounts.mjs";
import { DEMO_APP, REPO_ROOT, startServer, stopAllServers, waitFor } from "./support/harness.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"];
const ARTIFACTS = path.join(REPO_ROOT, "test-artifacts");
const STEP_TIMEOUT_MS = 15_000;
const PASSWORD = "correct horse battery";

/** base32 (RFC 4648) → bytes. */
function base32(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const char of text.replace(/=+$/, "").toUpperCase()) bits += alphabet.indexOf(char).toString(2).padStart(5, "0");
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

/** The code an authenticator app shows for `secret`, `steps` time steps from now. */
function totp(secret, steps = 0) {
  const counter = Math.floor(Date.now() / 1000 / 30) + steps;
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac("sha1", base32(secret)).update(message).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const value = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(value).padStart(6, "0");
}

describe("strong factors in Chromium", { timeout: 240_000 }, () => {
  let server;
  let browser;
  let webDir;
  let setupError = null;

  before(async () => {
    try {
      await access(CHROMIUM, constants.X_OK);
      await mkdir(ARTIFACTS, { recursive: true });
      webDir = await mkdtemp(path.join(os.tmpdir(), "stepup-factors-"));
      await buildDemo({ outDir: webDir, logLevel: "error" });
      server = await startServer({ realAuth: true, app: DEMO_APP, webDir, publicHost: "localhost" });
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

  async function withPage(name, body) {
    if (setupError) throw setupError;
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, baseURL: server.url });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    const errors = [];
    page.on("pageerror", (error) => errors.push(`${error.name}: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() === "error") errors.push(`console: ${message.text()}`);
    });
    try {
      await body(page, context);
      assert.deepEqual(errors, [], "uncaught errors in the page");
    } catch (error) {
      await page.screenshot({ path: path.join(ARTIFACTS, `failure-${name}.png`), fullPage: true }).catch(() => {});
      if (errors.length) error.message += `\n--- page errors ---\n${errors.join("\n")}`;
      const logs = server.stderr().trim();
      if (logs) error.message += `\n--- server log (tail) ---\n${logs.slice(-4_000)}`;
      throw error;
    } finally {
      await context.close().catch(() => {});
    }
  }

  async function signUp(page, email) {
    await page.goto("/");
    await page.getByRole("button", { name: "Create an account" }).click();
    await page.getByLabel("Name", { exact: true }).fill("Grace");
    await page.getByLabel("Email", { exact: true }).fill(email);
    await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
    await page.getByRole("button", { name: "Create account" }).click();
    await page.locator(".topbar").waitFor();
  }

  async function createOrg(page, name) {
    await page.getByRole("button", { name: "+ New" }).click();
    const input = page.locator("#sidebar-org-name");
    await input.fill(name);
    await input.press("Enter");
    await page.getByTestId("org-title").filter({ hasText: name }).waitFor();
  }

  async function dialog(page) {
    const open = page.locator("dialog.sv-dialog[open]");
    await open.waitFor();
    return open;
  }

  async function confirmWithPassword(page) {
    const asked = await dialog(page);
    const password = asked.locator("input[type=password]");
    await password.fill(PASSWORD);
    await password.press("Enter");
    await asked.waitFor({ state: "detached" });
  }

  async function openAccount(page) {
    await page.getByRole("link", { name: "Account" }).click();
    await page.getByTestId("security").waitFor();
  }

  async function deleteOrgWith(page, name, confirm) {
    await page.locator(".org-link", { hasText: name }).click();
    await page.getByTestId("org-title").filter({ hasText: name }).waitFor();
    await page.getByRole("button", { name: "Delete organization" }).click();
    const asked = await dialog(page);
    await confirm(asked);
    await asked.waitFor({ state: "detached" });
    await page.getByText(`Deleted “${name}”.`).waitFor();
    const names = await page.locator(".org-list .org-name").allTextContents();
    assert.ok(!names.includes(name), `${name} left the live list`);
  }

  test("a passkey added on the Security page confirms an organization's deletion", async () => {
    await withPage("passkey", async (page, context) => {
      const cdp = await context.newCDPSession(page);
      await cdp.send("WebAuthn.enable");
      const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
        options: {
          protocol: "ctap2",
          transport: "internal",
          hasResidentKey: true,
          hasUserVerification: true,
          isUserVerified: true,
          automaticPresenceSimulation: true,
        },
      });
      await signUp(page, newEmail("passkey"));
      await createOrg(page, "Keyed Co");
      await openAccount(page);

      await page.getByLabel("Name of the new passkey").fill("Virtual key");
      await page.getByRole("button", { name: "Add a passkey" }).click();
      await confirmWithPassword(page); // adding a factor is a protected action
      await page.getByTestId("backup-codes").waitFor();
      const codes = await page.getByTestId("backup-codes").locator("code").allTextContents();
      assert.equal(codes.length, 10, "ten backup codes, shown once");
      await page.getByRole("button", { name: "I have saved them" }).click();
      await page.getByTestId("passkeys").getByText("Virtual key").waitFor();
      await page.screenshot({ path: path.join(ARTIFACTS, "security-passkey.png"), fullPage: true });
      const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
      assert.equal(credentials.length, 1);
      assert.equal(credentials[0].rpId, "localhost");
      assert.equal(credentials[0].isResidentCredential, true, "a resident key, as preferred");

      await deleteOrgWith(page, "Keyed Co", async (asked) => {
        const button = asked.getByRole("button", { name: "Use a passkey" });
        assert.ok(await button.isVisible(), "the passkey is offered");
        assert.ok(await asked.locator("input[type=password]").isVisible(), "and the password");
        await page.screenshot({ path: path.join(ARTIFACTS, "dialog-passkey.png") });
        await button.click();
      });
      const after = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
      assert.ok(after.credentials[0].signCount >= 1, "the authenticator signed");

      await openAccount(page);
      await waitFor(
        async () => /Confirmed it's you with a passkey/.test(await page.getByTestId("security").textContent()),
        STEP_TIMEOUT_MS,
        "the passkey's confirmation among the security events",
      );
    });
  });

  test("a browser without passkeys is told so, and another way stays open", async () => {
    const email = newEmail("nokey");
    await withPage("with-key", async (page, context) => {
      const cdp = await context.newCDPSession(page);
      await cdp.send("WebAuthn.enable");
      await cdp.send("WebAuthn.addVirtualAuthenticator", {
        options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
      });
      await signUp(page, email);
      await createOrg(page, "Stays Co");
      await openAccount(page);
      await page.getByRole("button", { name: "Add a passkey" }).click();
      await confirmWithPassword(page);
      await page.getByRole("button", { name: "I have saved them" }).click();
      await page.getByTestId("passkeys").waitFor();
    });
    await withPage("no-webauthn", async (page) => {
      await page.addInitScript(() => {
        delete window.PublicKeyCredential; // a browser with no WebAuthn at all
      });
      await page.goto("/");
      await page.getByLabel("Email", { exact: true }).fill(email);
      await page.locator("input[type=password][autocomplete=current-password]").fill(PASSWORD);
      await page.getByRole("button", { name: "Sign in", exact: true }).click();
      await page.locator(".topbar").waitFor();
      await deleteOrgWith(page, "Stays Co", async (asked) => {
        await asked.getByRole("button", { name: "Use a passkey" }).click();
        await waitFor(
          async () => (await asked.locator(".sv-status").textContent()) === "This browser cannot use passkeys. Confirm another way.",
          STEP_TIMEOUT_MS,
          "the dialog to say this browser cannot use passkeys",
        );
        assert.equal(await asked.getByRole("button", { name: "Use a passkey" }).isVisible(), false);
        const password = asked.locator("input[type=password]");
        await password.fill(PASSWORD);
        await password.press("Enter");
      });
    });
  });

  test("an authenticator app set up from its key confirms an organization's deletion", async () => {
    await withPage("totp", async (page) => {
      await signUp(page, newEmail("totp"));
      await createOrg(page, "Timed Co");
      await openAccount(page);
      await page.getByRole("button", { name: "Set up an authenticator app" }).click();
      await confirmWithPassword(page);
      const secret = (await page.getByTestId("totp-secret").textContent()).trim();
      assert.match(secret, /^[A-Z2-7]{32}$/);
      assert.ok(await page.locator(".qr svg").isVisible(), "the QR code is drawn");
      await page.screenshot({ path: path.join(ARTIFACTS, "security-totp.png"), fullPage: true });
      await page.getByLabel("Code from the app").fill(totp(secret));
      await page.getByRole("button", { name: "Turn on" }).click();
      await page.getByTestId("backup-codes").waitFor();
      await page.getByRole("button", { name: "I have saved them" }).click();
      await page.getByTestId("totp-on").waitFor();

      await deleteOrgWith(page, "Timed Co", async (asked) => {
        const field = asked.locator("input[autocomplete=one-time-code]").first();
        assert.ok(await field.isVisible(), "the app's code field is offered");
        await asked.getByText("Use a backup code").waitFor();
        // the step after the one that turned the app on: inside the window, never used
        await field.fill(totp(secret, 1));
      });
    });
  });
});
