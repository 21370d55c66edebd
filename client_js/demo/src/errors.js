// What to tell a person when something failed: the server's own words where it has them
// (ConvexError data and auth errors carry `{code, message}`), plainer words for the rest.

import { ConvexError } from "convex/values";

import { AuthError } from "./auth.js";

const FRIENDLY = {
  NETWORK: "Can't reach the server. Check your connection and try again.",
  UNAUTHENTICATED: "Your session has ended. Sign in again.",
  INVALID_EMAIL_OR_PASSWORD: "That email and password don't match an account.",
  USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL: "An account with this email already exists. Sign in instead.",
  INVALID_ORIGIN:
    "The server refused this page's address. Open the app at the address the server was configured with.",
};

/** The error's `{code, message, ...}` data, or null for an error without any. */
export function errorData(error) {
  if (error instanceof ConvexError || error instanceof AuthError) {
    const data = error instanceof AuthError ? { ...error.data, code: error.code, message: error.message } : error.data;
    if (data !== null && typeof data === "object") return data;
  }
  return null;
}

function formatWait(ms) {
  const seconds = Math.max(1, Math.ceil(ms / 1000));
  if (seconds < 60) return `${seconds} s`;
  return `${Math.ceil(seconds / 60)} min`;
}

/** One sentence for a person. */
export function errorMessage(error) {
  const data = errorData(error);
  if (data === null) {
    if (error instanceof Error && /connection|network|fetch/i.test(error.message)) return FRIENDLY.NETWORK;
    return "Something went wrong on our side. Try again in a moment.";
  }
  if (data.code === "RATE_LIMITED") {
    return typeof data.retryAfterMs === "number"
      ? `Too many attempts. Try again in ${formatWait(data.retryAfterMs)}.`
      : "Too many attempts. Try again later.";
  }
  return FRIENDLY[data.code] ?? (typeof data.message === "string" && data.message ? data.message : data.code);
}

/** The argument the server blamed (`path` in INVALID_ARGUMENT and friends), if any. */
export function errorField(error) {
  const path = errorData(error)?.path;
  return typeof path === "string" ? path : null;
}
