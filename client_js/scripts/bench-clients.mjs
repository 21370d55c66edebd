// The JS side of benchmarks/bench_clients.py: the official ConvexClient, measured from here.
//
//     node client_js/scripts/bench-clients.mjs roundtrips <url> <n>
//         prints {"query": [ms...], "mutation": [ms...]}
//     node client_js/scripts/bench-clients.mjs watch <url> <channel>
//         prints {"ready": true}, then {"count": n, "at": <wall-clock ms>} per update;
//         exits when stdin closes.
//     node client_js/scripts/bench-clients.mjs write <url> <channel>
//         one mutation per line read from stdin; prints {"returned": <wall-clock ms>} per write.
//
// Wall-clock times (performance.timeOrigin + performance.now()) are compared with the Python
// side's time.time(): both read the same system clock.

import { createInterface } from "node:readline";

import { ConvexClient } from "convex/browser";
import { anyApi as api } from "convex/server";

const [mode, url, arg] = process.argv.slice(2);
const quiet = { log() {}, warn() {}, error() {}, logVerbose() {} };
const wall = () => performance.timeOrigin + performance.now();
const client = new ConvexClient(url, { logger: quiet });

if (mode === "roundtrips") {
  const n = Number(arg);
  const query = [];
  const mutation = [];
  for (let i = 0; i < 20; i++) await client.query(api.messages.ping, {}); // warm up
  for (let i = 0; i < n; i++) {
    let start = performance.now();
    await client.query(api.messages.ping, {});
    query.push(performance.now() - start);
    start = performance.now();
    await client.mutation(api.messages.send, { channel: "bench-js", body: String(i) });
    mutation.push(performance.now() - start);
  }
  console.log(JSON.stringify({ query, mutation }));
  await client.close();
} else if (mode === "watch") {
  client.onUpdate(api.messages.count, { channel: arg }, (count) => {
    console.log(JSON.stringify({ count, at: wall() }));
  });
  console.log(JSON.stringify({ ready: true }));
  process.stdin.resume();
  process.stdin.on("end", async () => {
    await client.close();
    process.exit(0);
  });
} else if (mode === "write") {
  const lines = createInterface({ input: process.stdin });
  console.log(JSON.stringify({ ready: true }));
  for await (const line of lines) {
    await client.mutation(api.messages.send, { channel: arg, body: line });
    console.log(JSON.stringify({ returned: wall() }));
  }
  await client.close();
} else {
  throw new Error(`unknown mode ${mode}`);
}
