// Test helpers: start a real backend (test/support/server.py), mint tokens, build official
// Convex clients whose WebSocket frames are recorded, and wait for conditions.
//
// Every server started here is remembered and stopped by `stopAllServers()` (call it from an
// `after` hook) and, as a last resort, killed when the test process exits.

import { spawn } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { ConvexClient, ConvexHttpClient } from "convex/browser";
import WebSocket from "ws";

const SUPPORT_DIR = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(SUPPORT_DIR, "../../..");
const PYTHON = path.join(REPO_ROOT, ".venv", "bin", "python");
const SERVER_SCRIPT = path.join(SUPPORT_DIR, "server.py");

export const POSTGRES_URL =
  process.env.TEST_POSTGRES_URL ?? "postgresql+asyncpg://postgres@127.0.0.1:5432/test";

/** `startServer({app: DEMO_APP})` serves the demo app rather than a test app. */
export const DEMO_APP = "";

const STARTUP_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 8_000;

const running = new Set();

process.on("exit", () => {
  for (const server of running) server.process.kill("SIGKILL");
});

/**
 * Start a backend process and wait until it listens.
 *
 * @param {object} [options]
 * @param {boolean} [options.postgres] use PostgreSQL (a fresh schema unless `pgSchema` is given)
 * @param {string} [options.pgSchema] reuse this existing PostgreSQL schema
 * @param {boolean} [options.migrate] apply migrations first (default: true)
 * @param {string} [options.app] Python package of the app (default: tests.apps.basic);
 *   `DEMO_APP` ("") serves the demo app (the top-level `schema` and `functions` packages)
 * @param {boolean} [options.realAuth] the product's own sign-in and tokens, not test tokens
 * @param {boolean} [options.requireEmailVerification] no session until the address is proven
 * @param {string} [options.webDir] the built web app to serve at `/` (default: client_js/demo/dist)
 * @param {string} [options.dashboardDir] the built dashboard to serve at `/_dashboard`
 * @param {string} [options.productionAdminKey] serve as production (DEV_MODE=0) with this ADMIN_KEY
 * @param {boolean} [options.site] serve HTTP actions at a site origin of their own (`siteUrl`)
 * @returns {Promise<{url: string, siteUrl: string | null, port: number, pgSchema: string | null,
 *   stop: () => Promise<void>, stderr: () => string}>}
 */
export async function startServer(options = {}) {
  const args = [SERVER_SCRIPT, "--port", "0"];
  if (options.postgres || options.pgSchema) args.push("--database-url", POSTGRES_URL);
  if (options.pgSchema) args.push("--pg-schema", options.pgSchema);
  if (options.migrate === false) args.push("--no-migrate");
  if (options.app !== undefined && options.app !== null) args.push("--app", options.app);
  if (options.realAuth) args.push("--real-auth");
  if (options.requireEmailVerification) args.push("--require-email-verification");
  if (options.webDir) args.push("--web-dir", path.resolve(options.webDir));
  if (options.site) args.push("--site");
  if (options.dashboardDir) args.push("--dashboard-dir", path.resolve(options.dashboardDir));
  if (options.productionAdminKey) args.push("--production-admin-key", options.productionAdminKey);
  if (options.publicHost) args.push("--public-host", options.publicHost);

  const child = spawn(PYTHON, args, { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk) => {
    stderr = (stderr + chunk).slice(-20_000);
    if (process.env.SERVER_LOGS) process.stderr.write(chunk);
  });
  const exited = once(child, "exit");
  const server = {
    process: child,
    url: "",
    port: 0,
    pgSchema: null,
    stderr: () => stderr,
    stop: async () => {
      if (!running.has(server)) return;
      running.delete(server);
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    },
  };
  running.add(server);

  const ready = new Promise((resolve, reject) => {
    let buffered = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk) => {
      buffered += chunk;
      const match = /^READY (\d+) (\S+)$/m.exec(buffered);
      if (match) resolve([...match, /^SITE (\d+)$/m.exec(buffered)?.[1]]);
    });
    exited.then(([code, signal]) =>
      reject(new Error(`server exited (${code ?? signal}) before READY:\n${stderr}`)),
    );
    setTimeout(
      () => reject(new Error(`server not READY after ${STARTUP_TIMEOUT_MS} ms:\n${stderr}`)),
      STARTUP_TIMEOUT_MS,
    ).unref();
  });
  try {
    const [, port, schema, sitePort] = await ready;
    server.port = Number(port);
    server.url = `http://${options.publicHost ?? "127.0.0.1"}:${port}`;
    server.siteUrl = sitePort ? `http://127.0.0.1:${sitePort}` : null;
    server.pgSchema = schema === "-" ? null : schema;
  } catch (error) {
    await server.stop();
    throw error;
  }
  return server;
}

