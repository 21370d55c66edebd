// ConvexClient.setAuth(fetchToken, onChange) against the server's token check: a valid token
// is confirmed and queries see its subject; a forged or expired token makes the client give up
// on auth (onChange(false)) and carry on unauthenticated.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SUITE } from "./support/budget.mjs";

import { anyApi as api } from "convex/server";

import {
  formatTrace,
  makeClient,
  messages,
  mintToken,
  startServer,
  stopAllServers,
  waitFor,
  watch,
} from "./support/harness.mjs";

const TIMEOUT = { timeout: 15_000 };

describe("setAuth", SUITE, () => {
  let server;
  const clients = [];

  before(async () => {
    server = await startServer();
  });

  after(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await stopAllServers();
  });

  function authenticatedClient(params) {
    const made = makeClient(server.url);
    clients.push(made.client);
    const changes = [];
    const fetches = [];
    let cached = null;
    made.client.setAuth(
      async ({ forceRefreshToken }) => {
        fetches.push(forceRefreshToken);
        // A good provider returns a new token when forced; a broken one keeps its bad token.
        if (cached === null || (forceRefreshToken && !params.forge && !(params.ttl < 0))) {
          cached = await mintToken(server.url, params);
        }
        return cached;
      },
      (isAuthenticated) => changes.push(isAuthenticated),
    );
    return { ...made, changes, fetches };
  }

  test("a valid token: confirmed, and whoami shows its subject", TIMEOUT, async () => {
    const { client, trace, changes } = authenticatedClient({ sub: "alice", sid: "session-1" });
    const whoami = watch(client, api.notes.whoami, {});
    await waitFor(() => changes.includes(true), 5_000, "onChange(true)").catch((error) => {
      throw new Error(`${error.message}\n${formatTrace(trace)}`);
    });
    await waitFor(() => whoami.latest() === "alice", 5_000, "whoami = alice");
    assert.ok(!changes.includes(false), `onChange calls: ${changes}`);
    // No query result under the new identity came before the identity was confirmed.
    assert.ok(!whoami.values.includes(null), `whoami values: ${JSON.stringify(whoami.values)}`);

    // The fresh token fetched after confirmation is sent and confirmed too (identity 1 -> 2).
    await waitFor(
      () => messages(trace, ">").filter((m) => m.type === "Authenticate").length >= 2,
      5_000,
      "the refreshed token to be sent",
    );
    await waitFor(
      () => messages(trace, "<").some((m) => m.type === "Transition" && m.endVersion.identity === 2),
      5_000,
      "the refreshed token to be confirmed",
    );
    const authErrors = messages(trace, "<").filter((m) => m.type === "AuthError");
    assert.deepEqual(authErrors, []);

    // The identity reaches mutations too, and the connection still works afterwards.
    await client.mutation(api.notes.add, { author: "alice", body: "hi" });
    assert.equal((await client.query(api.notes.by_author, { author: "alice" })).length, 1);
  });

  for (const [name, params] of [
    ["a forged token", { sub: "mallory", forge: true }],
    ["an expired token", { sub: "alice", ttl: -60 }],
  ]) {
    test(`${name}: onChange(false), then the client works unauthenticated`, TIMEOUT, async () => {
      const { client, trace, changes, fetches } = authenticatedClient(params);
      const whoami = watch(client, api.notes.whoami, {});
      await waitFor(() => changes.includes(false), 8_000, "onChange(false)").catch((error) => {
        throw new Error(`${error.message}\n${formatTrace(trace)}`);
      });
      await waitFor(() => whoami.latest() === null, 5_000, "whoami = null");
      assert.ok(!changes.includes(true), `onChange calls: ${changes}`);
      assert.ok(fetches.includes(true), "the client asked for a fresh token after the AuthError");

      const authErrors = messages(trace, "<").filter((m) => m.type === "AuthError");
      assert.equal(authErrors.length, 1, formatTrace(trace));
      assert.equal(authErrors[0].baseVersion, 0);
      assert.equal(authErrors[0].authUpdateAttempted, true);
      assert.ok(
        messages(trace, "<").every((m) => m.type !== "Transition" || m.endVersion.identity === 0),
        "the identity version was never raised",
      );

      // Unauthenticated but working: mutations and queries go through.
      await client.mutation(api.counters.create, { name: `anon-${params.sub}-${params.ttl ?? 0}` });
      assert.equal(await client.query(api.notes.whoami, {}), null);
      whoami.unsubscribe();
    });
  }
});
