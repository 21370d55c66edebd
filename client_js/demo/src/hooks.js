// Small hooks the screens share: a live query that reports errors as values, a task runner
// for buttons and forms, and the hash route.

import { useQueries } from "convex/react";
import { getFunctionName } from "convex/server";
import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";

import { VerificationCancelledError } from "@stepup/client";

/**
 * A live query (`useQuery`, but an error is a value rather than a throw, so a screen can say
 * what went wrong where it happened): `{data, error, loading}`. `args === "skip"` skips it.
 */
export function useLiveQuery(ref, args) {
  const skip = args === "skip";
  const key = skip ? "skip" : JSON.stringify(args);
  const name = getFunctionName(ref);
  const queries = useMemo(
    () => (skip ? {} : { result: { query: ref, args } }),
    // `ref` and `args` are new objects on every render; their name and value are what matter.
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [name, key],
  );
  const result = useQueries(queries).result;
  if (skip) return { data: undefined, error: null, loading: false };
  if (result instanceof Error) return { data: undefined, error: result, loading: false };
  return { data: result, error: null, loading: result === undefined };
}

/**
 * Run one async job at a time for a form or a button: `{run, pending, error, notice, reset}`.
 * `run(job, {done})` resolves `{ok, value | error}`; a cancelled verification is not an error
 * (the user changed their mind) and leaves a quiet notice instead.
 */
export function useTask() {
  const [state, setState] = useState({ pending: false, error: null, notice: null });
  const alive = useRef(true);
  useEffect(() => {
    alive.current = true;
    return () => {
      alive.current = false;
    };
  }, []);
  // A notice ("Saved.") fades after a while; an error stays until the next try.
  useEffect(() => {
    if (!state.notice) return undefined;
    const timer = setTimeout(() => setState((current) => (current.notice === state.notice ? { ...current, notice: null } : current)), NOTICE_MS);
    return () => clearTimeout(timer);
  }, [state.notice]);
  const update = (next) => {
    if (alive.current) setState(next);
  };
  const run = useCallback(async (job, { done = null, cancelled = "Cancelled: nothing was changed." } = {}) => {
    update({ pending: true, error: null, notice: null });
    try {
      const value = await job();
      update({ pending: false, error: null, notice: typeof done === "function" ? done(value) : done });
      return { ok: true, value };
    } catch (error) {
      if (error instanceof VerificationCancelledError) {
        update({ pending: false, error: null, notice: cancelled });
      } else {
        update({ pending: false, error, notice: null });
      }
      return { ok: false, error };
    }
  }, []);
  const reset = useCallback(() => update({ pending: false, error: null, notice: null }), []);
  return { ...state, run, reset };
}

const NOTICE_MS = 6000;

function subscribeHash(callback) {
  window.addEventListener("hashchange", callback);
  return () => window.removeEventListener("hashchange", callback);
}

/** `#/` → home, `#/org/<id>` → an organization, `#/account` → my account. */
export function useRoute() {
  const hash = useSyncExternalStore(subscribeHash, () => window.location.hash);
  const parts = hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "org" && parts[1]) return { page: "org", orgId: parts[1] };
  if (parts[0] === "account") return { page: "account" };
  return { page: "home" };
}

export const href = {
  home: () => "#/",
  org: (orgId) => `#/org/${encodeURIComponent(orgId)}`,
  account: () => "#/account",
};

export function navigate(to) {
  if (window.location.hash !== to) window.location.hash = to;
}
