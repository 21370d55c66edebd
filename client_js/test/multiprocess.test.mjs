// Two server processes on one PostgreSQL database: a subscription on server A sees a mutation
// committed through server B (LISTEN/NOTIFY wakes A; a 1 s catch-up covers a lost notice).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SUITE } from "./support/budget.mjs";

import { anyApi as api } from "convex/server";

import {
  formatTrace,
  makeClient,
  makeHttpClient,
  startServer,
  stopAllServers,
  waitFor,
  watch,
} from "./support/harness.mjs";

const TIMEOUT = { timeout: 30_000 };

describe("two processes, one PostgreSQL database", SUITE, () => {
  let serverA;
  let serverB;
  const clients = [];

  before(async () => {
    serverA = await startServer({ postgres: true });
    assert.ok(serverA.pgSchema, "server A reports its schema");
    serverB = await startServer({ pgSchema: serverA.pgSchema, migrate: false });
  });

  after(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await stopAllServers(); // B first: A owns the schema and drops it
  });

  test("a client on A sees mutations made through B", TIMEOUT, async () => {
    const onA = makeClient(serverA.url);
    const onB = makeClient(serverB.url);
    clients.push(onA.client, onB.client);

    const counter = watch(onA.client, api.counters.get, { name: "cross" });
    await waitFor(() => counter.values.length > 0, 5_000, "the first result on A");
    assert.equal(counter.latest(), null);

    // Through B's sync socket...
    await onB.client.mutation(api.counters.create, { name: "cross" });
    await waitFor(() => counter.latest()?.value === 0, 5_000, "A to see the counter").catch((error) => {
      throw new Error(`${error.message}\n${formatTrace(onA.trace)}`);
    });
    const started = Date.now();
    assert.equal(await onB.client.mutation(api.counters.increment, { name: "cross" }), 1);
    await waitFor(() => counter.latest()?.value === 1, 5_000, "A to see 1");
    const latencyMs = Date.now() - started;

    // ...and through B's HTTP API.
    const httpB = makeHttpClient(serverB.url);
    assert.equal(await httpB.mutation(api.counters.increment, { name: "cross" }), 2);
    await waitFor(() => counter.latest()?.value === 2, 5_000, "A to see 2");

    // And the other way round: B's subscriptions see A's writes.
    const onBCounter = watch(onB.client, api.counters.get, { name: "cross" });
    await waitFor(() => onBCounter.latest()?.value === 2, 5_000, "B's first result");
    assert.equal(await onA.client.mutation(api.counters.increment, { name: "cross" }), 3);
    await waitFor(() => onBCounter.latest()?.value === 3, 5_000, "B to see 3");
    assert.ok(latencyMs < 5_000, `A saw B's write after ${latencyMs} ms`);
    counter.unsubscribe();
    onBCounter.unsubscribe();
  });
});
