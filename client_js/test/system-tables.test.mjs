// The port of Convex's system-tables demo (tests/apps/system_tables) driven by the official
// client: its admin page subscribes to `_scheduled_functions` through ctx.db.system, sees a
// message scheduled with "/delay", cancels one, and sees the other sent when it falls due.

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

// What Admin.tsx shows: the sends still pending or in progress.
const shown = (jobs) =>
  jobs.filter((job) => job.state.kind === "pending" || job.state.kind === "inProgress");

for (const database of ["sqlite", "postgres"]) {
  describe(`system tables on ${database}`, SUITE, () => {
    const clients = [];

    after(async () => {
      await Promise.all(clients.map((client) => client.close()));
      await stopAllServers();
    });

    test("the admin page lists, cancels and sees scheduled sends complete", TIMEOUT, async () => {
      const server = await startServer({ app: "tests.apps.system_tables", postgres: database === "postgres" });
      const { client: chat } = makeClient(server.url);
      const { client: admin } = makeClient(server.url);
      clients.push(chat, admin);
      const sends = watch(admin, api.admin.listScheduledSends, {});
      const messages = watch(chat, api.messages.list, {});
      await waitFor(() => sends.latest() !== undefined, 10_000, "the admin page");
      assert.deepEqual(sends.errors, []); // no "unknown table '_scheduled_functions'"
      assert.deepEqual(sends.latest(), []);

      const later = await chat.mutation(api.messages.scheduleMessage, {
        delay: 30,
        body: "see you later",
        author: "User 1",
      });
      const never = await chat.mutation(api.messages.scheduleMessage, {
        delay: 30,
        body: "never sent",
        author: "User 2",
      });
      await waitFor(() => shown(sends.latest()).length === 2, 10_000, "two pending sends");
      const pending = sends.latest().find((job) => job._id === later);
      assert.equal(pending.name, "messages:sendMessage");
      assert.deepEqual(pending.args, [{ body: "see you later", author: "User 1" }]);
      assert.deepEqual(pending.state, { kind: "pending" });
      assert.equal(typeof pending._creationTime, "number");
      // in ms, thirty seconds after it was scheduled
      assert.ok(Math.abs(pending.scheduledTime - pending._creationTime - 30_000) < 1_000);
      assert.equal(pending.completedTime, undefined);

      await admin.mutation(api.admin.cancelMessage, { jobId: never });
      await waitFor(() => shown(sends.latest()).length === 1, 10_000, "the cancellation");
      const canceled = sends.latest().find((job) => job._id === never);
      assert.deepEqual(canceled.state, { kind: "canceled" });
      assert.equal(typeof canceled.completedTime, "number");

      await advanceClock(server.url, 31);
      await waitFor(() => shown(sends.latest()).length === 0, 15_000, "the send to run");
      assert.deepEqual(sends.latest().find((job) => job._id === later).state, { kind: "success" });
      await waitFor(() => messages.latest()?.length === 1, 10_000, "the message");
      assert.deepEqual(
        messages.latest().map((m) => [m.author, m.body, m.format]),
        [["User 1", "see you later", "text"]],
      );
      assert.deepEqual(sends.errors, []);
    });
  });
}
