// The ports of Convex's file-storage and http demos (tests/apps/file_storage, tests/apps/http_demo)
// driven by the official client, as their React apps drive them: an image uploaded with `fetch`
// to a generated URL, then sent, and the message list pushed live with a URL serving the image;
// a message posted to an HTTP action at the site origin, pushed live to a subscriber.

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";

import { anyApi as api } from "convex/server";
import { chromium } from "playwright-core";

import { makeClient, startServer, stopAllServers, waitFor, watch } from "./support/harness.mjs";

const TIMEOUT = { timeout: 60_000 };
const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, ...new Array(200).fill(7)]);

for (const database of ["sqlite", "postgres"]) {
  describe(`file storage and HTTP actions on ${database}`, TIMEOUT, () => {
    const clients = [];

    after(async () => {
      await Promise.all(clients.map((client) => client.close()));
      await stopAllServers();
    });

    test("an uploaded image reaches every subscriber with a URL that serves it", TIMEOUT, async () => {
      const server = await startServer({ app: "tests.apps.file_storage", postgres: database === "postgres" });
      const { client: alice } = makeClient(server.url);
      const { client: bob } = makeClient(server.url);
      clients.push(alice, bob);
      const seen = watch(bob, api.messages.list, {});
      await waitFor(() => seen.latest() !== undefined, 10_000, "the first result");

      // Step 1: a short-lived upload URL; step 2: POST the file; step 3: save its id
      const postUrl = await alice.mutation(api.messages.generateUploadUrl, {});
      assert.ok(postUrl.startsWith(`${server.url}/api/storage/upload?token=`), postUrl);
      const image = new Blob([PNG], { type: "image/png" });
      const result = await fetch(postUrl, {
        method: "POST",
        headers: { "Content-Type": image.type },
        body: image,
      });
      const json = await result.json();
      assert.equal(result.status, 200, JSON.stringify(json));
      const { storageId } = json;
      await alice.mutation(api.messages.sendImage, { storageId, author: "User 1" });

      await waitFor(() => seen.latest()?.length === 1, 10_000, "the image message");
      const [message] = seen.latest();
      assert.equal(message.format, "image");
      assert.equal(message.body, storageId);
      const served = await fetch(message.url);
      assert.equal(served.status, 200);
      assert.equal(served.headers.get("content-type"), "image/png");
      assert.deepEqual(new Uint8Array(await served.arrayBuffer()), PNG);

      // the URL was single-use, and a cross-origin page may use it (no credentials)
      const again = await fetch(postUrl, { method: "POST", body: image });
      assert.equal(again.status, 401);
      const preflight = await fetch(postUrl, {
        method: "OPTIONS",
        headers: {
          Origin: "http://localhost:5173",
          "Access-Control-Request-Method": "POST",
          "Access-Control-Request-Headers": "content-type",
        },
      });
      assert.equal(preflight.headers.get("access-control-allow-origin"), "*");
      assert.deepEqual(seen.errors, []);
      seen.unsubscribe();
    });

    test("a message posted to the site origin is pushed live", TIMEOUT, async () => {
      const server = await startServer({
        app: "tests.apps.http_demo",
        postgres: database === "postgres",
        site: true,
      });
      assert.ok(server.siteUrl);
      const { client: bob } = makeClient(server.url);
      clients.push(bob);
      const seen = watch(bob, api.messages.list, {});
      await waitFor(() => seen.latest() !== undefined, 10_000, "the first result");

      const posted = await fetch(`${server.siteUrl}/postMessage`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ author: "User 123", body: "Hello world" }),
      });
      assert.equal(posted.status, 200);
      await waitFor(() => seen.latest()?.length === 1, 10_000, "the posted message");
      assert.equal(seen.latest()[0].body, "Sent via HTTP action: Hello world");

      // and under /http/ on the main port, the same actions
      const viaMain = await fetch(`${server.url}/http/postMessage`, {
        method: "POST",
        body: JSON.stringify({ author: "User 123", body: "again" }),
      });
      assert.equal(viaMain.status, 200);
      await waitFor(() => seen.latest()?.length === 2, 10_000, "the second message");

      const read = await fetch(`${server.siteUrl}/getMessagesByAuthor?authorNumber=123`);
      assert.deepEqual(
        (await read.json()).map((m) => m.body),
        ["Sent via HTTP action: Hello world", "Sent via HTTP action: again"],
      );
      const byPath = await fetch(`${server.siteUrl}/getAuthorMessages/123`);
      assert.equal((await byPath.json()).length, 2);
      // a real server sends a path as it came: dots are refused before routing
      const climbing = await fetch(`${server.siteUrl}/getAuthorMessages/a%2F..%2F..%2FpostMessage`);
      assert.equal(climbing.status, 400);
      assert.equal((await fetch(`${server.siteUrl}/nothing`)).status, 404);
      assert.deepEqual(seen.errors, []);
      seen.unsubscribe();
    });
  });
}

// A page on another origin, in Chromium: its `fetch` of the image (a preflighted POST, since
// image/png is not a simple content type) and an <img> showing the URL the live list carries.
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const ONE_PIXEL_PNG =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

describe("file storage from a browser page on another origin", TIMEOUT, () => {
  let browser;
  const clients = [];

  after(async () => {
    await browser?.close();
    await Promise.all(clients.map((client) => client.close()));
    await stopAllServers();
  });

  test("Chromium uploads with fetch and shows the image the list pushes", TIMEOUT, async () => {
    const server = await startServer({ app: "tests.apps.file_storage" });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
      timeout: 30_000,
    });
    const page = await browser.newPage();
    await page.setContent("<main>a frontend on another origin</main>");
    const { client } = makeClient(server.url);
    clients.push(client);
    const seen = watch(client, api.messages.list, {});
    await waitFor(() => seen.latest() !== undefined, 10_000, "the first result");

    const postUrl = await client.mutation(api.messages.generateUploadUrl, {});
    const uploaded = await page.evaluate(
      async ({ postUrl, png }) => {
        const bytes = Uint8Array.from(atob(png), (c) => c.charCodeAt(0));
        const image = new Blob([bytes], { type: "image/png" });
        const result = await fetch(postUrl, {
          method: "POST",
          headers: { "Content-Type": image.type },
          body: image,
        });
        return { status: result.status, json: await result.json() };
      },
      { postUrl, png: ONE_PIXEL_PNG },
    );
    assert.equal(uploaded.status, 200, JSON.stringify(uploaded.json));
    await client.mutation(api.messages.sendImage, { storageId: uploaded.json.storageId, author: "User 1" });
    await waitFor(() => seen.latest()?.length === 1, 10_000, "the image message");

    const width = await page.evaluate(async (url) => {
      const img = document.createElement("img");
      img.src = url;
      document.body.append(img);
      await img.decode();
      return img.naturalWidth;
    }, seen.latest()[0].url);
    assert.equal(width, 1);
    seen.unsubscribe();
  });
});
