// @stepup/client/react against the real server: useSensitiveMutation on the ConvexReactClient
// from useConvex(), rendered by React DOM into happy-dom. The built-in dialog is driven through
// its DOM (a wrong password, then the right one), the render-prop provider through the app's
// own elements, and a per-hook handler cancels.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SUITE } from "./support/budget.mjs";

import { ConvexProvider, ConvexReactClient, useMutation } from "convex/react";
import { anyApi as api } from "convex/server";
import { Window } from "happy-dom";
import { createElement } from "react";
import WebSocket from "ws";

import { VerificationCancelledError, withSensitiveActions } from "@stepup/client";
import { SensitiveActionsProvider, useSensitiveMutation } from "@stepup/client/react";

import { convexToken, signUp } from "./support/accounts.mjs";
import { DEMO_APP, recordingLogger, startServer, stopAllServers, waitFor } from "./support/harness.mjs";

const TIMEOUT = { timeout: 20_000 };

// React DOM decides at import time whether it runs in a browser, so the globals come first.
const window = new Window({ url: "http://localhost/" });
globalThis.window = window;
globalThis.document = window.document;
if (globalThis.navigator === undefined) globalThis.navigator = window.navigator; // Node 20 has none
const { createRoot } = await import("react-dom/client");

async function rejection(promise) {
  return promise.then(
    (value) => assert.fail(`expected a rejection, got ${JSON.stringify(value)}`),
    (error) => error,
  );
}

