// A paginated query walked to the end with client.query while rows are being inserted: every
// row that existed before the walk is seen exactly once, and no row is seen twice.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SUITE } from "./support/budget.mjs";

import { anyApi as api } from "convex/server";

import { makeClient, makeHttpClient, startServer, stopAllServers } from "./support/harness.mjs";

const TIMEOUT = { timeout: 20_000 };
const EXISTING = 23;
const PAGE_SIZE = 5;

describe("pagination", SUITE, () => {
  let server;
  const clients = [];

  before(async () => {
    server = await startServer();
  });

  after(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await stopAllServers();
  });

  test("walks every pre-existing row exactly once under concurrent inserts", TIMEOUT, async () => {
    const http = makeHttpClient(server.url);
    const existing = new Set();
    for (let i = 0; i < EXISTING; i++) {
      existing.add(await http.mutation(api.notes.add, { author: "before", body: `note ${i}` }));
    }

    const { client: reader } = makeClient(server.url);
    const { client: writer } = makeClient(server.url);
    const { client: background } = makeClient(server.url);
    clients.push(reader, writer, background);

    // One writer inserts between every two pages (so the walk surely overlaps inserts); another
    // inserts continuously, unsynchronised with the walk.
    const inserted = [];
    let writing = true;
    const backgroundInserts = (async () => {
      for (let i = 0; writing && i < 40; i++) {
        inserted.push(await background.mutation(api.notes.add, { author: "during", body: `bg ${i}` }));
      }
    })();

    const seen = new Map();
    let cursor = null;
    let pages = 0;
    let insertedDuringWalk = 0;
    try {
      for (;;) {
        const result = await reader.query(api.notes.page, {
          paginationOpts: { numItems: PAGE_SIZE, cursor },
        });
        pages++;
        assert.ok(Array.isArray(result.page), "page is an array");
        assert.ok(result.page.length <= PAGE_SIZE, `page of ${result.page.length} rows`);
        assert.equal(typeof result.continueCursor, "string", "continueCursor is always a string");
        for (const row of result.page) seen.set(row._id, (seen.get(row._id) ?? 0) + 1);
        if (result.isDone) break;
        assert.ok(pages < 100, "the walk ends");
        cursor = result.continueCursor;
        inserted.push(await writer.mutation(api.notes.add, { author: "during", body: `page ${pages}` }));
      }
      insertedDuringWalk = inserted.length;
    } finally {
      writing = false;
      await backgroundInserts;
    }

    assert.ok(insertedDuringWalk >= pages - 1, `${insertedDuringWalk} rows inserted during the walk`);
    const twice = [...seen].filter(([, count]) => count > 1).map(([id]) => id);
    assert.deepEqual(twice, [], "no row appears on two pages");
    const missing = [...existing].filter((id) => !seen.has(id));
    assert.deepEqual(missing, [], "every pre-existing row was seen");
    assert.ok(pages >= Math.ceil(EXISTING / PAGE_SIZE), `walked ${pages} pages`);
  });
});
