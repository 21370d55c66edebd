// Paginated queries shared between clients, with the official Convex client on Convex's own
// pagination demo (`messages:list`, newest first): a client that subscribes later gets a fresh
// first page, never another client's grown one, and live pages stay gapless while rows come
// and go.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SUITE } from "./support/budget.mjs";

import { anyApi as api } from "convex/server";

import {
  makeClient,
  makeHttpClient,
  startServer,
  stopAllServers,
  waitFor,
  watch,
} from "./support/harness.mjs";

const TIMEOUT = { timeout: 30_000 };
const CHAT = "tests.apps.chat";
// What the official client sends for a first page (`onPaginatedUpdate_experimental` adds id -1).
const FIRST_PAGE = { paginationOpts: { numItems: 5, cursor: null } };

for (const postgres of [false, true]) {
  describe(`a first page shared between clients (${postgres ? "PostgreSQL" : "SQLite"})`, SUITE, () => {
    let server;
    const clients = [];
    const track = (made) => {
      clients.push(made.client);
      return made.client;
    };

    before(async () => {
      server = await startServer({ app: CHAT, postgres });
    });

    after(async () => {
      await Promise.all(clients.map((client) => client.close()));
      await stopAllServers();
    });

    test("a second subscriber gets numItems of the rows, not the first page grown", TIMEOUT, async () => {
      const first = track(makeClient(server.url));
      const firstPage = watch(first, api.messages.list, FIRST_PAGE);
      const empty = await waitFor(() => firstPage.latest(), 5_000, "the empty first page");
      assert.deepEqual(empty.page, []);
      assert.equal(empty.isDone, true);

      const http = makeHttpClient(server.url);
      for (let i = 0; i < 7; i++) await http.mutation(api.messages.send, { author: "a", body: `m${i}` });
      const grown = await waitFor(
        () => (firstPage.latest()?.page.length === 7 ? firstPage.latest() : null),
        5_000,
        "the first client's page to grow to all 7",
      );
      assert.equal(grown.isDone, true, "Convex: a page keeps its end, so the first one grows");

      const second = track(makeClient(server.url));
      const secondPage = watch(second, api.messages.list, FIRST_PAGE);
      const fresh = await waitFor(() => secondPage.latest(), 5_000, "the second client's page");
      assert.deepEqual(
        fresh.page.map((m) => m.body),
        ["m6", "m5", "m4", "m3", "m2"],
        "a fresh first page of numItems",
      );
      assert.equal(fresh.isDone, false);

      const third = track(makeClient(server.url));
      const once = await third.query(api.messages.list, FIRST_PAGE);
      assert.equal(once.page.length, 5, "a one-shot query with the same args: 5 of 7");
      assert.equal(once.isDone, false);
      const overHttp = await http.query(api.messages.list, FIRST_PAGE);
      assert.deepEqual(overHttp.page.map((m) => m._id), once.page.map((m) => m._id));

      assert.equal(firstPage.latest().page.length, 7, "the first client keeps its own page");
      assert.deepEqual(firstPage.errors, []);
      assert.deepEqual(secondPage.errors, []);
    });
  });
}

describe("paginated subscriptions while rows come and go", SUITE, () => {
  let server;
  const clients = [];

  before(async () => {
    server = await startServer({ app: CHAT });
  });

  after(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await stopAllServers();
  });

  test("two clients loading pages see every row once, in order, as Convex pages them", TIMEOUT, async () => {
    const writer = makeClient(server.url).client;
    clients.push(writer);
    const live = new Map(); // id -> body: what the table holds
    const order = []; // ids, oldest first (insertion order is creation order)
    const insert = async (body) => {
      const id = await writer.mutation(api.messages.send, { author: "w", body });
      live.set(id, body);
      order.push(id);
    };
    for (let i = 0; i < 12; i++) await insert(`before ${i}`);

    const readers = [0, 1].map(() => {
      const { client } = makeClient(server.url);
      clients.push(client);
      let latest = null;
      const errors = [];
      client.onPaginatedUpdate_experimental(
        api.messages.list,
        {},
        { initialNumItems: 5 },
        (result) => (latest = result),
        (error) => errors.push(error),
      );
      return { latest: () => latest, errors };
    });
    const first = await waitFor(() => readers[0].latest()?.status === "CanLoadMore" && readers[0].latest());
    assert.deepEqual(
      first.results.map((m) => m.body),
      ["before 11", "before 10", "before 9", "before 8", "before 7"],
      "the first page: numItems rows, newest first",
    );

    // Load every page on both readers while rows are inserted (at the top) and deleted (anywhere).
    let step = 0;
    const expected = () => [...order].reverse().filter((id) => live.has(id));
    for (;;) {
      const statuses = readers.map((r) => r.latest()?.status);
      if (statuses.every((s) => s === "Exhausted")) break;
      assert.ok(step < 40, `the walk ends (statuses ${statuses})`);
      for (const reader of readers) {
        const result = reader.latest();
        if (result?.status === "CanLoadMore") result.loadMore(5);
      }
      if (step % 2 === 0) await insert(`during ${step}`);
      const victims = [...live.keys()];
      const victim = victims[(step * 7) % victims.length];
      await writer.mutation(api.messages.remove, { id: victim });
      live.delete(victim);
      step++;
      await waitFor(() => readers.every((r) => r.latest()?.status !== "LoadingMore"), 5_000, "pages");
    }

    for (const [n, reader] of readers.entries()) {
      const settled = await waitFor(
        () => {
          const ids = reader.latest().results.map((m) => m._id);
          return JSON.stringify(ids) === JSON.stringify(expected()) ? ids : null;
        },
        5_000,
        `reader ${n} to show exactly the table, newest first`,
      ).catch((error) => {
        const ids = reader.latest().results.map((m) => m._id);
        const seen = new Set(ids);
        const missing = expected().filter((id) => !seen.has(id));
        const twice = ids.filter((id, i) => ids.indexOf(id) !== i);
        throw new Error(`${error.message}: missing ${missing.length}, duplicated ${twice.length}`);
      });
      assert.equal(new Set(settled).size, settled.length, "no row twice");
      assert.deepEqual(reader.errors, []);
    }
  });
});