describe("useSensitiveMutation", SUITE, () => {
  let server;
  const cleanups = [];

  before(async () => {
    server = await startServer({ realAuth: true, app: DEMO_APP });
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await stopAllServers();
    await window.happyDOM.close();
  });

  /** A signed-in ConvexReactClient with an org, and `mount(element)` under its provider. */
  async function setup(name = "Acme") {
    const account = await signUp(server.url);
    const convex = new ConvexReactClient(server.url, { webSocketConstructor: WebSocket, logger: recordingLogger() });
    cleanups.push(() => convex.close());
    let authenticated = null;
    convex.setAuth(
      () => convexToken(server.url, account.sessionToken),
      (value) => (authenticated = value),
    );
    await waitFor(() => authenticated !== null, 5_000, "authentication");
    const orgId = await convex.mutation(api.orgs.create, { name });
    const names = async () => (await convex.query(api.orgs.list, {})).map((org) => org.name);
    const container = document.createElement("div");
    document.body.append(container);
    const root = createRoot(container);
    cleanups.push(() => {
      root.unmount();
      container.remove();
    });
    const mount = (element, client = convex) => root.render(createElement(ConvexProvider, { client }, element));
    return { account, convex, orgId, names, container, root, mount };
  }

  /** A component that hands its hook's mutate function out. */
  function probe(options) {
    const probed = {};
    function Probe() {
      probed.remove = useSensitiveMutation(api.orgs.remove, options);
      return null;
    }
    return { probed, Probe };
  }

  test("the built-in dialog: a wrong password, then the right one, then the retry", TIMEOUT, async () => {
    const { account, orgId, names, mount } = await setup();
    const { probed, Probe } = probe();
    mount(createElement(Probe));
    await waitFor(() => probed.remove, 5_000, "the hook");

    const done = probed.remove({ orgId });
    const dialog = await waitFor(() => document.querySelector("dialog.sv-dialog"), 5_000, "the dialog");
    assert.match(dialog.querySelector(".sv-description").textContent, /^Delete organization "Acme"/);
    assert.equal(dialog.querySelector(".sv-password").hidden, false);
    assert.equal(dialog.querySelector(".sv-send").hidden, false);
    const password = dialog.querySelector("input[type=password]");
    const form = dialog.querySelector(".sv-password");
    const submit = () => form.dispatchEvent(new window.Event("submit", { bubbles: true, cancelable: true }));

    password.value = "not my password";
    submit();
    const status = dialog.querySelector(".sv-status");
    await waitFor(() => status.textContent === "That password is not right.", 5_000, "the wrong-password message");
    assert.equal(password.getAttribute("aria-invalid"), "true");

    password.value = account.password;
    submit();
    assert.equal(await done, null);
    assert.equal(dialog.isConnected, false);
    assert.deepEqual(await names(), []);
  });

  test("SensitiveActionsProvider renders the app's own dialog (render prop)", TIMEOUT, async () => {
    const { account, orgId, names, container, mount } = await setup("Rendered");
    const { probed, Probe } = probe();
    const render = (request, done) =>
      createElement(
        "div",
        { id: "my-dialog" },
        createElement("p", null, request.description),
        createElement(
          "button",
          {
            id: "my-confirm",
            onClick: async () => done((await request.verifyPassword(account.password)).ok),
          },
          "Confirm",
        ),
      );
    mount(createElement(SensitiveActionsProvider, { render }, createElement(Probe)));
    await waitFor(() => probed.remove, 5_000, "the hook");

    const done = probed.remove({ orgId });
    const mine = await waitFor(() => container.querySelector("#my-dialog"), 5_000, "the app's dialog");
    assert.match(mine.textContent, /Delete organization "Rendered"/);
    assert.equal(document.querySelector("dialog.sv-dialog"), null, "not the built-in one");
    container.querySelector("#my-confirm").click();
    assert.equal(await done, null);
    await waitFor(() => container.querySelector("#my-dialog") === null, 5_000, "the app's dialog to go");
    assert.deepEqual(await names(), []);
  });

  test("a pending render-prop request is cancelled when the provider unmounts", TIMEOUT, async () => {
    const { orgId, names, container, root, mount } = await setup("Unmounted");
    const { probed, Probe } = probe();
    const render = () => createElement("div", { id: "pending" });
    mount(createElement(SensitiveActionsProvider, { render }, createElement(Probe)));
    await waitFor(() => probed.remove, 5_000, "the hook");
    const done = probed.remove({ orgId });
    await waitFor(() => container.querySelector("#pending"), 5_000, "the app's dialog");
    root.unmount();
    assert.ok((await rejection(done)) instanceof VerificationCancelledError);
    assert.deepEqual(await names(), ["Unmounted"]);
  });

  test("a handler given to the hook wins; false cancels", TIMEOUT, async () => {
    const { orgId, names, mount } = await setup("Kept");
    const requests = [];
    const { probed, Probe } = probe({ onVerificationRequired: async (request) => requests.push(request) < 0 });
    mount(
      createElement(
        SensitiveActionsProvider,
        { onVerificationRequired: () => assert.fail("the hook's handler wins") },
        createElement(Probe),
      ),
    );
    await waitFor(() => probed.remove, 5_000, "the hook");
    const error = await rejection(probed.remove({ orgId }));
    assert.ok(error instanceof VerificationCancelledError);
    assert.equal(requests.length, 1);
    assert.equal(requests[0].action, "org.delete");
    assert.deepEqual(await names(), ["Kept"]);
  });

  test(
    "a wrapped client in ConvexProvider: plain useMutation steps up, and the hook's own handler wins",
    TIMEOUT,
    async () => {
      const { account, convex, orgId, names, mount } = await setup("Provided");
      const second = await convex.mutation(api.orgs.create, { name: "Second" });
      const fromProvider = [];
      const wrapped = withSensitiveActions(convex, {
        onVerificationRequired: async (request) => {
          fromProvider.push(request.resource);
          return (await request.verifyPassword(account.password)).ok;
        },
      });
      const fromHook = [];
      const probed = {};
      function Probe() {
        probed.plain = useMutation(api.orgs.remove);
        probed.sensitive = useSensitiveMutation(api.orgs.remove, {
          onVerificationRequired: async (request) => {
            fromHook.push(request.resource);
            return (await request.verifyPassword(account.password)).ok;
          },
        });
        return null;
      }
      mount(createElement(Probe), wrapped);
      await waitFor(() => probed.plain && probed.sensitive, 5_000, "the hooks");
      assert.equal(await probed.plain({ orgId }), null);
      assert.equal(await probed.sensitive({ orgId: second }), null);
      assert.deepEqual(fromProvider, [orgId]);
      assert.deepEqual(fromHook, [second]);
      assert.deepEqual(await names(), []);
    },
  );
});