/** Stop every server this process started, newest first (a schema's owner goes last). */
export async function stopAllServers() {
  for (const server of [...running].reverse()) await server.stop();
}

/**
 * Mint a JWT from the test server: `{sub, sid, ttl, aud, iss, forge}` (forge signs with a key
 * the server does not trust; a negative ttl gives an expired token).
 */
export async function mintToken(url, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null) continue;
    query.set(key, value === true ? "1" : String(value));
  }
  const response = await fetch(`${url}/test/token?${query}`);
  if (!response.ok) throw new Error(`mintToken: ${response.status} ${await response.text()}`);
  return (await response.json()).token;
}

/** Make the server drop the socket after the next mutation commits, before its reply. */
export async function dropNextMutationReply(url) {
  const response = await fetch(`${url}/test/drop-next-mutation-reply`, { method: "POST" });
  if (!response.ok) throw new Error(`drop-next-mutation-reply: ${response.status}`);
}

/** Poll `predicate` until it returns a truthy value (which is returned), or throw. */
export async function waitFor(predicate, timeoutMs = 5_000, what = "condition") {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A logger for the Convex clients that keeps lines instead of printing them. */
export function recordingLogger() {
  const lines = [];
  const keep =
    (level) =>
    (...args) =>
      lines.push(`${level} ${args.map(String).join(" ")}`);
  return { lines, log: keep("log"), warn: keep("warn"), error: keep("error"), logVerbose() {} };
}

/**
 * A `ws` WebSocket class that records every frame: `[">", text]` sent, `["<", text]` received,
 * `["open"]`, and `["close", code, reason]`.
 */
export function tracingWebSocket(trace) {
  return class TracingWebSocket extends WebSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener("open", () => trace.push(["open"]));
      this.addEventListener("message", (event) => trace.push(["<", String(event.data)]));
      this.addEventListener("close", (event) => trace.push(["close", event.code, event.reason]));
    }

    send(data, ...rest) {
      trace.push([">", String(data)]);
      return super.send(data, ...rest);
    }
  };
}

/** The parsed messages of a trace in one direction (">" sent by the client, "<" received). */
export function messages(trace, direction) {
  return trace.filter(([dir]) => dir === direction).map(([, text]) => JSON.parse(text));
}

/** A trace as readable lines, for failure messages and reports. */
export function formatTrace(trace) {
  return trace
    .map(([dir, ...rest]) => (dir === ">" || dir === "<" ? `${dir} ${rest[0]}` : `# ${dir} ${rest.join(" ")}`))
    .join("\n");
}

/**
 * An official `ConvexClient` on `url`, with a recorded trace and a silent logger.
 * Returns `{client, trace, logger}`; close it with `client.close()`.
 */
export function makeClient(url, options = {}) {
  const trace = [];
  const logger = recordingLogger();
  const client = new ConvexClient(url, {
    webSocketConstructor: tracingWebSocket(trace),
    logger,
    ...options,
  });
  return { client, trace, logger };
}

/** An official `ConvexHttpClient` on `url`, with a silent logger. */
export function makeHttpClient(url, options = {}) {
  return new ConvexHttpClient(url, { logger: recordingLogger(), ...options });
}

/**
 * Subscribe with `client.onUpdate` and keep every value and error it reports.
 * Returns `{values, errors, latest(), unsubscribe}`.
 */
export function watch(client, ref, args) {
  const values = [];
  const errors = [];
  const unsubscribe = client.onUpdate(
    ref,
    args,
    (value) => values.push(value),
    (error) => errors.push(error),
  );
  return { values, errors, latest: () => values.at(-1), unsubscribe };
}
