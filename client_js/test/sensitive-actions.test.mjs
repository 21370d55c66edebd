// The core of withSensitiveActions against an in-memory stand-in for the server's step-up
// rules (test/support/fake-step-up.mjs): pass-through, ask-verify-retry, cancel, bounded
// rounds, and one dialog at a time. The same paths against the real server are in
// step-up.test.mjs.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { ConvexError } from "convex/values";

import { VerificationCancelledError, verificationRequired, withSensitiveActions } from "@stepup/client";

import { FakeStepUpServer } from "./support/fake-step-up.mjs";

const TIMEOUT = { timeout: 5_000 };

function setup({ level = 4, handler, maxRounds } = {}) {
  const server = new FakeStepUpServer();
  server.protect("orgs:remove", {
    action: "org.delete",
    level,
    resource: (args) => args.orgId,
    run: (args) => `removed ${args.orgId}`,
    description: "Delete the organization",
  });
  server.protect("account:remove", { action: "account.delete", level: 4, run: () => "bye" });
  const client = server.client();
  const requests = [];
  const wrapped = withSensitiveActions(client, {
    onVerificationRequired: async (request) => {
      requests.push(request);
      return handler(request, server);
    },
    maxRounds,
  });
  return { server, client, wrapped, requests };
}

async function rejection(promise) {
  return promise.then(
    (value) => assert.fail(`expected a rejection, got ${JSON.stringify(value)}`),
    (error) => error,
  );
}

const verifies = async (request) => (await request.verifyPassword("right")).ok;

