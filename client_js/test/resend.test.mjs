// A mutation whose socket drops after it committed and before its MutationResponse: the client
// resends it on the next socket (same sessionId and requestId), and the server answers with the
// original outcome instead of running it twice.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SUITE } from "./support/budget.mjs";

import { anyApi as api } from "convex/server";

import {
  dropNextMutationReply,
  formatTrace,
  makeClient,
  makeHttpClient,
  messages,
  startServer,
  stopAllServers,
  waitFor,
  watch,
} from "./support/harness.mjs";

const TIMEOUT = { timeout: 20_000 };

describe("mutation resend after a lost reply", SUITE, () => {
  let server;
  const clients = [];

  before(async () => {
    server = await startServer();
  });

  after(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await stopAllServers();
  });

  test("resolves with the original result and commits exactly once", TIMEOUT, async () => {
    const { client, trace } = makeClient(server.url);
    clients.push(client);
    await client.mutation(api.counters.create, { name: "once" });
    assert.equal(await client.mutation(api.counters.increment, { name: "once" }), 1);
    const counter = watch(client, api.counters.get, { name: "once" });
    await waitFor(() => counter.latest()?.value === 1, 5_000, "the counter at 1");

    await dropNextMutationReply(server.url);
    const result = await client.mutation(api.counters.increment, { name: "once" }).catch((error) => {
      throw new Error(`${error.message}\n${formatTrace(trace)}`);
    });
    const context = `\n${formatTrace(trace)}`;
    if (process.env.SHOW_TRACE) console.log(context);
    assert.equal(result, 2, context);

    // The socket really dropped, and the same request went out twice under one session.
    const connects = messages(trace, ">").filter((m) => m.type === "Connect");
    assert.equal(connects.length, 2, context);
    assert.equal(connects[1].sessionId, connects[0].sessionId, context);
    const sent = messages(trace, ">").filter((m) => m.type === "Mutation");
    const last = sent.at(-1);
    assert.equal(sent.filter((m) => m.requestId === last.requestId).length, 2, context);
    const replies = messages(trace, "<").filter(
      (m) => m.type === "MutationResponse" && m.requestId === last.requestId,
    );
    assert.equal(replies.length, 1, context);
    assert.equal(replies[0].success, true, context);

    // Exactly once: the counter moved from 1 to 2, not to 3.
    const http = makeHttpClient(server.url);
    assert.equal((await http.query(api.counters.get, { name: "once" })).value, 2);
    await waitFor(() => counter.latest()?.value === 2, 5_000, "the subscription at 2");
    assert.ok(counter.values.every((row) => row.value <= 2), context);

    // The next mutation on the new socket is an ordinary one.
    assert.equal(await client.mutation(api.counters.increment, { name: "once" }), 3);
    counter.unsubscribe();
  });
});
