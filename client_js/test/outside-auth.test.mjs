// Outside auth providers through the official client: a token from an OIDC provider on
// loopback (standing in for Clerk or Auth0), given to `setAuth`, is the identity functions see;
// a forged one is refused and the client falls back to no identity.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { after, before, describe, test } from "node:test";

import { ConvexClient } from "convex/browser";
import { anyApi as api } from "convex/server";

import { REPO_ROOT, recordingLogger, startServer, stopAllServers, waitFor } from "./support/harness.mjs";

const TIMEOUT = { timeout: 60_000 };
const PYTHON = `${REPO_ROOT}/.venv/bin/python`;

async function startProvider() {
  const child = spawn(PYTHON, ["-m", "tests.support.oidc_provider", "convex"], {
    cwd: REPO_ROOT,
    stdio: ["ignore", "pipe", "inherit"],
  });
  child.stdout.setEncoding("utf8");
  let buffered = "";
  const issuer = await new Promise((resolve, reject) => {
    child.stdout.on("data", (chunk) => {
      buffered += chunk;
      const match = /^READY (\S+)$/m.exec(buffered);
      if (match) resolve(match[1]);
    });
    child.on("exit", (code) => reject(new Error(`the OIDC provider exited (${code})`)));
  });
  return { issuer, child };
}

async function mint(issuer, body) {
  const response = await fetch(`${issuer}/test/mint`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 200);
  return (await response.json()).token;
}

for (const database of ["sqlite", "postgres"]) {
  describe(`outside auth providers on ${database}`, TIMEOUT, () => {
    let provider;
    let server;

    before(async () => {
      provider = await startProvider();
      process.env.OUTSIDE_AUTH_ISSUER = provider.issuer;
      server = await startServer({
        app: "tests.apps.outside_auth",
        realAuth: true,
        postgres: database === "postgres",
      });
    });

    after(async () => {
      await stopAllServers();
      provider.child.kill("SIGTERM");
      await once(provider.child, "exit");
    });

    test("setAuth with a provider's token: the functions see its UserIdentity", TIMEOUT, async () => {
      const client = new ConvexClient(server.url, { logger: recordingLogger() });
      try {
        const states = [];
        client.setAuth(
          async () =>
            mint(provider.issuer, { sub: `user_${database}`, claims: { email: "ada@example.com", email_verified: true } }),
          (authenticated) => states.push(authenticated),
        );
        await waitFor(() => states.includes(true), 15_000, "the token to be accepted");
        const me = await client.query(api.notes.me, {});
        assert.equal(me.tokenIdentifier, `${provider.issuer}|user_${database}`);
        assert.equal(me.subject, `user_${database}`);
        assert.equal(me.issuer, provider.issuer);
        assert.equal(me.email, "ada@example.com");
        assert.equal(me.emailVerified, true);
        await client.mutation(api.notes.add, { body: "mine" });
        assert.deepEqual(await client.query(api.notes.mine, {}), ["mine"]);
      } finally {
        await client.close();
      }
    });

    test("a forged token is refused: no identity, nothing written", TIMEOUT, async () => {
      const client = new ConvexClient(server.url, { logger: recordingLogger() });
      try {
        const states = [];
        client.setAuth(
          async () => mint(provider.issuer, { sub: "mallory", forged: true }),
          (authenticated) => states.push(authenticated),
        );
        await waitFor(() => states.includes(false), 15_000, "the token to be refused");
        assert.equal(await client.query(api.notes.me, {}), null);
        await assert.rejects(client.mutation(api.notes.add, { body: "x" }), /sign in first/);
      } finally {
        await client.close();
      }
    });
  });
}
