// The built-in <dialog> in a DOM (happy-dom): what it renders, ARIA, focus, keyboard, and the
// flows of both methods against a scripted request. The same dialog against the real server
// is in react.test.mjs; a real browser is the e2e suite's job.

import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, test } from "node:test";

import { Window } from "happy-dom";

import { createVerificationDialog } from "@stepup/client";

const TIMEOUT = { timeout: 5_000 };

/** Time that moves only when told: `advance(ms)` runs the timers that fall due. */
function fakeClock(start = 1_000_000) {
  let now = start;
  let timers = [];
  let next = 0;
  return {
    now: () => now,
    setTimeout(callback, ms) {
      const handle = ++next;
      timers.push({ handle, at: now + ms, callback });
      return handle;
    },
    clearTimeout(handle) {
      timers = timers.filter((timer) => timer.handle !== handle);
    },
    advance(ms) {
      const until = now + ms;
      for (;;) {
        const due = timers.filter((timer) => timer.at <= until).sort((a, b) => a.at - b.at)[0];
        if (!due) break;
        timers = timers.filter((timer) => timer !== due);
        now = due.at;
        due.callback();
      }
      now = until;
    },
    pending: () => timers.length,
  };
}

/** A request whose server answers come from `answers[step]` (arrays are used in order). */
function scriptedRequest(answers, overrides = {}) {
  const calls = [];
  const next = (step) => {
    const answer = answers[step];
    return Array.isArray(answer) ? answer.shift() : answer;
  };
  const request = {
    action: "org.delete",
    level: 4,
    resource: "org1",
    description: "Delete the organization <b>Acme</b> and everything in it",
    methods: ["password", "email"],
    round: 1,
    verifyPassword: async (password) => (calls.push(["password", password]), next("password")),
    sendEmailCode: async () => (calls.push(["send"]), next("send")),
    verifyEmailCode: async (code) => (calls.push(["code", code]), next("code")),
    ...overrides,
  };
  return { request, calls };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

describe("createVerificationDialog", TIMEOUT, () => {
  let window;
  let document;
  let clock;
  let opener;

  beforeEach(() => {
    window = new Window({ url: "http://localhost/" });
    document = window.document;
    document.body.innerHTML = `<main><button id="opener">Delete</button></main>`;
    opener = document.getElementById("opener");
    opener.focus();
    clock = fakeClock();
  });

  afterEach(async () => {
    await window.happyDOM.close();
  });

  function show(request, options = {}) {
    const handler = createVerificationDialog({ document, clock, ...options });
    const outcome = handler(request);
    const dialog = document.querySelector("dialog.sv-dialog");
    const $ = (selector) => dialog.querySelector(selector);
    return { outcome, dialog, $ };
  }

  function type(input, value) {
    input.value = value;
    input.dispatchEvent(new window.Event("input", { bubbles: true }));
  }

  function submit(form) {
    form.dispatchEvent(new window.Event("submit", { bubbles: true, cancelable: true }));
  }

  test("renders the server's description as text, labelled controls, and a live status", async () => {
    const { request } = scriptedRequest({});
    const { outcome, dialog, $ } = show(request);
    assert.equal(dialog.open, true);
    assert.equal(dialog.getAttribute("aria-modal"), "true");
    const title = document.getElementById(dialog.getAttribute("aria-labelledby"));
    assert.equal(title.textContent, "Confirm it's you");
    const description = document.getElementById(dialog.getAttribute("aria-describedby"));
    assert.equal(description.textContent, "Delete the organization <b>Acme</b> and everything in it");
    assert.equal(description.querySelector("b"), null, "the description is text, never markup");

    const status = $(".sv-status");
    assert.equal(status.getAttribute("aria-live"), "polite");
    assert.equal(status.getAttribute("role"), "status");

    for (const input of dialog.querySelectorAll("input")) {
      const label = dialog.querySelector(`label[for="${input.id}"]`);
      assert.ok(label && label.textContent.trim(), `a label for #${input.id}`);
    }
    const password = $("input[type=password]");
    assert.equal(password.getAttribute("autocomplete"), "current-password");
    const code = $("input.sv-code");
    assert.equal(code.getAttribute("autocomplete"), "one-time-code");
    assert.equal(code.getAttribute("inputmode"), "numeric");
    assert.equal(code.getAttribute("pattern"), "[0-9]{6}");
    assert.equal($(".sv-email-code").hidden, true, "the code field waits for a code");
    assert.equal($(".sv-send").hidden, false);

    // Every control is a native, focusable element: keyboard-only works by construction.
    for (const control of dialog.querySelectorAll("button, input")) {
      assert.notEqual(control.getAttribute("tabindex"), "-1");
      assert.ok(!control.disabled, "aria-disabled, never disabled: the focus must not fall out");
    }
    assert.equal(document.activeElement, password, "the focus moves into the dialog");

    $(".sv-cancel").click();
    assert.equal(await outcome, false);
  });

  test("shows only the methods offered", async () => {
    const { request } = scriptedRequest({}, { methods: ["email"] });
    const { outcome, $ } = show(request);
    assert.equal($(".sv-password").hidden, true);
    assert.equal($(".sv-or").hidden, true);
    assert.equal(document.activeElement, $(".sv-send"));
    $(".sv-cancel").click();
    assert.equal(await outcome, false);
  });

  test("styles are scoped to the sv- prefix and themeable with --sv-* properties", async () => {
    const { request } = scriptedRequest({});
    const headBefore = document.head.innerHTML;
    const { outcome, dialog } = show(request, { className: "my-dialog" });
    assert.ok(dialog.classList.contains("my-dialog"));
    const css = dialog.querySelector("style").textContent;
    const selectors = css
      .replace(/@media[^{]*\{/g, "")
      .split("}")
      .map((rule) => rule.split("{")[0].trim())
      .filter(Boolean);
    for (const selector of selectors) {
      for (const part of selector.split(",")) assert.match(part.trim(), /^(:where\()?\.sv-/, `scoped: ${part}`);
    }
    assert.match(css, /var\(--sv-accent/);
    assert.match(css, /var\(--sv-bg/);
    assert.equal(document.head.innerHTML, headBefore, "nothing added to the page's head");
    $cancel(dialog).click();
    await outcome;
    assert.equal(document.querySelector("style"), null, "the style leaves with the dialog");
  });

  test("Escape cancels, removes the dialog and gives the focus back", async () => {
    const { request, calls } = scriptedRequest({});
    const { outcome, dialog, $ } = show(request);
    $("input[type=password]").dispatchEvent(new window.KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
    assert.equal(await outcome, false);
    assert.equal(dialog.isConnected, false);
    assert.equal(document.activeElement, opener);
    assert.deepEqual(calls, []);
  });

  test("a wrong password, then the right one", async () => {
    const { request, calls } = scriptedRequest({
      password: [
        { ok: false, code: "INVALID_PASSWORD" },
        { ok: true, expiresAt: 1 },
      ],
    });
    const { outcome, dialog, $ } = show(request);
    const input = $("input[type=password]");
    submit($(".sv-password"));
    assert.equal($(".sv-status").textContent, "Enter your password.");
    assert.deepEqual(calls, [], "an empty password is not sent");

    input.value = "wrong";
    submit($(".sv-password"));
    assert.equal(dialog.getAttribute("aria-busy"), "true");
    await settle();
    assert.equal($(".sv-status").textContent, "That password is not right.");
    assert.equal($(".sv-status").getAttribute("data-kind"), "error");
    assert.equal(input.getAttribute("aria-invalid"), "true");
    assert.equal(document.activeElement, input, "back to the field, to type it again");

    input.value = "right";
    submit($(".sv-password"));
    assert.equal(await outcome, true);
    assert.deepEqual(calls, [
      ["password", "wrong"],
      ["password", "right"],
    ]);
    assert.equal(dialog.isConnected, false);
    assert.equal(document.activeElement, opener);
  });

  test("a rate limit counts down and blocks the button until it lifts", async () => {
    const { request, calls } = scriptedRequest({
      password: [
        { ok: false, code: "RATE_LIMITED", retryAfterMs: 2_000 },
        { ok: true, expiresAt: 1 },
      ],
    });
    const { outcome, $ } = show(request);
    const input = $("input[type=password]");
    const button = $(".sv-password button[type=submit]");
    input.value = "guess";
    submit($(".sv-password"));
    await settle();
    assert.equal($(".sv-status").textContent, "Too many attempts. Try again in 0:02.");
    assert.equal(button.getAttribute("aria-disabled"), "true");
    assert.equal($(".sv-password .sv-wait").textContent, "Try again in 0:02");
    submit($(".sv-password"));
    assert.equal(calls.length, 1, "blocked: not sent");

    clock.advance(1_000);
    assert.equal($(".sv-password .sv-wait").textContent, "Try again in 0:01");
    clock.advance(1_000);
    assert.equal($(".sv-password .sv-wait").hidden, true);
    assert.equal(button.getAttribute("aria-disabled"), "false");
    assert.equal(clock.pending(), 0, "no timer left once nothing counts down");

    submit($(".sv-password"));
    assert.equal(await outcome, true);
  });

  test("email code: send, paste, wrong code with tries left, resend after the cooldown, right code", async () => {
    const { request, calls } = scriptedRequest({
      send: [
        { ok: true, sentTo: "a**@example.com", expiresAt: 1 },
        { ok: true, sentTo: "a**@example.com", expiresAt: 2 },
      ],
      code: [
        { ok: false, code: "INVALID_CODE", attemptsLeft: 2 },
        { ok: true, expiresAt: 3 },
      ],
    });
    const { outcome, $ } = show(request, { resendCooldownMs: 30_000 });
    $(".sv-send").click();
    await settle();
    const code = $("input.sv-code");
    assert.equal($(".sv-email-code").hidden, false);
    assert.equal($(".sv-send").hidden, true);
    assert.equal($(".sv-status").textContent, "We sent a 6-digit code to a**@example.com.");
    assert.equal(document.activeElement, code);

    const resend = $(".sv-resend");
    assert.equal(resend.getAttribute("aria-disabled"), "true");
    assert.equal(resend.textContent, "Send a new code in 0:30");
    resend.click();
    assert.equal(calls.filter(([step]) => step === "send").length, 1, "not before the cooldown");

    type(code, "12 34 5"); // typed or pasted with spaces: only digits stay
    assert.equal(code.value, "12345");
    assert.equal(calls.length, 1, "five digits: not yet");
    type(code, "123 456"); // six: goes at once, as autofill expects
    await settle();
    assert.deepEqual(calls.at(-1), ["code", "123456"]);
    assert.equal($(".sv-status").textContent, "That code is not right. 2 tries left.");
    assert.equal(code.getAttribute("aria-invalid"), "true");

    clock.advance(15_000);
    assert.equal(resend.textContent, "Send a new code in 0:15");
    clock.advance(15_000);
    assert.equal(resend.textContent, "Send a new code");
    assert.equal(resend.getAttribute("aria-disabled"), "false");
    resend.click();
    await settle();
    assert.equal(calls.filter(([step]) => step === "send").length, 2);
    assert.equal(code.value, "", "a new code: a clean field");
    assert.equal(resend.textContent, "Send a new code in 0:30");

    type(code, "654321");
    assert.equal(await outcome, true);
    assert.deepEqual(calls.at(-1), ["code", "654321"]);
  });

  test("an expired code blocks the field until a new one is sent", async () => {
    const { request } = scriptedRequest({
      send: { ok: true, sentTo: "a**@example.com", expiresAt: 1 },
      code: { ok: false, code: "CODE_EXPIRED" },
    });
    const { outcome, $ } = show(request, { resendCooldownMs: 0 });
    $(".sv-send").click();
    await settle();
    type($("input.sv-code"), "111111");
    await settle();
    assert.equal($(".sv-status").textContent, "That code has expired. Send a new one.");
    assert.equal($(".sv-email-code button[type=submit]").getAttribute("aria-disabled"), "true");
    assert.equal(document.activeElement, $(".sv-resend"), "the next move is a new code");
    $(".sv-cancel").click();
    assert.equal(await outcome, false);
  });

  test("a lost connection is shown and the dialog stays usable", async () => {
    const { request } = scriptedRequest(
      {},
      {
        verifyPassword: async () => {
          throw new Error("Connection lost while mutation was in flight");
        },
      },
    );
    const { outcome, $ } = show(request);
    $("input[type=password]").value = "x";
    submit($(".sv-password"));
    await settle();
    assert.match($(".sv-status").textContent, /Connection lost/);
    assert.equal($(".sv-password button[type=submit]").getAttribute("aria-disabled"), "false");
    $(".sv-cancel").click();
    assert.equal(await outcome, false);
  });

  test("labels and a container are honoured; no document is a clear error", async () => {
    const container = document.createElement("div");
    document.body.append(container);
    const { request } = scriptedRequest({});
    const { outcome, dialog } = show(request, { container, labels: { title: "Bestätigen", cancel: "Abbrechen" } });
    assert.equal(dialog.parentElement, container);
    assert.equal(dialog.querySelector(".sv-title").textContent, "Bestätigen");
    assert.equal($cancel(dialog).textContent, "Abbrechen");
    $cancel(dialog).click();
    await outcome;
    await assert.rejects(createVerificationDialog()(request), /needs a document/);
  });

  test("a passkey first; a browser without one says so and the other methods stay", async () => {
    const { request, calls } = scriptedRequest(
      { passkey: [{ ok: false, code: "NO_AUTHENTICATOR" }] },
      {
        methods: ["passkey", "totp", "password", "backup_code", "email"],
        verifyPasskey: async () => (calls.push(["passkey"]), { ok: false, code: "NO_AUTHENTICATOR" }),
        verifyTotp: async (code) => (calls.push(["totp", code]), { ok: true, expiresAt: 1 }),
      },
    );
    const { outcome, $ } = show(request);
    assert.equal($(".sv-passkey-section").hidden, false);
    assert.equal(document.activeElement, $(".sv-passkey"));
    assert.equal($(".sv-totp").hidden, false);
    $(".sv-passkey").click();
    await settle();
    assert.deepEqual(calls, [["passkey"]]);
    assert.equal($(".sv-passkey-section").hidden, true, "no authenticator: the button goes");
    assert.equal($(".sv-status").textContent, "This browser cannot use passkeys. Confirm another way.");
    assert.equal($(".sv-totp").hidden, false);
    const totp = $("input.sv-totp-input");
    assert.equal(totp.getAttribute("autocomplete"), "one-time-code");
    assert.equal(totp.getAttribute("inputmode"), "numeric");
    type(totp, "654 321"); // six digits go at once, as autofill expects
    await settle();
    assert.deepEqual(calls.at(-1), ["totp", "654321"]);
    assert.equal(await outcome, true);
  });

  test("a wrong app code, then a backup code behind its link", async () => {
    const { request, calls } = scriptedRequest(
      {},
      {
        methods: ["totp", "backup_code"],
        verifyTotp: async (code) => (calls.push(["totp", code]), { ok: false, code: "INVALID_CODE" }),
        verifyBackupCode: async (code) => (calls.push(["backup", code]), { ok: true, expiresAt: 1 }),
      },
    );
    const { outcome, $ } = show(request);
    assert.equal($(".sv-password").hidden, true);
    assert.equal($(".sv-email").hidden, true);
    assert.equal($(".sv-backup").hidden, true, "the backup form waits behind its link");
    type($("input.sv-totp-input"), "111111");
    await settle();
    assert.equal($(".sv-status").textContent, "That code is not right, or was used already. Wait for the next one.");
    $(".sv-backup-link").click();
    assert.equal($(".sv-backup").hidden, false);
    assert.equal($(".sv-backup-link").hidden, true);
    submit($(".sv-backup"));
    assert.equal($(".sv-status").textContent, "Enter one of your backup codes.");
    $("input.sv-backup-input").value = "abcde-fghjk";
    submit($(".sv-backup"));
    await settle();
    assert.deepEqual(calls.at(-1), ["backup", "abcde-fghjk"]);
    assert.equal(await outcome, true);
  });

  test("an action demanding a stronger factor says email stands in", async () => {
    const { request } = scriptedRequest({}, { methods: ["email"], fallback: true });
    const { outcome, dialog, $ } = show(request);
    assert.match($(".sv-status").textContent, /passkey or an authenticator app/);
    $cancel(dialog).click();
    assert.equal(await outcome, false);
  });
});

function $cancel(dialog) {
  return dialog.querySelector(".sv-cancel");
}
