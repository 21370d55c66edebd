// The port of Convex's cron-jobs demo (tests/apps/cron_jobs) driven by the official client: a
// chat whose messages a cron clears every minute; the clearing is pushed live to a subscriber.
// The server's clock is moved a minute ahead instead of waiting for one.

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { SUITE } from "./support/budget.mjs";

import { anyApi as api } from "convex/server";

import { makeClient, startServer, stopAllServers, waitFor, watch } from "./support/harness.mjs";

const TIMEOUT = { timeout: 60_000 };

async function advanceClock(url, seconds) {
  const response = await fetch(`${url}/test/clock/advance?seconds=${seconds}`, { method: "POST" });
  assert.equal(response.status, 200, await response.text());
}

for (const database of ["sqlite", "postgres"]) {
  describe(`cron jobs on ${database}`, SUITE, () => {
    const clients = [];

    after(async () => {
      await Promise.all(clients.map((client) => client.close()));
      await stopAllServers();
    });

    test("the minute cron clears the chat, live, for every subscriber", TIMEOUT, async () => {
      const server = await startServer({ app: "tests.apps.cron_jobs", postgres: database === "postgres" });
      const { client: alice } = makeClient(server.url);
      const { client: bob } = makeClient(server.url);
      clients.push(alice, bob);
      const seen = watch(bob, api.messages.list, {});
      await waitFor(() => seen.latest() !== undefined, 10_000, "the first result");

      await alice.mutation(api.messages.send, { body: "hello", author: "User 1" });
      await alice.mutation(api.messages.send, { body: "world", author: "User 1" });
      await waitFor(() => seen.latest()?.length === 2, 10_000, "both messages");
      assert.deepEqual(
        seen.latest().map((m) => [m.author, m.body]),
        [
          ["User 1", "hello"],
          ["User 1", "world"],
        ],
      );

      await advanceClock(server.url, 61);
      await waitFor(() => seen.latest()?.length === 0, 15_000, "the cron to clear the chat");
      assert.deepEqual(seen.errors, []);
      assert.deepEqual(await alice.query(api.messages.list, {}), []);

      // and the internal clearing function is not the client's to call
      await assert.rejects(alice.mutation(api.messages.clearAll, {}), /Could not find public function/);
      seen.unsubscribe();
    });
  });
}
