// withSensitiveActions against the real server and the demo app: real accounts (signed up over
// HTTP), the official ConvexClient fed by /api/auth/convex/token, the real sensitive:*
// functions, and mail read from the dev outbox.
//
// About "a level-4 grant spent elsewhere": in the demo app the only call that spends an
// org.delete grant is the orgs:remove that deletes that org, and orgs:remove checks that the
// org exists (NOT_FOUND) before it checks the grant. So when a second client on the same
// session spends the grant between the verification and the retry, the retry fails with
// NOT_FOUND, not with another SENSITIVE_VERIFICATION_REQUIRED: that test pins that the
// caller gets that real error after one dialog. The path "the retry is refused again" is
// driven against the real server by a handler that says `true` without a grant for the retry
// (to the server that is the same situation: a level-4 call and no live grant), and the exact
// spent-in-between sequence is in sensitive-actions.test.mjs, on an in-memory server.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SUITE } from "./support/budget.mjs";

import { ConvexHttpClient } from "convex/browser";
import { anyApi as api } from "convex/server";
import { ConvexError } from "convex/values";

import { VerificationCancelledError, withSensitiveActions } from "@stepup/client";

import { convexToken, latestCode, signedInClient, signInWithMagicLink, signUp } from "./support/accounts.mjs";
import { DEMO_APP, makeHttpClient, startServer, stopAllServers } from "./support/harness.mjs";

const TIMEOUT = { timeout: 20_000 };

async function rejection(promise) {
  return promise.then(
    (value) => assert.fail(`expected a rejection, got ${JSON.stringify(value)}`),
    (error) => error,
  );
}

