// A frontend on another origin (a Vite dev server on localhost:5173 talking to the backend):
// the official ConvexClient's socket and ConvexHttpClient's calls work from any Origin, with
// no ALLOWED_ORIGINS configured, because both authenticate by token and never by cookie.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SUITE } from "./support/budget.mjs";

import { anyApi as api } from "convex/server";
import WebSocket from "ws";

import {
  makeClient,
  makeHttpClient,
  messages,
  mintToken,
  startServer,
  stopAllServers,
  tracingWebSocket,
  waitFor,
  watch,
} from "./support/harness.mjs";

const TIMEOUT = { timeout: 20_000 };
const FRONTEND = "http://localhost:5173";

/** A `ws` socket that sends the Origin a browser page on `origin` would send. */
function fromOrigin(origin, trace) {
  const Traced = tracingWebSocket(trace);
  return class extends Traced {
    constructor(url, protocols, options) {
      super(url, protocols, { ...options, origin });
    }
  };
}

describe("a frontend on another origin", SUITE, () => {
  let server;

  before(async () => {
    server = await startServer();
  });

  after(async () => {
    await stopAllServers();
  });

  test("the sync socket opens, subscribes, mutates and authenticates", TIMEOUT, async () => {
    const trace = [];
    const { client } = makeClient(server.url, { webSocketConstructor: fromOrigin(FRONTEND, trace) });
    try {
      const counter = watch(client, api.counters.get, { name: "xo" });
      await waitFor(() => counter.values.length === 1, 10_000, "the first result");
      assert.equal(counter.latest(), null);
      await client.mutation(api.counters.create, { name: "xo" });
      await waitFor(() => counter.latest()?.value === 0, 10_000, "the write to arrive");

      client.setAuth(async () => mintToken(server.url, { sub: "frontend-user", sid: "s-xo" }));
      const me = watch(client, api.notes.whoami, {});
      await waitFor(() => me.latest() === "frontend-user", 10_000, "the token to be accepted");
      assert.ok(trace.some(([kind]) => kind === "open"), "the socket opened");
      assert.ok(!trace.some(([kind]) => kind === "close"), "and was never refused or dropped");
      const sent = messages(trace, ">").map((m) => m.type);
      assert.ok(sent.includes("Authenticate"));
    } finally {
      await client.close();
    }
  });

  test("the raw upgrade from a hostile origin is accepted but anonymous", TIMEOUT, async () => {
    const socket = new WebSocket(server.url.replace("http", "ws") + "/api/1.48.0/sync", {
      origin: "https://elsewhere.example",
    });
    await new Promise((resolve, reject) => {
      socket.once("open", resolve);
      socket.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      socket.once("error", reject);
    });
    const received = [];
    socket.on("message", (data) => received.push(JSON.parse(String(data))));
    socket.send(JSON.stringify({ type: "Connect", sessionId: "xo-raw", connectionCount: 0, lastCloseReason: "InitialConnect" }));
    socket.send(
      JSON.stringify({
        type: "ModifyQuerySet",
        baseVersion: 0,
        newVersion: 1,
        modifications: [{ type: "Add", queryId: 0, udfPath: "notes:whoami", args: [{}] }],
      }),
    );
    await waitFor(() => received.some((m) => m.type === "Transition"), 10_000, "a Transition");
    const transition = received.find((m) => m.type === "Transition");
    assert.equal(transition.modifications[0].value, null);
    socket.close();
  });

  test("ConvexHttpClient calls answer any origin (CORS without credentials)", TIMEOUT, async () => {
    const preflight = await fetch(`${server.url}/api/mutation`, {
      method: "OPTIONS",
      headers: {
        Origin: FRONTEND,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,convex-client,authorization",
      },
    });
    assert.equal(preflight.status, 200);
    assert.equal(preflight.headers.get("access-control-allow-origin"), "*");
    assert.equal(preflight.headers.get("access-control-allow-credentials"), null);

    const http = makeHttpClient(server.url, {
      fetch: (url, init) => fetch(url, { ...init, headers: { ...init.headers, Origin: FRONTEND } }),
    });
    assert.equal(await http.query(api.counters.get, { name: "nobody-xo" }), null);
  });
});
