// The official ConvexHttpClient: POST /api/query and /api/mutation, function failures with
// and without ConvexError data, and bearer auth.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SUITE } from "./support/budget.mjs";

import { anyApi as api } from "convex/server";
import { ConvexError } from "convex/values";

import { makeHttpClient, mintToken, startServer, stopAllServers } from "./support/harness.mjs";

const TIMEOUT = { timeout: 15_000 };

async function rejection(promise) {
  return promise.then(
    (value) => assert.fail(`expected a rejection, got ${JSON.stringify(value)}`),
    (error) => error,
  );
}

describe("ConvexHttpClient", SUITE, () => {
  let server;

  before(async () => {
    server = await startServer();
  });

  after(async () => {
    await stopAllServers();
  });

  test("runs queries and mutations", TIMEOUT, async () => {
    const http = makeHttpClient(server.url);
    assert.equal(await http.query(api.counters.get, { name: "h" }), null);
    const id = await http.mutation(api.counters.create, { name: "h" });
    assert.equal(typeof id, "string");
    assert.equal(await http.mutation(api.counters.increment, { name: "h" }), 1);
    const row = await http.query(api.counters.get, { name: "h" });
    assert.equal(row._id, id);
    assert.equal(row.value, 1);
    assert.equal(typeof row._creationTime, "number");
  });

  test("a failed mutation raises ConvexError with its data", TIMEOUT, async () => {
    const http = makeHttpClient(server.url);
    const error = await rejection(http.mutation(api.counters.increment, { name: "nope" }));
    assert.ok(error instanceof ConvexError, `expected ConvexError, got ${error}`);
    assert.deepEqual(error.data, { code: "NOT_FOUND", message: "no counter nope" });

    const withDetail = await rejection(http.mutation(api.counters.increment_then_fail, { name: "h" }));
    assert.ok(withDetail instanceof ConvexError);
    assert.equal(withDetail.data.code, "BOOM");
    assert.deepEqual(withDetail.data.detail, [1, 2]);
    // Rolled back: neither the increment nor the insert happened.
    assert.equal((await http.query(api.counters.get, { name: "h" })).value, 1);
    assert.equal(await http.query(api.counters.get, { name: "h-extra" }), null);
  });

  test("a failed query raises ConvexError; a crash is a plain Error", TIMEOUT, async () => {
    const http = makeHttpClient(server.url);
    const invalid = await rejection(http.query(api.counters.get, { name: 7 }));
    assert.ok(invalid instanceof ConvexError, `expected ConvexError, got ${invalid}`);
    assert.equal(invalid.data.code, "INVALID_ARGUMENT");

    const crash = await rejection(http.mutation(api.counters.crash, {}));
    assert.ok(!(crash instanceof ConvexError), "a crash carries no ConvexError data");
    assert.match(crash.message, /^Server Error/);

    // The raw wire, as Convex's backend answers: 200 with status "error" (the Python client
    // raises on any 5xx before reading the body), logLines only when there are some.
    const response = await fetch(`${server.url}/api/mutation`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Convex-Client": "npm-1.48.0" },
      body: JSON.stringify({ path: "counters:increment", format: "convex_encoded_json", args: [{ name: "zz" }] }),
    });
    assert.equal(response.status, 200);
    const body = await response.json();
    assert.equal(body.status, "error");
    assert.deepEqual(body.errorData, { code: "NOT_FOUND", message: "no counter zz" });
    assert.equal(body.logLines, undefined);
    assert.equal(typeof body.errorMessage, "string");
  });

  test("bearer auth: setAuth(token) makes the caller that token's subject", TIMEOUT, async () => {
    const http = makeHttpClient(server.url);
    assert.equal(await http.query(api.notes.whoami, {}), null);

    http.setAuth(await mintToken(server.url, { sub: "alice", sid: "s-1" }));
    assert.equal(await http.query(api.notes.whoami, {}), "alice");
    http.clearAuth();
    assert.equal(await http.query(api.notes.whoami, {}), null);

    // A token the server did not sign, or an expired one, is refused before any function runs.
    for (const params of [{ sub: "mallory", forge: true }, { sub: "alice", ttl: -60 }]) {
      const refused = makeHttpClient(server.url, { auth: await mintToken(server.url, params) });
      const error = await rejection(refused.query(api.notes.whoami, {}));
      assert.ok(!(error instanceof ConvexError), "a refused token is an HTTP error, not a function error");
      assert.match(error.message, /UNAUTHENTICATED/);
    }
  });
});