describe("withSensitiveActions", TIMEOUT, () => {
  test("passes everything but a refused mutation through untouched", async () => {
    const { server, client, wrapped, requests } = setup({ handler: verifies });
    assert.equal(wrapped.url, "fake://server");
    assert.deepEqual(await wrapped.query("orgs:list", { a: 1 }), { ok: "query", args: { a: 1 } });
    assert.equal(wrapped.query, wrapped.query, "a method is the same function each time");
    assert.deepEqual(await wrapped.mutation("notes:add", { text: "x" }), { ran: "notes:add", args: { text: "x" } });
    const failure = await rejection(wrapped.mutation("fails:notFound", {}));
    assert.ok(failure instanceof ConvexError);
    assert.equal(failure.data.code, "NOT_FOUND");
    assert.equal((await rejection(wrapped.mutation("fails:plain", {}))).message, "plain failure");
    wrapped.close();
    assert.equal(client.closed, true, "methods run on the client itself");
    wrapped.extra = 5;
    assert.equal(client.extra, 5);
    assert.equal(requests.length, 0);
    assert.equal(server.count("sensitive:verifyPassword"), 0);
  });

  test("asks, verifies through the same client, and retries once with the same arguments", async () => {
    const { server, wrapped, requests } = setup({ handler: verifies });
    const options = { optimisticUpdate: () => {} };
    assert.equal(await wrapped.mutation("orgs:remove", { orgId: "A" }, options), "removed A");
    assert.equal(requests.length, 1);
    const [request] = requests;
    assert.equal(request.action, "org.delete");
    assert.equal(request.level, 4);
    assert.equal(request.resource, "A");
    assert.equal(request.description, "Delete the organization");
    assert.deepEqual(request.methods, ["password", "email"]);
    assert.equal(request.round, 1);
    assert.equal(request.data.code, "SENSITIVE_VERIFICATION_REQUIRED");
    assert.ok(request.error instanceof ConvexError);
    assert.deepEqual(
      server.calls.map(([name, args, callOptions]) => [name, args, callOptions === options]),
      [
        ["orgs:remove", { orgId: "A" }, true],
        ["sensitive:verifyPassword", { action: "org.delete", resource: "A", password: "right" }, false],
        ["orgs:remove", { orgId: "A" }, true],
      ],
    );
  });

  test("binds the request's calls to the action, leaving out a null resource", async () => {
    const { server, wrapped } = setup({
      handler: async (request) => {
        assert.deepEqual(await request.verifyPassword("wrong"), { ok: false, code: "INVALID_PASSWORD" });
        assert.deepEqual(await request.sendEmailCode(), { ok: true, sentTo: "a**@example.com", expiresAt: 2 });
        assert.deepEqual(await request.verifyEmailCode("000000"), { ok: false, code: "INVALID_CODE", attemptsLeft: 4 });
        // A refusal the server throws is answered in the same shape; a lost connection rejects.
        assert.deepEqual(await request.verifyPassword("anonymous"), {
          ok: false,
          code: "UNAUTHENTICATED",
          message: "You must be signed in",
        });
        await assert.rejects(request.verifyPassword("network"), /Connection lost/);
        return (await request.verifyEmailCode("123456")).ok;
      },
    });
    assert.equal(await wrapped.mutation("account:remove", {}), "bye");
    const targets = server.calls.filter(([name]) => name.startsWith("sensitive:")).map(([, args]) => args);
    for (const args of targets) {
      assert.equal(args.action, "account.delete");
      assert.ok(!("resource" in args), `no resource in ${JSON.stringify(args)}`);
    }
  });

  test("a cancelled verification rejects with VerificationCancelledError and does not retry", async () => {
    for (const answer of [false, undefined, "yes"]) {
      const { server, wrapped } = setup({ handler: () => answer });
      const error = await rejection(wrapped.mutation("orgs:remove", { orgId: "A" }));
      assert.ok(error instanceof VerificationCancelledError, `${answer} cancels`);
      assert.equal(error.name, "VerificationCancelledError");
      assert.equal(error.code, "VERIFICATION_CANCELLED");
      assert.equal(error.data.action, "org.delete");
      assert.ok(error.cause instanceof ConvexError);
      assert.equal(verificationRequired(error.cause), error.data);
      assert.equal(server.count("orgs:remove"), 1);
    }
  });

  test("the retry's own failure reaches the caller", async () => {
    const { server, wrapped, requests } = setup({
      handler: async (request, fake) => {
        await request.verifyPassword("right");
        fake.protected.get("orgs:remove").run = () => {
          throw new ConvexError({ code: "NOT_FOUND", message: "No such organization" });
        };
        return true;
      },
    });
    const error = await rejection(wrapped.mutation("orgs:remove", { orgId: "A" }));
    assert.equal(error.data.code, "NOT_FOUND");
    assert.equal(requests.length, 1);
    assert.equal(server.count("orgs:remove"), 2);
  });

  test("a level-4 grant spent elsewhere before the retry asks again", async () => {
    const { wrapped, requests } = setup({
      handler: async (request, fake) => {
        await request.verifyPassword("right");
        if (request.round === 1) fake.spend("org.delete", "A"); // another tab's call spent it
        return true;
      },
    });
    assert.equal(await wrapped.mutation("orgs:remove", { orgId: "A" }), "removed A");
    assert.deepEqual(
      requests.map((request) => request.round),
      [1, 2],
    );
  });

  test("rounds are bounded: then the server's refusal itself", async () => {
    const { server, wrapped, requests } = setup({ handler: () => true, maxRounds: 3 });
    const error = await rejection(wrapped.mutation("orgs:remove", { orgId: "A" }));
    assert.ok(error instanceof ConvexError);
    assert.equal(error.data.code, "SENSITIVE_VERIFICATION_REQUIRED");
    assert.deepEqual(
      requests.map((request) => request.round),
      [1, 2, 3],
    );
    assert.equal(server.count("orgs:remove"), 4);
  });

  test("one dialog at a time: a waiting call retries first, and asks only if still refused", async () => {
    let open = 0;
    let most = 0;
    let release;
    const firstShown = new Promise((resolve) => (release = resolve));
    const { server, wrapped, requests } = setup({
      level: 3, // a level-3 grant is not spent: one verification covers both calls on A
      handler: async (request) => {
        open++;
        most = Math.max(most, open);
        release();
        await new Promise((resolve) => setTimeout(resolve, 20));
        const { ok } = await request.verifyPassword("right");
        open--;
        return ok;
      },
    });
    const first = wrapped.mutation("orgs:remove", { orgId: "A" });
    await firstShown;
    const second = wrapped.mutation("orgs:remove", { orgId: "A", again: true });
    const third = wrapped.mutation("orgs:remove", { orgId: "B" });
    assert.deepEqual(await Promise.all([first, second, third]), ["removed A", "removed A", "removed B"]);
    assert.equal(most, 1);
    assert.deepEqual(
      requests.map((request) => request.resource),
      ["A", "B"],
    );
    assert.equal(server.count("sensitive:verifyPassword"), 2);
  });

  test("wrappers of one client share the queue; a throwing handler releases it", async () => {
    const server = new FakeStepUpServer();
    server.protect("orgs:remove", { action: "org.delete", level: 4, resource: (args) => args.orgId, run: () => "ok" });
    const client = server.client();
    let open = 0;
    let most = 0;
    const handler = async (request) => {
      open++;
      most = Math.max(most, open);
      await new Promise((resolve) => setTimeout(resolve, 10));
      open--;
      if (request.resource === "boom") throw new Error("handler failed");
      return (await request.verifyPassword("right")).ok;
    };
    const one = withSensitiveActions(client, { onVerificationRequired: handler });
    const two = withSensitiveActions(client, { onVerificationRequired: handler });
    const results = await Promise.allSettled([
      one.mutation("orgs:remove", { orgId: "boom" }),
      two.mutation("orgs:remove", { orgId: "A" }),
      one.mutation("orgs:remove", { orgId: "B" }),
    ]);
    assert.equal(results[0].reason.message, "handler failed");
    assert.deepEqual(
      results.slice(1).map((result) => result.value),
      ["ok", "ok"],
    );
    assert.equal(most, 1);
  });

  test("wrapping a wrapper wraps the client itself: one handler per call", async () => {
    const { wrapped: inner, requests: innerRequests } = setup({ handler: verifies });
    const outerRequests = [];
    const outer = withSensitiveActions(inner, {
      onVerificationRequired: async (request) => {
        outerRequests.push(request);
        return request.verifyPassword("right").then((answer) => answer.ok);
      },
    });
    assert.equal(await outer.mutation("orgs:remove", { orgId: "A" }), "removed A");
    assert.equal(outerRequests.length, 1);
    assert.equal(innerRequests.length, 0);
    assert.equal(await inner.mutation("orgs:remove", { orgId: "B" }), "removed B");
    assert.equal(innerRequests.length, 1);
  });

  test("only calls through the wrapper are retried", async () => {
    const { client, requests } = setup({ handler: verifies });
    const error = await rejection(client.mutation("orgs:remove", { orgId: "A" }));
    assert.equal(verificationRequired(error).action, "org.delete");
    assert.equal(requests.length, 0);
  });

  test("misuse is a TypeError", () => {
    const client = new FakeStepUpServer().client();
    assert.throws(() => withSensitiveActions(null, { onVerificationRequired: () => true }), TypeError);
    assert.throws(() => withSensitiveActions({}, { onVerificationRequired: () => true }), TypeError);
    assert.throws(() => withSensitiveActions(client, {}), TypeError);
    assert.throws(() => withSensitiveActions(client), TypeError);
    assert.throws(() => withSensitiveActions(client, { onVerificationRequired: () => true, maxRounds: 0 }), TypeError);
  });
});
