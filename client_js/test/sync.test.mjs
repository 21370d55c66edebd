// The official ConvexClient over the sync WebSocket: subscriptions, pushes to other clients,
// read-your-writes, and ConvexError data on failed mutations and queries.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SUITE } from "./support/budget.mjs";

import { anyApi as api } from "convex/server";
import { ConvexError } from "convex/values";

import { formatTrace, makeClient, startServer, stopAllServers, waitFor, watch } from "./support/harness.mjs";

const TIMEOUT = { timeout: 15_000 };

describe("ConvexClient over the sync socket", SUITE, () => {
  let server;
  const clients = [];
  const connect = () => {
    const made = makeClient(server.url);
    clients.push(made);
    return made;
  };

  before(async () => {
    server = await startServer();
  });

  after(async () => {
    await Promise.all(clients.map(({ client }) => client.close()));
    await stopAllServers();
  });

  test("a subscription sees the client's own mutation pushed", TIMEOUT, async () => {
    const { client, trace } = connect();
    const counter = watch(client, api.counters.get, { name: "own" });
    await waitFor(() => counter.values.length > 0, 5_000, "the first result");
    assert.equal(counter.latest(), null);

    await client.mutation(api.counters.create, { name: "own" });
    await waitFor(() => counter.latest()?.value === 0, 5_000, "the created counter");
    assert.equal(await client.mutation(api.counters.increment, { name: "own" }), 1);
    await waitFor(() => counter.latest()?.value === 1, 5_000, "the incremented counter").catch((error) => {
      throw new Error(`${error.message}\n${formatTrace(trace)}`);
    });
    counter.unsubscribe();
  });

  test("another client's subscription sees the mutation", TIMEOUT, async () => {
    const writer = connect();
    const reader = connect();
    const counter = watch(reader.client, api.counters.get, { name: "shared" });
    await waitFor(() => counter.values.length > 0, 5_000, "the first result");

    await writer.client.mutation(api.counters.create, { name: "shared" });
    await writer.client.mutation(api.counters.increment, { name: "shared" });
    await writer.client.mutation(api.counters.increment, { name: "shared" });
    await waitFor(() => counter.latest()?.value === 2, 5_000, "the reader to see 2");
    // Values only ever move forward.
    const seen = counter.values.map((row) => row?.value ?? -1);
    assert.deepEqual(seen, [...seen].sort((a, b) => a - b), `values went backwards: ${seen}`);
    counter.unsubscribe();
  });

  test("read-your-writes: the subscription already has the value when the mutation resolves", TIMEOUT, async () => {
    const { client } = connect();
    await client.mutation(api.counters.create, { name: "ryw" });
    const counter = watch(client, api.counters.get, { name: "ryw" });
    await waitFor(() => counter.latest()?.value === 0, 5_000, "the initial counter");

    for (let expected = 1; expected <= 5; expected++) {
      const result = await client.mutation(api.counters.increment, { name: "ryw" });
      assert.equal(result, expected);
      assert.equal(counter.latest()?.value, expected, "the callback ran before the mutation resolved");
    }
    counter.unsubscribe();
  });

  test("a failed mutation rejects with ConvexError data", TIMEOUT, async () => {
    const { client } = connect();
    const error = await client.mutation(api.counters.increment, { name: "missing" }).then(
      () => assert.fail("the mutation should fail"),
      (e) => e,
    );
    assert.ok(error instanceof ConvexError, `expected ConvexError, got ${error}`);
    assert.equal(error.data.code, "NOT_FOUND");
    assert.equal(error.data.message, "no counter missing");
    assert.match(error.message, /M\(counters:increment\)/);

    // A non-ConvexError failure is a plain Error (dev mode shows where it happened).
    const crash = await client.mutation(api.counters.crash, {}).then(
      () => assert.fail("the mutation should fail"),
      (e) => e,
    );
    assert.ok(!(crash instanceof ConvexError), "a crash is not a ConvexError");
    assert.match(crash.message, /^\[CONVEX M\(counters:crash\)\] Server Error/);
  });

  test("a failed query reaches onError and client.query as ConvexError", TIMEOUT, async () => {
    const { client } = connect();

    const missing = watch(client, api.nope.missing, {});
    await waitFor(() => missing.errors.length > 0, 5_000, "onError for a missing function");
    assert.ok(missing.errors[0] instanceof ConvexError, `got ${missing.errors[0]}`);
    assert.equal(missing.errors[0].data.code, "NOT_FOUND");
    assert.equal(missing.values.length, 0);
    missing.unsubscribe();

    const error = await client.query(api.counters.get, { name: 42 }).then(
      () => assert.fail("the query should fail"),
      (e) => e,
    );
    assert.ok(error instanceof ConvexError, `expected ConvexError, got ${error}`);
    assert.equal(error.data.code, "INVALID_ARGUMENT");
    assert.match(error.message, /Q\(counters:get\)/);

    // The client keeps working after failed queries.
    assert.equal(await client.query(api.counters.get, { name: "never-made" }), null);
  });
});
