// Hostile input on raw sockets: each broken message ends that socket with a close frame that
// carries a reason, while a well-behaved client on another socket keeps working.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SUITE } from "./support/budget.mjs";

import { anyApi as api } from "convex/server";
import WebSocket from "ws";

import { makeClient, startServer, stopAllServers, waitFor, watch } from "./support/harness.mjs";

const TIMEOUT = { timeout: 20_000 };
const CLOSE_WAIT_MS = 5_000;

const connect = (sessionId) => ({
  type: "Connect",
  sessionId,
  connectionCount: 0,
  lastCloseReason: "InitialConnect",
  clientTs: Date.now(),
});

/** Open a raw socket, send `frames` in order, and report how it ended. */
async function closeAfter(url, frames) {
  const socket = new WebSocket(`${url.replace(/^http/, "ws")}/api/1.48.0/sync`);
  const received = [];
  socket.on("message", (data) => received.push(String(data)));
  await new Promise((resolve, reject) => {
    socket.once("open", resolve);
    socket.once("error", reject);
  });
  const closed = new Promise((resolve) =>
    socket.once("close", (code, reason) => resolve({ code, reason: String(reason) })),
  );
  for (const frame of frames) socket.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  let timer;
  const outcome = await Promise.race([
    closed,
    new Promise((resolve) => {
      timer = setTimeout(() => resolve(null), CLOSE_WAIT_MS);
    }),
  ]);
  clearTimeout(timer);
  if (outcome === null) socket.terminate();
  return { outcome, received };
}

describe("hostile input", SUITE, () => {
  let server;
  let good;

  before(async () => {
    server = await startServer();
    good = makeClient(server.url);
    await good.client.mutation(api.counters.create, { name: "steady" });
  });

  after(async () => {
    await good?.client.close();
    await stopAllServers();
  });

  const cases = [
    ["malformed JSON", ["{not json"]],
    ["an unknown message type", [connect("11111111-1111-4111-8111-111111111111"), { type: "Bogus" }]],
    [
      "a ModifyQuerySet with a wrong baseVersion",
      [
        connect("22222222-2222-4222-8222-222222222222"),
        { type: "ModifyQuerySet", baseVersion: 5, newVersion: 6, modifications: [] },
      ],
    ],
  ];

  for (const [name, frames] of cases) {
    test(`${name} closes the socket with a reason`, TIMEOUT, async (t) => {
      const counter = watch(good.client, api.counters.get, { name: "steady" });
      await waitFor(() => counter.values.length > 0, 5_000, "the good client's first result");
      const before = counter.latest().value;

      const { outcome, received } = await closeAfter(server.url, frames);
      t.diagnostic(`close: ${JSON.stringify(outcome)}; received: ${JSON.stringify(received)}`);
      assert.ok(
        outcome !== null,
        `the socket was not closed within ${CLOSE_WAIT_MS} ms; received ${JSON.stringify(received)}`,
      );
      assert.notEqual(outcome.code, 1006, "closed with a close frame, not dropped");
      assert.ok(outcome.code >= 4000 || outcome.code === 1008, `close code ${outcome.code}`);
      assert.ok(outcome.reason.length > 0, "the close carries a reason");
      for (const text of received) {
        assert.ok(["Transition", "Ping"].includes(JSON.parse(text).type), `unexpected message ${text}`);
      }

      // The well-behaved client is unaffected.
      assert.equal(await good.client.mutation(api.counters.increment, { name: "steady" }), before + 1);
      assert.equal(counter.latest().value, before + 1);
      counter.unsubscribe();
    });
  }
});
