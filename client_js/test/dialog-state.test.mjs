// The dialog's pure core (src/dialog-state.js): which messages, which controls are usable, and
// the countdowns, with time passed in.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  DEFAULT_LABELS,
  errorMessage,
  formatWait,
  initialState,
  normalizeCode,
  transition,
  view,
} from "../src/dialog-state.js";

const T0 = 1_000_000;
const both = { methods: ["password", "email"] };

function run(events, request = both, options) {
  return events.reduce((state, event) => transition(state, event, options), initialState(request));
}

describe("dialog state", { timeout: 5_000 }, () => {
  test("offers only the methods the server named", () => {
    const all = view(initialState(both), T0);
    assert.equal(all.password.shown, true);
    assert.equal(all.sendCode.shown, true);
    assert.equal(all.code.shown, false, "the code field comes after a code was sent");
    assert.equal(all.status, "");
    assert.equal(all.nextTickAt, null);

    const emailOnly = view(initialState({ methods: ["email"] }), T0);
    assert.equal(emailOnly.password.shown, false);
    assert.equal(emailOnly.sendCode.shown, true);

    const unknown = view(initialState({ methods: ["passkey"] }), T0);
    assert.equal(unknown.password.shown || unknown.sendCode.shown, false);
  });

  test("a wrong password is an error on the password field; a new try clears it", () => {
    let state = run([
      { type: "start", step: "password" },
      { type: "result", step: "password", result: { ok: false, code: "INVALID_PASSWORD" }, now: T0 },
    ]);
    let shown = view(state, T0);
    assert.equal(shown.status, "That password is not right.");
    assert.equal(shown.statusKind, "error");
    assert.equal(shown.password.invalid, true);
    assert.equal(shown.password.disabled, false);
    assert.equal(shown.code.invalid, false);

    state = transition(state, { type: "start", step: "password" });
    shown = view(state, T0);
    assert.equal(shown.status, "Checking…");
    assert.equal(shown.statusKind, "busy");
    assert.equal(shown.busy, true);
    assert.equal(shown.password.disabled, true, "no second submit while one is in flight");
    assert.equal(shown.sendCode.disabled, true);

    state = transition(state, { type: "result", step: "password", result: { ok: true, expiresAt: 1 }, now: T0 });
    assert.equal(state.verified, true);
  });

  test("a rate limit blocks that step with a countdown, and lifts on time", () => {
    const state = run([
      { type: "start", step: "password" },
      { type: "result", step: "password", result: { ok: false, code: "RATE_LIMITED", retryAfterMs: 90_500 }, now: T0 },
    ]);
    let shown = view(state, T0);
    assert.equal(shown.status, "Too many attempts. Try again in 1:31.");
    assert.equal(shown.password.disabled, true);
    assert.equal(shown.password.wait, "Try again in 1:31");
    assert.equal(shown.sendCode.disabled, false, "another method's budget is its own");
    assert.equal(shown.nextTickAt, T0 + 500, "repaint when the shown second changes");

    shown = view(state, T0 + 500);
    assert.equal(shown.password.wait, "Try again in 1:30");
    assert.equal(shown.nextTickAt, T0 + 1_500);
    shown = view(state, T0 + 89_600);
    assert.equal(shown.password.wait, "Try again in 0:01");
    shown = view(state, T0 + 90_500);
    assert.equal(shown.password.disabled, false);
    assert.equal(shown.password.wait, "");
    assert.equal(shown.nextTickAt, null);
  });

  test("a sent code shows the field, says where it went, and counts down to a resend", () => {
    const state = run([
      { type: "start", step: "send" },
      { type: "result", step: "send", result: { ok: true, sentTo: "a**@example.com", expiresAt: 1 }, now: T0 },
    ]);
    let shown = view(state, T0);
    assert.equal(shown.sendCode.shown, false);
    assert.equal(shown.code.shown, true);
    assert.equal(shown.status, "We sent a 6-digit code to a**@example.com.");
    assert.equal(shown.statusKind, "info");
    assert.equal(shown.resend.disabled, true);
    assert.equal(shown.resend.label, "Send a new code in 1:00");
    shown = view(state, T0 + 59_001);
    assert.equal(shown.resend.label, "Send a new code in 0:01");
    shown = view(state, T0 + 60_000);
    assert.equal(shown.resend.disabled, false);
    assert.equal(shown.resend.label, "Send a new code");

    const quick = run([{ type: "result", step: "send", result: { ok: true, sentTo: "x" }, now: T0 }], both, {
      resendCooldownMs: 5_000,
    });
    assert.equal(view(quick, T0 + 5_000).resend.disabled, false);
  });

  test("a rate-limited resend waits for the server's retryAfterMs", () => {
    const state = run([
      { type: "result", step: "send", result: { ok: true, sentTo: "x" }, now: T0 },
      { type: "start", step: "send" },
      {
        type: "result",
        step: "send",
        result: { ok: false, code: "RATE_LIMITED", retryAfterMs: 300_000 },
        now: T0 + 61_000,
      },
    ]);
    const shown = view(state, T0 + 61_000);
    assert.equal(shown.resend.disabled, true);
    assert.equal(shown.resend.label, "Send a new code in 5:00");
    assert.equal(shown.status, "Too many attempts. Try again in 5:00.");
    assert.equal(shown.code.disabled, false, "the code already sent can still be entered");
  });

  test("wrong codes count down tries; a dead or expired code needs a new one", () => {
    const sent = run([{ type: "result", step: "send", result: { ok: true, sentTo: "x" }, now: T0 }]);
    const wrong = (attemptsLeft) =>
      transition(sent, {
        type: "result",
        step: "code",
        result: { ok: false, code: "INVALID_CODE", attemptsLeft },
        now: T0,
      });
    assert.equal(view(wrong(2), T0).status, "That code is not right. 2 tries left.");
    assert.equal(view(wrong(1), T0).status, "That code is not right. 1 try left.");
    assert.equal(view(wrong(1), T0).code.invalid, true);
    assert.equal(view(wrong(1), T0).code.disabled, false);
    assert.equal(view(wrong(0), T0).status, "That code no longer works. Send a new one.");
    assert.equal(view(wrong(0), T0).code.disabled, true);

    const expired = transition(sent, {
      type: "result",
      step: "code",
      result: { ok: false, code: "CODE_EXPIRED" },
      now: T0,
    });
    assert.equal(view(expired, T0).status, "That code has expired. Send a new one.");
    assert.equal(view(expired, T0).code.disabled, true);
    const again = transition(expired, { type: "start", step: "send" });
    assert.equal(view(again, T0).status, "Sending…");
    assert.equal(view(again, T0).code.disabled, true);
  });

  test("no password on the account: the password field goes, the email code stays", () => {
    const state = run([
      { type: "result", step: "password", result: { ok: false, code: "METHOD_NOT_AVAILABLE" }, now: T0 },
    ]);
    const shown = view(state, T0);
    assert.equal(shown.password.shown, false);
    assert.equal(shown.sendCode.shown, true);
    assert.match(shown.status, /no password/);
  });

  test("empty input, lost connections and unknown refusals have words too", () => {
    assert.equal(view(run([{ type: "invalid", step: "password" }]), T0).status, "Enter your password.");
    assert.equal(view(run([{ type: "invalid", step: "code" }]), T0).status, "Enter the 6 digits from the email.");
    const lost = run([
      { type: "start", step: "password" },
      { type: "failure", step: "password", error: new Error("Connection lost") },
    ]);
    assert.equal(view(lost, T0).status, "Something went wrong: Connection lost");
    assert.equal(view(lost, T0).busy, false);
    const unknown = run([
      {
        type: "result",
        step: "password",
        result: { ok: false, code: "UNAUTHENTICATED", message: "You must be signed in" },
        now: T0,
      },
    ]);
    assert.equal(view(unknown, T0).status, "Something went wrong: You must be signed in");
    assert.throws(() => transition(initialState(both), { type: "nonsense" }), TypeError);
  });

  test("labels replace the texts, as strings or functions", () => {
    const labels = {
      ...DEFAULT_LABELS,
      invalidCode: (left) => `Falscher Code, noch ${left} Versuche.`,
      invalidPassword: "Falsches Passwort.",
    };
    assert.equal(errorMessage({ code: "INVALID_CODE", attemptsLeft: 3 }, labels), "Falscher Code, noch 3 Versuche.");
    assert.equal(errorMessage({ code: "INVALID_PASSWORD" }, labels), "Falsches Passwort.");
  });

  test("formats waits and keeps only the digits of a typed or pasted code", () => {
    assert.equal(formatWait(0), "0:00");
    assert.equal(formatWait(1), "0:01");
    assert.equal(formatWait(59_999), "1:00");
    assert.equal(formatWait(61_000), "1:01");
    assert.equal(formatWait(3_600_000), "60:00");
    assert.equal(normalizeCode(" 123 456 "), "123456");
    assert.equal(normalizeCode("123-4567"), "123456");
    assert.equal(normalizeCode("Your code is 042917"), "042917");
    assert.equal(normalizeCode(undefined), "");
  });
});
