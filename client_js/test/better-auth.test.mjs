// The official Better Auth client (`createAuthClient` from `better-auth/client`, with its
// `magicLinkClient` plugin) against the server's /api/auth endpoints, unchanged (CONTRACT §3).
//
// Node has no cookie jar, so each client carries its session the way Better Auth documents for
// non-browser callers: `fetchOptions.auth = {type: "Bearer", token}`, the token captured in
// `onSuccess` from the sign-in answer (the `set-auth-token` header of Better Auth's bearer
// plugin when present, else the `token` of the JSON body, which this server sends).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SUITE } from "./support/budget.mjs";

import { createAuthClient } from "better-auth/client";
import { magicLinkClient } from "better-auth/client/plugins";

import { startServer, stopAllServers } from "./support/harness.mjs";

/** The newest link matching `pattern` mailed to `email`, from the dev outbox. */
async function latestLink(server, email, pattern) {
  const response = await fetch(`${server.url}/api/dev/outbox?to=${encodeURIComponent(email)}`);
  assert.equal(response.status, 200);
  for (const mail of await response.json()) {
    const match = pattern.exec(mail.text);
    if (match) return new URL(match[0]);
  }
  assert.fail(`no such link mailed to ${email}`);
}

function latestVerificationLink(server, email) {
  return latestLink(server, email, /https?:\/\/\S+\/api\/auth\/verify-email\?\S+/);
}

const TIMEOUT = { timeout: 15_000 };
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const PASSWORD = "correct horse battery staple";

