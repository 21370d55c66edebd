// One scripted session of the official JS clients against a server, for the Python suite's
// wire-conformance test (tests/clients/test_wire_conformance.py), which records the frames
// on the server side and checks every one.
//
//     node client_js/test/support/drive-session.mjs <url> <convex token> <channel>
//
// Prints DONE once every step has settled. Test-only: nothing here is part of the product.

import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { anyApi as api } from "convex/server";

const [url, token, channel] = process.argv.slice(2);
const quiet = { log() {}, warn() {}, error() {}, logVerbose() {} };

async function settle(promise) {
  try {
    return await promise;
  } catch (error) {
    return error;
  }
}

async function waitFor(predicate, what) {
  const deadline = Date.now() + 15_000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const client = new ConvexClient(url, { logger: quiet });
const seen = [];
const unsubscribe = client.onUpdate(api.messages.list, { channel }, (v) => seen.push(v), () => {});
await waitFor(() => seen.length > 0, "the first result");
await client.mutation(api.messages.send, { channel, body: "from js" });
await settle(client.mutation(api.messages.send_then_refuse, { channel, body: "no" }));
await settle(client.mutation(api.messages.crash, { channel }));
await settle(client.query(api.messages.refuse, { channel }));
await settle(client.query(api.messages.nope, {}));
await settle(client.query(api.messages.list, { channel: 5 }));
await client.action(api.messages.echo, { value: { big: 5n, bytes: new Uint8Array([1, 2]).buffer, nan: NaN } });
await settle(client.action(api.messages.refuse_action, {}));
let authenticated = null;
client.setAuth(async () => token, (ok) => (authenticated = ok));
await waitFor(() => authenticated !== null, "the token to be confirmed");
const me = await client.query(api.messages.whoami, {});
if (!me || !me.email) throw new Error(`whoami: ${JSON.stringify(me)}`);
unsubscribe();
await client.close();

const http = new ConvexHttpClient(url, { logger: quiet });
await http.query(api.messages.count, { channel });
await settle(http.mutation(api.messages.send_then_refuse, { channel, body: "no" }));
console.log("DONE");