describe("step-up against the demo app", SUITE, () => {
  let server;
  const clients = [];

  before(async () => {
    server = await startServer({ realAuth: true, app: DEMO_APP });
  });

  after(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await stopAllServers();
  });

  /** A new owner with an org: `{account, client, orgId, names()}`. */
  async function ownerWithOrg(name = "Acme") {
    const account = await signUp(server.url);
    const { client } = await signedInClient(server.url, account.sessionToken);
    clients.push(client);
    const orgId = await client.mutation(api.orgs.create, { name });
    const names = async () => (await client.query(api.orgs.list, {})).map((org) => org.name);
    return { account, client, orgId, names };
  }

  test("asks with the server's description and methods, verifies, and retries", TIMEOUT, async () => {
    const { account, client, orgId, names } = await ownerWithOrg();
    const refused = await rejection(client.mutation(api.orgs.remove, { orgId }));
    assert.ok(refused instanceof ConvexError);

    const requests = [];
    const answers = [];
    const wrapped = withSensitiveActions(client, {
      onVerificationRequired: async (request) => {
        requests.push(request);
        answers.push(await request.verifyPassword(account.password));
        return answers.at(-1).ok;
      },
    });
    assert.equal(await wrapped.mutation(api.orgs.remove, { orgId }), null);
    assert.equal(requests.length, 1);
    const [request] = requests;
    assert.equal(request.action, "org.delete");
    assert.equal(request.level, 4);
    assert.equal(request.resource, orgId);
    assert.equal(request.description, refused.data.description, "the server's words, as they are");
    assert.match(request.description, /Delete organization "Acme"/);
    assert.deepEqual(request.methods, ["password", "email"]);
    assert.equal(answers[0].ok, true);
    assert.equal(typeof answers[0].expiresAt, "number");
    assert.deepEqual(await names(), []);
    // The wrapper is the client for everything else.
    assert.deepEqual(await wrapped.query(api.orgs.list, {}), []);
  });

  test("a cancelled verification rejects with VerificationCancelledError; the org stays", TIMEOUT, async () => {
    const { client, orgId, names } = await ownerWithOrg("Keep me");
    const wrapped = withSensitiveActions(client, { onVerificationRequired: async () => false });
    const error = await rejection(wrapped.mutation(api.orgs.remove, { orgId }));
    assert.ok(error instanceof VerificationCancelledError);
    assert.equal(error.data.action, "org.delete");
    assert.equal(error.data.resource, orgId);
    assert.ok(error.cause instanceof ConvexError);
    assert.deepEqual(await names(), ["Keep me"]);
  });

  test("a wrong password is an answer, not an error; then the right one", TIMEOUT, async () => {
    const { account, client, orgId, names } = await ownerWithOrg();
    const answers = [];
    const wrapped = withSensitiveActions(client, {
      onVerificationRequired: async (request) => {
        answers.push(await request.verifyPassword("not my password"));
        answers.push(await request.verifyPassword(account.password));
        return answers.at(-1).ok;
      },
    });
    await wrapped.mutation(api.orgs.remove, { orgId });
    assert.deepEqual(answers[0], { ok: false, code: "INVALID_PASSWORD" });
    assert.equal(answers[1].ok, true);
    assert.deepEqual(await names(), []);
  });

  test(
    "an email code through the dev outbox: wrong code with tries left, resend cooldown, right code",
    TIMEOUT,
    async () => {
      const { account, client, orgId, names } = await ownerWithOrg();
      const seen = {};
      const wrapped = withSensitiveActions(client, {
        onVerificationRequired: async (request) => {
          seen.sent = await request.sendEmailCode();
          seen.again = await request.sendEmailCode(); // within the cooldown
          const code = await latestCode(server.url, account.email);
          seen.wrong = await request.verifyEmailCode(code === "000000" ? "111111" : "000000");
          seen.right = await request.verifyEmailCode(code);
          return seen.right.ok;
        },
      });
      await wrapped.mutation(api.orgs.remove, { orgId });
      assert.equal(seen.sent.ok, true);
      assert.match(seen.sent.sentTo, /^\w{1,2}\*+@example\.com$/, "a masked address");
      assert.equal(seen.again.ok, false);
      assert.equal(seen.again.code, "RATE_LIMITED");
      assert.ok(seen.again.retryAfterMs > 0 && seen.again.retryAfterMs <= 60_000, `${seen.again.retryAfterMs}`);
      assert.equal(seen.wrong.ok, false);
      assert.equal(seen.wrong.code, "INVALID_CODE");
      assert.equal(typeof seen.wrong.attemptsLeft, "number");
      assert.ok(seen.wrong.attemptsLeft > 0);
      assert.equal(seen.right.ok, true);
      assert.deepEqual(await names(), []);
    },
  );

  test(
    "a grant spent by another client before the retry: the retry's real error, after one dialog",
    TIMEOUT,
    async () => {
      const { account, client, orgId, names } = await ownerWithOrg();
      // A second, wrapper-free client on the same session (another tab).
      const { client: other } = await signedInClient(server.url, account.sessionToken);
      clients.push(other);
      let dialogs = 0;
      const wrapped = withSensitiveActions(client, {
        onVerificationRequired: async (request) => {
          dialogs++;
          assert.equal((await request.verifyPassword(account.password)).ok, true);
          // The grant is the session's, so the other tab's call spends it (and deletes the org).
          assert.equal(await other.mutation(api.orgs.remove, { orgId }), null);
          return true;
        },
      });
      const error = await rejection(wrapped.mutation(api.orgs.remove, { orgId }));
      assert.ok(error instanceof ConvexError);
      assert.equal(error.data.code, "NOT_FOUND");
      assert.equal(dialogs, 1);
      assert.deepEqual(await names(), []);
    },
  );

  test("a level-4 retry refused again asks again, and the rounds are bounded", TIMEOUT, async () => {
    const { account, client, orgId, names } = await ownerWithOrg();
    const rounds = [];
    const wrapped = withSensitiveActions(client, {
      onVerificationRequired: async (request) => {
        rounds.push(request.round);
        // Round 1 says "verified" with no grant, as if it had been spent elsewhere.
        if (request.round === 1) return true;
        return (await request.verifyPassword(account.password)).ok;
      },
    });
    assert.equal(await wrapped.mutation(api.orgs.remove, { orgId }), null);
    assert.deepEqual(rounds, [1, 2]);
    assert.deepEqual(await names(), []);

    const second = await ownerWithOrg("Stays");
    const endless = [];
    const stubborn = withSensitiveActions(second.client, {
      onVerificationRequired: async (request) => endless.push(request.round) > 0,
    });
    const error = await rejection(stubborn.mutation(api.orgs.remove, { orgId: second.orgId }));
    assert.ok(error instanceof ConvexError);
    assert.equal(error.data.code, "SENSITIVE_VERIFICATION_REQUIRED", "the server's refusal itself");
    assert.deepEqual(endless, [1, 2, 3]);
    assert.deepEqual(await second.names(), ["Stays"]);
  });

  test("concurrent protected calls open one dialog at a time", TIMEOUT, async () => {
    const { account, client, orgId, names } = await ownerWithOrg("One");
    const others = [
      await client.mutation(api.orgs.create, { name: "Two" }),
      await client.mutation(api.orgs.create, { name: "Three" }),
    ];
    let open = 0;
    let most = 0;
    const resources = [];
    const wrapped = withSensitiveActions(client, {
      onVerificationRequired: async (request) => {
        open++;
        most = Math.max(most, open);
        resources.push(request.resource);
        await new Promise((resolve) => setTimeout(resolve, 50)); // a user, reading
        const { ok } = await request.verifyPassword(account.password);
        open--;
        return ok;
      },
    });
    const all = [orgId, ...others];
    assert.deepEqual(await Promise.all(all.map((id) => wrapped.mutation(api.orgs.remove, { orgId: id }))), [
      null,
      null,
      null,
    ]);
    assert.equal(most, 1);
    assert.deepEqual([...resources].sort(), [...all].sort(), "each org's grant is its own: one dialog each");
    assert.deepEqual(await names(), []);
  });

  test("the same on a ConvexHttpClient", TIMEOUT, async () => {
    const { account, orgId, names } = await ownerWithOrg("Over HTTP");
    const http = makeHttpClient(server.url);
    http.setAuth(await convexToken(server.url, account.sessionToken));
    const requests = [];
    const wrapped = withSensitiveActions(http, {
      onVerificationRequired: async (request) => {
        requests.push(request);
        return (await request.verifyPassword(account.password)).ok;
      },
    });
    assert.ok(wrapped instanceof ConvexHttpClient);
    assert.deepEqual(await wrapped.query(api.orgs.list, {}), [{ _id: orgId, name: "Over HTTP", role: "owner" }]);
    assert.equal(await wrapped.mutation(api.orgs.remove, { orgId }), null);
    assert.equal(requests.length, 1);
    assert.equal(requests[0].resource, orgId);
    assert.deepEqual(await names(), []);
  });

  test("a user without a password is offered the email code only", TIMEOUT, async () => {
    const account = await signInWithMagicLink(server.url);
    const { client } = await signedInClient(server.url, account.sessionToken);
    clients.push(client);
    const orgId = await client.mutation(api.orgs.create, { name: "No password" });
    const seen = {};
    const wrapped = withSensitiveActions(client, {
      onVerificationRequired: async (request) => {
        seen.methods = request.methods;
        seen.password = await request.verifyPassword("anything");
        await request.sendEmailCode();
        return (await request.verifyEmailCode(await latestCode(server.url, account.email))).ok;
      },
    });
    await wrapped.mutation(api.orgs.remove, { orgId });
    assert.deepEqual(seen.methods, ["email"]);
    assert.deepEqual(seen.password, { ok: false, code: "METHOD_NOT_AVAILABLE" });
    assert.deepEqual(await client.query(api.orgs.list, {}), []);
  });

  test("level 1 on a fresh session needs no dialog", TIMEOUT, async () => {
    const { client, orgId, names } = await ownerWithOrg("Old");
    const wrapped = withSensitiveActions(client, {
      onVerificationRequired: async () => assert.fail("a fresh session passes level 1"),
    });
    await wrapped.mutation(api.orgs.rename, { orgId, name: "New" });
    assert.deepEqual(await names(), ["New"]);
  });
});
