// Function logs through the official clients, with their own default logger: what a function
// prints or logs reaches the console as `[CONVEX Q(chatty:hello)] [LOG] hello ada`, the line a
// browser's console shows (the `%c` style aside), for queries, mutations and actions, over the
// socket and over HTTP.

import assert from "node:assert/strict";
import { format } from "node:util";
import { after, before, describe, test } from "node:test";

import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { anyApi as api } from "convex/server";

import { startServer, stopAllServers, waitFor } from "./support/harness.mjs";

const TIMEOUT = { timeout: 60_000 };

/** Runs `body` with console.log / console.error recorded as the console would print them. */
async function recordingConsole(body) {
  const lines = [];
  const saved = { log: console.log, error: console.error, warn: console.warn };
  for (const level of Object.keys(saved)) {
    console[level] = (...args) => lines.push(format(...args));
  }
  try {
    await body(lines);
  } finally {
    Object.assign(console, saved);
  }
  return lines;
}

for (const database of ["sqlite", "postgres"]) {
  describe(`function logs on ${database}`, TIMEOUT, () => {
    let server;

    before(async () => {
      server = await startServer({ postgres: database === "postgres" });
    });

    after(async () => {
      await stopAllServers();
    });

    test("a subscribed query's prints and log records reach the console", TIMEOUT, async () => {
      const client = new ConvexClient(server.url); // the default logger: the console
      try {
        const lines = await recordingConsole(async (lines) => {
          let value;
          const unsubscribe = client.onUpdate(api.chatty.hello, { name: "ada" }, (v) => {
            value = v;
          });
          await waitFor(() => value === "ada", 10_000, "the query's result");
          await waitFor(() => lines.length >= 5, 10_000, "the log lines");
          unsubscribe();
        });
        assert.deepEqual(
          lines.filter((line) => line.startsWith("[CONVEX")),
          [
            "[CONVEX Q(chatty:hello)] [LOG] hello ada",
            "[CONVEX Q(chatty:hello)] [INFO] info ada",
            "[CONVEX Q(chatty:hello)] [DEBUG] debug",
            "[CONVEX Q(chatty:hello)] [WARN] careful",
            "[CONVEX Q(chatty:hello)] [ERROR] oops",
          ],
        );
      } finally {
        await client.close();
      }
    });

    test("a mutation's and an action's lines, on success and on failure", TIMEOUT, async () => {
      const client = new ConvexClient(server.url);
      try {
        const lines = await recordingConsole(async () => {
          await client.mutation(api.chatty.write, { name: `w-${database}` });
          await assert.rejects(client.mutation(api.chatty.write, { name: "x", fail: true }));
          assert.equal(await client.action(api.chatty.act, { name: "bo" }), "bo");
        });
        const convex = lines.filter((line) => line.startsWith("[CONVEX"));
        assert.ok(convex.includes(`[CONVEX M(chatty:write)] [LOG] writing w-${database}`), convex.join("\n"));
        assert.ok(convex.includes("[CONVEX M(chatty:write)] [LOG] writing x"));
        assert.ok(convex.includes("[CONVEX M(chatty:write)] [ERROR] refusing x"));
        assert.ok(convex.includes("[CONVEX A(chatty:act)] [LOG] acting"));
        assert.ok(convex.includes("[CONVEX A(chatty:act)] [LOG] hello bo"));
      } finally {
        await client.close();
      }
    });

    test("the HTTP client prints the lines of its calls too", TIMEOUT, async () => {
      const client = new ConvexHttpClient(server.url);
      const lines = await recordingConsole(async () => {
        assert.equal(await client.query(api.chatty.hello, { name: "cy" }), "cy");
        await assert.rejects(client.query(api.chatty.crash, {}));
      });
      const convex = lines.filter((line) => line.startsWith("[CONVEX"));
      assert.ok(convex.includes("[CONVEX Q(chatty:hello)] [LOG] hello cy"), convex.join("\n"));
      assert.ok(convex.includes("[CONVEX Q(chatty:crash)] [LOG] about to fail"), convex.join("\n"));
    });
  });
}
