// The product's own sign-in end to end: a session from /api/auth/sign-up/email, Convex tokens
// from /api/auth/convex/token fed to setAuth, a token refresh, and a revoked session losing its
// identity on the live socket within a second.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SUITE } from "./support/budget.mjs";

import { anyApi as api } from "convex/server";

import { formatTrace, makeClient, messages, startServer, stopAllServers, waitFor, watch } from "./support/harness.mjs";

const TIMEOUT = { timeout: 20_000 };

async function post(url, path, body, token) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${url}${path}`, { method: "POST", headers, body: JSON.stringify(body) });
  return { status: response.status, body: await response.json() };
}

describe("sessions and Convex tokens", SUITE, () => {
  let server;
  const clients = [];

  before(async () => {
    server = await startServer({ realAuth: true });
  });

  after(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await stopAllServers();
  });

  test("sign in, see my identity, refresh, lose it when the session is revoked", TIMEOUT, async () => {
    const signUp = await post(server.url, "/api/auth/sign-up/email", {
      email: "grace@example.com",
      password: "correct horse battery",
      name: "Grace",
    });
    assert.equal(signUp.status, 200);
    const sessionToken = signUp.body.token;
    const userId = signUp.body.user.id;

    const { client, trace } = makeClient(server.url);
    clients.push(client);
    const fetched = [];
    const changes = [];
    client.setAuth(
      async ({ forceRefreshToken }) => {
        const response = await fetch(`${server.url}/api/auth/convex/token`, {
          headers: { authorization: `Bearer ${sessionToken}` },
        });
        if (!response.ok) return null;
        const { token } = await response.json();
        fetched.push({ forceRefreshToken, token });
        return token;
      },
      (authenticated) => changes.push(authenticated),
    );
    const whoami = watch(client, api.notes.whoami, {});
    await waitFor(() => whoami.latest() === userId, 5_000, "whoami = me").catch((error) => {
      throw new Error(`${error.message}\n${formatTrace(trace)}`);
    });
    // onChange(true) once per confirmed token; the immediate refresh may confirm a second.
    assert.ok(changes.length >= 1 && changes.every((authenticated) => authenticated), String(changes));

    // The client refetches a fresh token at once and sends it: a second Authenticate, confirmed.
    await waitFor(
      () => messages(trace, ">").filter((m) => m.type === "Authenticate").length >= 2,
      5_000,
      "the refreshed token",
    );
    await waitFor(
      () => messages(trace, "<").some((m) => m.type === "Transition" && m.endVersion.identity === 2),
      5_000,
      "the refreshed token's confirmation",
    );
    assert.notEqual(fetched[0].token, fetched[1].token);
    assert.ok(!messages(trace, "<").some((m) => m.type === "AuthError"), formatTrace(trace));

    const signedOut = await post(server.url, "/api/auth/sign-out", {}, sessionToken);
    assert.equal(signedOut.status, 200);
    // Typically a few milliseconds (one coordinator round); BENCHMARKS.md has the figure.
    await waitFor(() => whoami.latest() === null, 5_000, "whoami = null after revocation");
  });
});
