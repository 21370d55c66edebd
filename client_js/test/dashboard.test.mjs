// The dashboard (/_dashboard, built fresh by Vite for this run) in a real headless Chromium,
// against the real server in dev mode (the page fetches the dev admin key and authenticates
// the official Convex client with it):
//
// - a row inserted by another client's mutation appears in the open table without a reload;
// - a document edited as JSON is saved through the audited system mutation, and the edit is
//   in the audit log page;
// - the function runner runs a query with JSON arguments and shows its result, and runs one
//   as a chosen user (signed up for real), whom ctx.auth then sees;
// - filtering by an index narrows the live rows;
// - a pending scheduled function is canceled from the schedules page, then all the others;
// - the Logs page shows a call that printed a line as it ends (long poll, no reload), and its
//   outcome and path filters hide it;
// - in production (ADMIN_KEY set, no dev key served) the page asks for the key and refuses a
//   wrong one.
//
// Chromium is Debian's (/usr/bin/chromium, or $CHROMIUM_PATH): without it these tests FAIL.

import assert from "node:assert/strict";
import { constants } from "node:fs";
import { access, mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";

import { ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { chromium } from "playwright-core";

import { buildDashboard } from "../scripts/dashboard.mjs";
import { signUp } from "./support/accounts.mjs";
import { REPO_ROOT, startServer, stopAllServers, waitFor } from "./support/harness.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"];
const ARTIFACTS = path.join(REPO_ROOT, "test-artifacts");
const TEST_TIMEOUT_MS = 90_000;
const STEP_TIMEOUT_MS = 20_000;

describe("the dashboard in Chromium", { timeout: 300_000 }, () => {
  let server;
  let browser;
  let dashboardDir;
  let setupError = null;

  before(async () => {
    try {
      await access(CHROMIUM, constants.X_OK).catch(() => {
        throw new Error(`Chromium is missing: ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)`);
      });
      await mkdir(ARTIFACTS, { recursive: true });
      dashboardDir = await mkdtemp(path.join(os.tmpdir(), "stepup-dashboard-"));
      await buildDashboard({ outDir: dashboardDir, logLevel: "error" });
      server = await startServer({ dashboardDir });
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
    } catch (error) {
      setupError = error;
    }
  });

  after(async () => {
    await browser?.close();
    await stopAllServers();
    if (dashboardDir) await rm(dashboardDir, { recursive: true, force: true });
  });

  function e2e(name, body) {
    test(name, { timeout: TEST_TIMEOUT_MS }, async () => {
      if (setupError) throw setupError;
      const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, baseURL: server.url });
      const page = await context.newPage();
      page.setDefaultTimeout(STEP_TIMEOUT_MS);
      const problems = [];
      page.on("pageerror", (error) => problems.push(`${error.name}: ${error.message}`));
      page.on("console", (message) => {
        if (message.type() === "error" && /Content Security Policy/i.test(message.text())) problems.push(message.text());
      });
      try {
        const response = await page.goto("/_dashboard/");
        assert.equal(response.status(), 200);
        assert.match(response.headers()["content-security-policy"] ?? "", /script-src 'self'/);
        await body(page);
        assert.deepEqual(problems, [], "uncaught errors or CSP refusals in the page");
      } catch (error) {
        const file = path.join(ARTIFACTS, `failure-dashboard-${name.replace(/[^a-z0-9]+/gi, "-").slice(0, 50)}.png`);
        await page.screenshot({ path: file, fullPage: true, timeout: 5_000 }).catch(() => {});
        const logs = server.stderr().trim();
        if (logs) error.message += `\n--- server log (tail) ---\n${logs.slice(-4_000)}`;
        throw error;
      } finally {
        await context.close().catch(() => {});
      }
    });
  }

  const client = () => new ConvexHttpClient(server.url);
  const notesTable = (page) => page.getByRole("region", { name: "Table notes" });

  async function openNotes(page) {
    await page.getByRole("navigation", { name: "Tables" }).getByRole("button", { name: "notes" }).click();
    await notesTable(page).waitFor();
  }

  e2e("a row inserted by a mutation appears live, and an edit is saved and audited", async (page) => {
    await openNotes(page);
    const body = `live ${Date.now()}`;
    await client().mutation(anyApi.notes.add, { author: "ann", body });
    const row = notesTable(page).getByRole("row").filter({ hasText: body });
    await row.waitFor(); // pushed over the admin client's subscription, no reload

    await row.getByRole("button", { name: /^Edit / }).click();
    const editor = page.getByLabel(/^Document /);
    const text = await editor.inputValue();
    assert.match(text, new RegExp(`"body": "${body}"`));
    await editor.fill(text.replace(body, `${body} (edited)`));
    await page.getByRole("button", { name: "Save" }).click();
    await notesTable(page).getByRole("row").filter({ hasText: `${body} (edited)` }).waitFor();
    const stored = await client().query(anyApi.notes.by_author, { author: "ann" });
    assert.ok(stored.some((note) => note.body === `${body} (edited)`), JSON.stringify(stored));

    // a document the schema refuses is not saved, and the page says why
    await notesTable(page).getByRole("row").filter({ hasText: `${body} (edited)` }).getByRole("button", { name: /^Edit / }).click();
    await page.getByLabel(/^Document /).fill('{"author": 5, "body": "x"}');
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByRole("alert").filter({ hasText: "INVALID_ARGUMENT" }).waitFor();
    await page.getByRole("button", { name: "Cancel" }).click();

    await page.getByRole("link", { name: "Audit log" }).click();
    await page.getByLabel("Event").selectOption("admin.edit");
    const audit = page.getByRole("region", { name: "Audit log" });
    await audit.getByRole("row").filter({ hasText: "replaced" }).first().waitFor();
    assert.equal(await audit.getByRole("row").filter({ hasText: "admin.edit" }).count(), 1);
  });

  e2e("filtering by an index narrows the live rows", async (page) => {
    await client().mutation(anyApi.notes.add, { author: "filter-bob", body: "bob's" });
    await client().mutation(anyApi.notes.add, { author: "filter-cat", body: "cat's" });
    await openNotes(page);
    const rows = notesTable(page).getByRole("row");
    await rows.filter({ hasText: "bob's" }).waitFor();
    await page.getByLabel(/^Index/).selectOption("by_author");
    await page.getByLabel("author =").fill("filter-cat");
    await page.getByRole("button", { name: "Filter" }).click();
    await waitFor(async () => (await rows.filter({ hasText: "bob's" }).count()) === 0, STEP_TIMEOUT_MS, "bob's row to leave");
    await rows.filter({ hasText: "cat's" }).waitFor();
    await client().mutation(anyApi.notes.add, { author: "filter-cat", body: "cat's second" });
    await rows.filter({ hasText: "cat's second" }).waitFor();
  });

  e2e("the function runner runs a function with JSON arguments and shows the result", async (page) => {
    await client().mutation(anyApi.notes.add, { author: "runner", body: "found by the runner" });
    await page.getByRole("link", { name: "Functions" }).click();
    await page.getByLabel(/^Function/).selectOption("notes:by_author");
    await page.getByText(/query notes:by_author\(\{ author: string; limit\?: number \}\)/).waitFor();
    await page.getByLabel("Arguments (JSON)").fill('{"author": "runner"}');
    await page.getByLabel(/^Run as/).selectOption("");
    await page.getByRole("button", { name: "Run" }).click();
    const result = page.getByTestId("run-result");
    await result.filter({ hasText: "found by the runner" }).waitFor();

    await page.getByLabel("Arguments (JSON)").fill('{"author": 7}');
    await page.getByRole("button", { name: "Run" }).click();
    await page.getByRole("alert").filter({ hasText: "INVALID_ARGUMENT" }).waitFor();
    await page.getByLabel("Arguments (JSON)").fill("{not json");
    await page.getByRole("button", { name: "Run" }).click();
    await page.getByRole("alert").filter({ hasText: "Not valid JSON" }).waitFor();
  });

  test("in production the page asks for the admin key and takes only the right one", { timeout: TEST_TIMEOUT_MS }, async () => {
    if (setupError) throw setupError;
    const key = "production-admin-key-for-the-browser-test";
    const production = await startServer({ dashboardDir, productionAdminKey: key });
    const context = await browser.newContext({ baseURL: production.url });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    try {
      assert.equal((await page.request.get("/_dashboard/key")).status(), 404);
      await page.goto("/_dashboard/");
      await page.getByLabel("Admin key").fill(`${key}-wrong`);
      await page.getByRole("button", { name: "Open the dashboard" }).click();
      await page.getByRole("alert").filter({ hasText: "That key was refused." }).waitFor();
      await page.getByLabel("Admin key").fill(key);
      await page.getByRole("button", { name: "Open the dashboard" }).click();
      await page.getByRole("navigation", { name: "Tables" }).getByRole("button", { name: "notes" }).waitFor();
      await page.reload(); // the key stays for this tab
      await page.getByRole("navigation", { name: "Tables" }).waitFor();
      await page.getByRole("button", { name: "Forget the key" }).click();
      await page.getByLabel("Admin key").waitFor();
    } catch (error) {
      await page.screenshot({ path: path.join(ARTIFACTS, "failure-dashboard-production-key.png") }).catch(() => {});
      throw error;
    } finally {
      await context.close().catch(() => {});
      await production.stop();
    }
  });

  test("the runner runs a function as a chosen user, whom ctx.auth then sees", { timeout: TEST_TIMEOUT_MS }, async () => {
    if (setupError) throw setupError;
    const real = await startServer({ dashboardDir, realAuth: true });
    const context = await browser.newContext({ baseURL: real.url });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    try {
      const user = await signUp(real.url, { name: "Ann Runner" });
      await page.goto("/_dashboard/#functions");
      await page.getByLabel(/^Function/).selectOption("whoami:in_query");
      await page.getByLabel(/^Run as/).selectOption({ label: `${user.email} (Ann Runner)` });
      await page.getByRole("button", { name: "Run" }).click();
      await page.getByTestId("run-result").filter({ hasText: user.userId }).waitFor();
      await page.getByLabel(/^Run as/).selectOption("");
      await page.getByRole("button", { name: "Run" }).click();
      await page.getByTestId("run-result").filter({ hasText: /^null$/ }).waitFor();
    } catch (error) {
      await page.screenshot({ path: path.join(ARTIFACTS, "failure-dashboard-run-as.png") }).catch(() => {});
      throw error;
    } finally {
      await context.close().catch(() => {});
      await real.stop();
    }
  });

  test("a scheduled function is canceled from the schedules page, live", { timeout: TEST_TIMEOUT_MS }, async () => {
    if (setupError) throw setupError;
    const scheduling = await startServer({ dashboardDir, app: "tests.apps.system_tables" });
    const context = await browser.newContext({ baseURL: scheduling.url });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    try {
      const http = new ConvexHttpClient(scheduling.url);
      const jobId = await http.mutation(anyApi.messages.scheduleMessage, { delay: 3600, body: "later", author: "ann" });
      await page.goto("/_dashboard/#schedules");
      const jobs = page.getByRole("region", { name: "Scheduled functions" });
      const row = jobs.getByRole("row").filter({ hasText: "messages:sendMessage" });
      await row.filter({ hasText: "pending" }).waitFor();
      await row.getByRole("button", { name: "Cancel" }).click();
      await row.filter({ hasText: "canceled" }).waitFor();
      assert.equal(await row.getByRole("button", { name: "Cancel" }).count(), 0);
      const seen = await http.query(anyApi.admin.listScheduledSends, {});
      assert.equal(seen.find((job) => job._id === jobId)?.state.kind, "canceled", JSON.stringify(seen));

      for (const body of ["one", "two"]) {
        await http.mutation(anyApi.messages.scheduleMessage, { delay: 3600, body, author: "bob" });
      }
      await jobs.getByRole("row").filter({ hasText: "pending" }).nth(1).waitFor();
      page.once("dialog", (dialog) => dialog.accept());
      await page.getByRole("button", { name: "Cancel all pending" }).click();
      await jobs.getByText("2 canceled").waitFor();
      await waitFor(async () => (await jobs.getByRole("row").filter({ hasText: "pending" }).count()) === 0, STEP_TIMEOUT_MS, "no pending row");
    } catch (error) {
      await page.screenshot({ path: path.join(ARTIFACTS, "failure-dashboard-cancel.png") }).catch(() => {});
      throw error;
    } finally {
      await context.close().catch(() => {});
      await scheduling.stop();
    }
  });

  e2e("the logs page shows a call and its printed line live, and its filters hide it", async (page) => {
    await page.getByRole("link", { name: "Logs" }).click();
    const logs = page.getByRole("region", { name: "Function logs" });
    await logs.getByText("live", { exact: true }).waitFor();
    const name = `logged-${Date.now()}`;
    await client().query(anyApi.chatty.hello, { name });
    const row = logs.getByRole("row").filter({ hasText: "chatty:hello" }).filter({ hasText: `[LOG] hello ${name}` });
    await row.waitFor(); // by the page's long poll, no reload
    assert.match(await row.innerText(), /query/);
    assert.match(await row.innerText(), /success/);
    await assert.rejects(client().mutation(anyApi.chatty.write, { name: `${name}-fails`, fail: true }));
    const failed = logs.getByRole("row").filter({ hasText: "chatty:write" }).filter({ hasText: `writing ${name}-fails` });
    await failed.filter({ hasText: "REFUSED" }).waitFor();

    await page.getByLabel("Outcome").selectOption("failure");
    await waitFor(async () => (await row.count()) === 0, STEP_TIMEOUT_MS, "the successful call's row to be hidden");
    assert.equal(await failed.count(), 1);
    await page.getByLabel("Outcome").selectOption("");
    await row.waitFor();
    await page.getByLabel("Function", { exact: true }).fill("notes:");
    await waitFor(async () => (await row.count()) === 0, STEP_TIMEOUT_MS, "the row of another path to be hidden");
    await page.getByLabel("Function", { exact: true }).fill("chatty:hel");
    await row.waitFor();
    assert.equal(await failed.count(), 0);

    // the dashboard's own calls (the Data page's subscriptions) are hidden unless asked for
    await page.getByLabel("Function", { exact: true }).fill("");
    const system = logs.getByRole("row").filter({ hasText: "_system/dashboard:" });
    assert.equal(await system.count(), 0);
    await page.getByLabel("System calls").check();
    await system.first().waitFor();
  });

  e2e("the schema page shows each index's state", async (page) => {
    await page.getByRole("link", { name: "Schema" }).click();
    const schema = page.getByRole("region", { name: "Schema" });
    await schema.getByRole("row").filter({ hasText: "by_author" }).filter({ hasText: "ready" }).waitFor();
  });
});