describe("the Better Auth client", SUITE, () => {
  let server;

  before(async () => {
    server = await startServer({ realAuth: true });
  });

  after(async () => {
    await stopAllServers();
  });

  /** A Better Auth client with its own bearer token (`holder.token`), as a Node app would. */
  function authClient() {
    const holder = { token: null, headerTokens: [] };
    const client = createAuthClient({
      baseURL: server.url, // "/api/auth" is appended by the client
      plugins: [magicLinkClient()],
      fetchOptions: {
        auth: { type: "Bearer", token: () => holder.token ?? undefined },
        onSuccess(context) {
          const fromHeader = context.response.headers.get("set-auth-token");
          if (fromHeader) holder.headerTokens.push(fromHeader);
          const fromBody =
            context.data && typeof context.data === "object" ? context.data.token : null;
          if (fromHeader || typeof fromBody === "string") holder.token = fromHeader || fromBody;
        },
      },
    });
    return { client, holder };
  }

  /** GET an auth endpoint as plain JSON (no date parsing), with an optional bearer token. */
  async function raw(path, token) {
    const response = await fetch(`${server.url}/api/auth${path}`, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    assert.equal(response.status, 200, `${path}: ${response.status}`);
    return { body: await response.json(), headers: response.headers };
  }

  /** The newest magic link mailed to `email`, from the dev outbox. */
  async function latestMagicLink(email) {
    return latestLink(server, email, /https?:\/\/\S+\/api\/auth\/magic-link\/verify\?\S+/);
  }

  function assertDate(value, rawValue, what) {
    assert.ok(value instanceof Date, `${what} is a Date (got ${typeof value}: ${value})`);
    assert.ok(!Number.isNaN(value.getTime()), `${what} is a valid Date`);
    assert.match(rawValue, ISO_MS, `${what} on the wire`);
    assert.equal(value.getTime(), Date.parse(rawValue), `${what} parsed to the wire's instant`);
  }

  function assertRecent(date, what, since) {
    const slack = 5_000;
    assert.ok(
      date.getTime() >= since - slack && date.getTime() <= Date.now() + slack,
      `${what} ${date.toISOString()} is about now`,
    );
  }

  const email = `ba-${process.pid}-${Date.now()}@example.com`;
  const state = {};

  test(
    "signUp.email: {token, user}, dates parsed; a second sign-up is refused",
    TIMEOUT,
    async () => {
      const { client, holder } = authClient();
      const started = Date.now();
      const { data, error } = await client.signUp.email({ email, password: PASSWORD, name: "Ada" });
      assert.equal(error, null, JSON.stringify(error));
      assert.equal(typeof data.token, "string");
      assert.equal(holder.token, data.token, "onSuccess captured the session token");
      const { user } = data;
      assert.equal(typeof user.id, "string");
      assert.equal(user.email, email);
      assert.equal(user.name, "Ada");
      assert.equal(user.emailVerified, false);
      assert.ok("image" in user, "user.image is present (null)");
      assert.equal(user.image ?? null, null);
      assert.ok(user.createdAt instanceof Date && user.updatedAt instanceof Date);
      assertRecent(user.createdAt, "user.createdAt", started);
      state.user = user;

      const again = await client.signUp.email({ email, password: PASSWORD, name: "Ada" });
      assert.equal(again.data, null);
      assert.equal(again.error?.status, 422);
      assert.equal(again.error?.code, "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL");
    },
  );

  test(
    "sendVerificationEmail, then verifyEmail with the mailed token: verified, password kept",
    TIMEOUT,
    async () => {
      const { client, holder } = authClient();
      assert.equal((await client.signIn.email({ email, password: PASSWORD })).error, null);
      const before = holder.token;

      const sent = await client.sendVerificationEmail({ email, callbackURL: "/welcome" });
      assert.equal(sent.error, null, JSON.stringify(sent.error));
      assert.deepEqual(sent.data, { status: true });
      const link = await latestVerificationLink(server, email);
      assert.equal(link.searchParams.get("callbackURL"), "/welcome");
      const token = link.searchParams.get("token");

      const { data, error } = await client.verifyEmail({ query: { token } });
      assert.equal(error, null, JSON.stringify(error));
      assert.equal(data.status, true);
      assert.equal(data.user.id, state.user.id);
      assert.equal(data.user.emailVerified, true);
      assert.ok(data.user.updatedAt instanceof Date);
      assert.notEqual(holder.token, before, "signed in afresh by the link");
      assert.equal((await client.getSession()).data?.user.emailVerified, true);
      assert.equal((await raw("/get-session", before)).body, null, "older sessions end");

      const again = await client.verifyEmail({ query: { token } });
      assert.equal(again.data, null);
      assert.equal(again.error?.status, 401);
      assert.equal(again.error?.code, "INVALID_TOKEN");
      const verified = await client.sendVerificationEmail({ email });
      assert.equal(verified.error?.status, 400);
      assert.equal(verified.error?.code, "EMAIL_ALREADY_VERIFIED");

      const signedIn = await authClient().client.signIn.email({ email, password: PASSWORD });
      assert.equal(signedIn.error, null, "the confirmed password still signs in");
      assert.equal(signedIn.data.user.emailVerified, true);
    },
  );

  test(
    "an attacker's sign-up with someone's address does not survive their magic link",
    TIMEOUT,
    async () => {
      const victim = `ph-${process.pid}-${Date.now()}@example.com`;
      const attacker = authClient();
      const planted = "the attacker chose this";
      const up = await attacker.client.signUp.email({ email: victim, password: planted, name: "X" });
      assert.equal(up.error, null, JSON.stringify(up.error));

      const owner = authClient();
      assert.equal((await owner.client.signIn.magicLink({ email: victim })).error, null);
      const token = (await latestMagicLink(victim)).searchParams.get("token");
      const { data, error } = await owner.client.magicLink.verify({ query: { token } });
      assert.equal(error, null, JSON.stringify(error));
      assert.equal(data.user.id, up.data.user.id);
      assert.equal(data.user.emailVerified, true);

      assert.equal((await attacker.client.getSession()).data, null, "the attacker is signed out");
      const back = await authClient().client.signIn.email({ email: victim, password: planted });
      assert.equal(back.error?.status, 401, "and the planted password is gone");
    },
  );

  test(
    "signIn.email: right password signs in; wrong password and unknown email are 401",
    TIMEOUT,
    async () => {
      const { client, holder } = authClient();
      const { data, error } = await client.signIn.email({ email, password: PASSWORD });
      assert.equal(error, null, JSON.stringify(error));
      assert.equal(data.redirect, false);
      assert.equal(typeof data.token, "string");
      assert.equal(holder.token, data.token);
      assert.equal(data.user.id, state.user.id);
      assert.equal(data.user.createdAt.getTime(), state.user.createdAt.getTime());

      const wrong = authClient();
      const bad = await wrong.client.signIn.email({ email, password: "not the password" });
      assert.equal(bad.data, null);
      assert.equal(bad.error?.status, 401);
      assert.equal(bad.error?.code, "INVALID_EMAIL_OR_PASSWORD");
      assert.equal(typeof bad.error?.message, "string");
      assert.equal(wrong.holder.token, null, "no token captured from a failed sign-in");

      const unknown = await wrong.client.signIn.email({
        email: `nobody-${process.pid}@example.com`,
        password: PASSWORD,
      });
      assert.equal(unknown.error?.status, 401);
      assert.equal(unknown.error?.code, "INVALID_EMAIL_OR_PASSWORD");
    },
  );

  test(
    "getSession: session and user whole, dates parsed as Dates of the right instants",
    TIMEOUT,
    async () => {
      const { client, holder } = authClient();
      const started = Date.now();
      const signedIn = await client.signIn.email({ email, password: PASSWORD });
      assert.equal(signedIn.error, null, JSON.stringify(signedIn.error));

      const { data, error } = await client.getSession();
      assert.equal(error, null, JSON.stringify(error));
      assert.ok(data?.session && data?.user, `getSession data: ${JSON.stringify(data)}`);
      const { session, user } = data;
      const wire = await raw("/get-session", holder.token);
      assert.equal(wire.headers.get("cache-control"), "no-store");

      assert.equal(user.id, state.user.id);
      assert.equal(user.email, email);
      assert.equal(user.name, "Ada");
      assert.equal(user.emailVerified, true, "verified by its link, earlier in this suite");
      for (const field of ["createdAt", "updatedAt"]) {
        assertDate(user[field], wire.body.user[field], `user.${field}`);
      }
      assert.equal(user.createdAt.getTime(), state.user.createdAt.getTime());

      assert.equal(typeof session.id, "string");
      assert.equal(session.userId, user.id);
      for (const field of ["createdAt", "updatedAt", "expiresAt"]) {
        assertDate(session[field], wire.body.session[field], `session.${field}`);
      }
      assertRecent(session.createdAt, "session.createdAt", started);
      assert.ok(
        session.expiresAt.getTime() > session.createdAt.getTime() + 60 * 60 * 1000,
        "the session lives longer than an hour",
      );
      assert.ok(session.expiresAt.getTime() > Date.now());

      // No token: null, not an error.
      const anonymous = authClient();
      const none = await anonymous.client.getSession();
      assert.equal(none.error, null, JSON.stringify(none.error));
      assert.equal(none.data, null);
    },
  );

  test("signOut: {success: true}, and the session is gone", TIMEOUT, async () => {
    const { client, holder } = authClient();
    await client.signIn.email({ email, password: PASSWORD });
    const token = holder.token;
    assert.ok((await client.getSession()).data?.session);

    const { data, error } = await client.signOut();
    assert.equal(error, null, JSON.stringify(error));
    assert.deepEqual(data, { success: true });

    const after = await client.getSession(); // still sends the old token
    assert.equal(after.error, null);
    assert.equal(after.data, null);
    assert.equal((await raw("/get-session", token)).body, null);
  });

  test(
    "magic link: signIn.magicLink, then magicLink.verify with the mailed token",
    TIMEOUT,
    async () => {
      const fresh = `ml-${process.pid}-${Date.now()}@example.com`;
      const { client, holder } = authClient();
      const started = Date.now();

      const sent = await client.signIn.magicLink({ email: fresh });
      assert.equal(sent.error, null, JSON.stringify(sent.error));
      assert.deepEqual(sent.data, { status: true });
      assert.equal(holder.token, null);

      const link = await latestMagicLink(fresh);
      assert.equal(link.origin, server.url, "the link points at this server");
      const token = link.searchParams.get("token");
      assert.ok(token, `token in ${link}`);

      const { data, error } = await client.magicLink.verify({ query: { token } });
      assert.equal(error, null, JSON.stringify(error));
      assert.equal(typeof data.token, "string");
      assert.equal(holder.token, data.token);
      assert.equal(data.user.email, fresh);
      assert.equal(data.user.emailVerified, true, "a magic link proves the address");
      assert.ok(data.user.createdAt instanceof Date);
      assertRecent(data.user.createdAt, "new user.createdAt", started);

      const session = await client.getSession();
      assert.equal(session.data?.user.id, data.user.id);
      assert.equal(session.data?.user.emailVerified, true);

      // Single use: the same link again signs nobody in.
      const reuse = authClient();
      const again = await reuse.client.magicLink.verify({ query: { token } });
      assert.equal(again.data, null, `a spent link answered ${JSON.stringify(again.data)}`);
      assert.ok(
        again.error?.status >= 400 && again.error?.status < 500,
        `status ${again.error?.status}`,
      );
      assert.equal(reuse.holder.token, null);

      // An unknown email gets the same answer (no account enumeration).
      const other = await client.signIn.magicLink({ email: `ml2-${process.pid}@example.com` });
      assert.deepEqual(other.data, { status: true });
    },
  );

  test(
    "magic link for an existing password user: the same user, now verified",
    TIMEOUT,
    async () => {
      const { client } = authClient();
      const sent = await client.signIn.magicLink({ email });
      assert.equal(sent.error, null, JSON.stringify(sent.error));
      const token = (await latestMagicLink(email)).searchParams.get("token");
      const { data, error } = await client.magicLink.verify({ query: { token } });
      assert.equal(error, null, JSON.stringify(error));
      assert.equal(data.user.id, state.user.id);
      assert.equal(data.user.emailVerified, true);
    },
  );

  test("listSessions and revokeOtherSessions", TIMEOUT, async () => {
    const who = `ls-${process.pid}-${Date.now()}@example.com`;
    const first = authClient();
    const up = await first.client.signUp.email({ email: who, password: PASSWORD, name: "Lin" });
    assert.equal(up.error, null, JSON.stringify(up.error));
    const second = authClient();
    const third = authClient();
    assert.equal(
      (await second.client.signIn.email({ email: who, password: PASSWORD })).error,
      null,
    );
    assert.equal((await third.client.signIn.email({ email: who, password: PASSWORD })).error, null);

    const mine = (await first.client.getSession()).data.session;
    const { data: listed, error } = await first.client.listSessions();
    assert.equal(error, null, JSON.stringify(error));
    assert.ok(Array.isArray(listed), `listSessions data: ${JSON.stringify(listed)}`);
    assert.equal(listed.length, 3);
    const wire = (await raw("/list-sessions", first.holder.token)).body;
    for (const [i, session] of listed.entries()) {
      assert.equal(session.userId, up.data.user.id);
      assert.equal(typeof session.id, "string");
      for (const field of ["createdAt", "updatedAt", "expiresAt"]) {
        const rawSession = wire.find((s) => s.id === session.id);
        assertDate(session[field], rawSession[field], `sessions[${i}].${field}`);
      }
    }
    assert.ok(
      listed.some((s) => s.id === mine.id),
      "the caller's session is listed",
    );

    assert.equal((await second.client.getSession()).data?.user.id, up.data.user.id);

    const revoked = await first.client.revokeOtherSessions();
    assert.equal(revoked.error, null, JSON.stringify(revoked.error));
    assert.deepEqual(revoked.data, { status: true });

    assert.equal((await second.client.getSession()).data, null, "the second session is revoked");
    assert.equal((await third.client.getSession()).data, null, "the third session is revoked");
    assert.equal((await first.client.getSession()).data?.session.id, mine.id, "the caller's stays");
    const left = await first.client.listSessions();
    assert.deepEqual(
      left.data.map((s) => s.id),
      [mine.id],
    );
  });

  // Places where the server once differed from Better Auth; now it conforms.

  test(
    "revokeSession({token}) revokes that one session (Better Auth's body is {token})",
    TIMEOUT,
    async () => {
      const who = `rs-${process.pid}-${Date.now()}@example.com`;
      const first = authClient();
      const second = authClient();
      assert.equal(
        (await first.client.signUp.email({ email: who, password: PASSWORD, name: "Rae" })).error,
        null,
      );
      assert.equal(
        (await second.client.signIn.email({ email: who, password: PASSWORD })).error,
        null,
      );

      const { data, error } = await first.client.revokeSession({ token: second.holder.token });
      assert.equal(error, null, JSON.stringify(error));
      assert.deepEqual(data, { status: true });
      assert.equal((await second.client.getSession()).data, null, "the named session is revoked");
      assert.ok((await first.client.getSession()).data?.session, "the caller's session stays");
    },
  );

  test(
    "signOut with a dead session still answers {success: true} (and clears the cookie)",
    TIMEOUT,
    async () => {
      const { client } = authClient();
      assert.equal((await client.signIn.email({ email, password: PASSWORD })).error, null);
      assert.deepEqual((await client.signOut()).data, { success: true });
      const again = await client.signOut(); // the same, now revoked, token
      assert.equal(again.error, null, JSON.stringify(again.error));
      assert.equal(again.data?.success, true);
    },
  );

  test(
    "magicLink.verify without a callbackURL answers {token, user, session}",
    TIMEOUT,
    async () => {
      const who = `mv-${process.pid}-${Date.now()}@example.com`;
      const { client } = authClient();
      assert.equal((await client.signIn.magicLink({ email: who })).error, null);
      const token = (await latestMagicLink(who)).searchParams.get("token");
      const { data, error } = await client.magicLink.verify({ query: { token } });
      assert.equal(error, null, JSON.stringify(error));
      assert.equal(data.session?.userId, data.user.id);
      assert.ok(data.session?.expiresAt instanceof Date);
    },
  );
});

describe("the Better Auth client, with email verification required", SUITE, () => {
  let server;

  before(async () => {
    server = await startServer({ realAuth: true, requireEmailVerification: true });
  });

  after(async () => {
    await stopAllServers();
  });

  function authClient() {
    const holder = { token: null };
    const client = createAuthClient({
      baseURL: server.url,
      plugins: [magicLinkClient()],
      fetchOptions: {
        auth: { type: "Bearer", token: () => holder.token ?? undefined },
        onSuccess(context) {
          const token = context.data && typeof context.data === "object" ? context.data.token : null;
          if (typeof token === "string") holder.token = token;
        },
      },
    });
    return { client, holder };
  }

  test(
    "signUp gives no session; signIn is 403 EMAIL_NOT_VERIFIED until the link is followed",
    TIMEOUT,
    async () => {
      const email = `rv-${process.pid}-${Date.now()}@example.com`;
      const { client, holder } = authClient();
      const up = await client.signUp.email({ email, password: PASSWORD, name: "Ria" });
      assert.equal(up.error, null, JSON.stringify(up.error));
      assert.equal(up.data.token, null);
      assert.equal(up.data.user.emailVerified, false);
      assert.equal(holder.token, null);

      const refused = await client.signIn.email({ email, password: PASSWORD });
      assert.equal(refused.data, null);
      assert.equal(refused.error?.status, 403);
      assert.equal(refused.error?.code, "EMAIL_NOT_VERIFIED");
      const wrong = await client.signIn.email({ email, password: "not the password at all" });
      assert.equal(wrong.error?.status, 401);

      const again = await authClient().client.signUp.email({ email, password: PASSWORD, name: "R" });
      assert.equal(again.error, null, "an address with an account gets the same answer");
      assert.equal(again.data.token, null);

      const token = (await latestVerificationLink(server, email)).searchParams.get("token");
      const verified = await client.verifyEmail({ query: { token } });
      assert.equal(verified.error, null, JSON.stringify(verified.error));
      assert.equal(verified.data.user.emailVerified, true);
      assert.equal((await client.getSession()).data?.user.email, email);

      const signedIn = await authClient().client.signIn.email({ email, password: PASSWORD });
      assert.equal(signedIn.error, null, JSON.stringify(signedIn.error));
      assert.equal(typeof signedIn.data.token, "string");
    },
  );
});
