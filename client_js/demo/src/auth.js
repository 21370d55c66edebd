// The server's auth endpoints (Better Auth's paths, contract section 3), called with fetch.
//
// The session rides on the HttpOnly cookie that the sign-in answers set: this page never keeps
// the session token (the answers carry it too; it is ignored), so a script injected into the
// page could not carry it off. What the Convex client needs is a short-lived JWT, fetched from
// /api/auth/convex/token with that cookie whenever the client asks for one.

/** An auth endpoint refused, or could not be reached: `code` is the server's, or NETWORK. */
export class AuthError extends Error {
  constructor(code, message, { status = 0, data = null } = {}) {
    super(message);
    this.name = "AuthError";
    this.code = code;
    this.status = status;
    this.data = data;
  }
}

async function call(path, { method = "GET", body } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      credentials: "include",
      cache: "no-store",
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new AuthError("NETWORK", "Can't reach the server. Check your connection and try again.");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const code = typeof data?.code === "string" ? data.code : `HTTP_${response.status}`;
    const message = typeof data?.message === "string" ? data.message : `The server answered ${response.status}.`;
    throw new AuthError(code, message, { status: response.status, data });
  }
  return data;
}

/** Where a magic link or an OAuth provider sends the browser back to: this page. */
function callbackURL() {
  return window.location.pathname || "/";
}

/** `{session, user}` for the cookie's session, or null when signed out. */
export function getSession() {
  return call("/api/auth/get-session");
}

/** Create an account with a password; signs in. Resolves to the user. */
export async function signUp({ name, email, password }) {
  return (await call("/api/auth/sign-up/email", { method: "POST", body: { name, email, password } })).user;
}

/** Sign in with a password. Resolves to the user. */
export async function signIn({ email, password }) {
  return (await call("/api/auth/sign-in/email", { method: "POST", body: { email, password } })).user;
}

/** Mail a single-use sign-in link (answered alike whether or not the address is known). */
export async function requestMagicLink(email) {
  await call("/api/auth/sign-in/magic-link", { method: "POST", body: { email, callbackURL: callbackURL() } });
}

/** The ids of the OAuth providers the server offers, e.g. ["google"]. */
export async function oauthProviders() {
  return (await call("/api/auth/providers")).providers ?? [];
}

/** Start signing in with an OAuth provider: resolves to the provider's URL to go to. */
export async function socialSignInURL(provider) {
  return (await call("/api/auth/sign-in/social", { method: "POST", body: { provider, callbackURL: callbackURL() } })).url;
}

/** End the session and clear the cookie. */
export async function signOut() {
  await call("/api/auth/sign-out", { method: "POST", body: {} });
}

/** A Convex JWT for the cookie's session, or null when there is no live session. */
export async function convexToken() {
  try {
    return (await call("/api/auth/convex/token")).token;
  } catch (error) {
    if (error instanceof AuthError && error.status === 401) return null;
    throw error;
  }
}

/**
 * Mail "sent" to `email`, newest first, from the dev outbox: only a server in dev mode has one,
 * so this resolves to null elsewhere (and is how the page knows it is in dev mode).
 */
export async function devOutbox(email) {
  try {
    return await call(`/api/dev/outbox?to=${encodeURIComponent(email)}`);
  } catch (error) {
    if (error instanceof AuthError && error.status === 404) return null;
    throw error;
  }
}

export function devOutboxURL(email) {
  return `/api/dev/outbox?to=${encodeURIComponent(email)}`;
}

/** The account's live sessions (Better Auth's shape: id, userAgent, ipAddress, createdAt…). */
export function listSessions() {
  return call("/api/auth/list-sessions");
}

/** Sign one of the account's sessions out. */
export async function revokeSession(id) {
  await call("/api/auth/revoke-session", { method: "POST", body: { id } });
}
