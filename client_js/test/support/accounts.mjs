// Real accounts on a `startServer({realAuth: true})` backend: sign up over HTTP, Convex clients
// whose `setAuth` is fed by /api/auth/convex/token, and the dev outbox.

import { makeClient, waitFor } from "./harness.mjs";

let accounts = 0;

/** A fresh address, unique in this process. */
export function newEmail(prefix = "user") {
  return `${prefix}-${process.pid}-${++accounts}@example.com`;
}

/** Sign up over HTTP; `{email, password, sessionToken, userId}`. */
export async function signUp(url, { email = newEmail(), password = "correct horse battery", name = "Test" } = {}) {
  const response = await fetch(`${url}/api/auth/sign-up/email`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password, name }),
  });
  const body = await response.json();
  if (response.status !== 200) throw new Error(`sign-up: ${response.status} ${JSON.stringify(body)}`);
  return { email, password, sessionToken: body.token, userId: body.user.id };
}

/** Sign in (signing up) by magic link, read from the dev outbox: a user without a password. */
export async function signInWithMagicLink(url, email = newEmail("link")) {
  const asked = await fetch(`${url}/api/auth/sign-in/magic-link`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email }),
  });
  if (!asked.ok) throw new Error(`magic link: ${asked.status} ${await asked.text()}`);
  const token = await waitFor(
    async () => {
      for (const message of await outbox(url, email)) {
        const link = /https?:\/\/\S+/.exec(message.text);
        const found = link && new URL(link[0]).searchParams.get("token");
        if (found) return found;
      }
      return null;
    },
    5_000,
    `a sign-in link mailed to ${email}`,
  );
  const response = await fetch(`${url}/api/auth/magic-link/verify?token=${encodeURIComponent(token)}`);
  const body = await response.json();
  if (response.status !== 200) throw new Error(`magic link verify: ${response.status} ${JSON.stringify(body)}`);
  return { email, password: null, sessionToken: body.token, userId: body.user.id };
}

/** A Convex token for a session, from the product's own endpoint (null once revoked). */
export async function convexToken(url, sessionToken) {
  const response = await fetch(`${url}/api/auth/convex/token`, {
    headers: { authorization: `Bearer ${sessionToken}` },
  });
  if (!response.ok) return null;
  return (await response.json()).token;
}

/**
 * An official `ConvexClient` signed in as the session behind `sessionToken`; resolves once the
 * server has accepted the token. Returns what `makeClient` does.
 */
export async function signedInClient(url, sessionToken, options = {}) {
  const made = makeClient(url, options);
  let authenticated = null;
  made.client.setAuth(
    () => convexToken(url, sessionToken),
    (value) => (authenticated = value),
  );
  await waitFor(() => authenticated !== null, 5_000, "the server to accept the token");
  if (!authenticated) throw new Error("the server refused the session's token");
  return made;
}

/** Mail sent to `email` so far, newest first: `[{to, subject, text, sentAt}]`. */
export async function outbox(url, email) {
  const response = await fetch(`${url}/api/dev/outbox?to=${encodeURIComponent(email)}`);
  if (!response.ok) throw new Error(`outbox: ${response.status} ${await response.text()}`);
  return response.json();
}

/** The 6-digit code in the newest mail to `email` that has one, waiting for it to arrive. */
export async function latestCode(url, email, { after = 0 } = {}) {
  return waitFor(
    async () => {
      const mail = await outbox(url, email);
      for (const message of mail) {
        if (message.sentAt !== undefined && Date.parse(message.sentAt) < after) continue;
        const match = /\b(\d{6})\b/.exec(`${message.subject}\n${message.text}`);
        if (match) return match[1];
      }
      return null;
    },
    5_000,
    `a code mailed to ${email}`,
  );
}
