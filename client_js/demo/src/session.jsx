// Who is signed in, for the whole page, and the bridge to the Convex client.
//
// The session itself lives in the HttpOnly cookie; this context only knows whether there is
// one (from /api/auth/get-session) and whose it is. `useConvexSessionAuth` is the `useAuth`
// hook that `ConvexProviderWithAuth` asks for: it hands the Convex client a function that
// fetches a fresh JWT with that cookie, and reports the session lost when the server says there
// is none (signed out elsewhere, expired, or the account deleted).

import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState } from "react";

import * as auth from "./auth.js";

const SessionContext = createContext(null);

export function SessionProvider({ children }) {
  // status: "loading" | "signedIn" | "signedOut" | "unreachable"
  const [state, setState] = useState({ status: "loading", user: null, notice: null, error: null });

  const refresh = useCallback(async () => {
    setState((current) => ({ ...current, status: "loading", error: null }));
    try {
      const found = await auth.getSession();
      setState((current) =>
        found?.user
          ? { status: "signedIn", user: found.user, notice: null, error: null }
          : { status: "signedOut", user: null, notice: current.notice, error: null },
      );
    } catch (error) {
      setState({ status: "unreachable", user: null, notice: null, error });
    }
  }, []);

  useEffect(() => {
    refresh();
  }, [refresh]);

  const signedIn = useCallback((user) => setState({ status: "signedIn", user, notice: null, error: null }), []);
  const signedOut = useCallback(
    (notice = null) => setState({ status: "signedOut", user: null, notice, error: null }),
    [],
  );

  const value = useMemo(() => ({ ...state, refresh, signedIn, signedOut }), [state, refresh, signedIn, signedOut]);
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

/** `{status, user, notice, error, refresh(), signedIn(user), signedOut(notice?)}`. */
export function useSession() {
  const session = useContext(SessionContext);
  if (session === null) throw new Error("useSession needs a <SessionProvider> above it");
  return session;
}

/** The `useAuth` hook for `ConvexProviderWithAuth`: tokens from /api/auth/convex/token. */
export function useConvexSessionAuth() {
  const { status, user, signedOut } = useSession();
  const userId = user?.id ?? null;
  const lost = useRef(signedOut);
  lost.current = signedOut;
  const fetchAccessToken = useCallback(async () => {
    let token;
    try {
      token = await auth.convexToken();
    } catch {
      return null; // the network: the Convex client reconnects and asks again
    }
    if (token === null && userId !== null) lost.current("Your session has ended. Sign in again.");
    return token;
    // A new function per user, so the Convex client re-authenticates when the user changes.
  }, [userId]);
  return {
    isLoading: status === "loading",
    isAuthenticated: status === "signedIn",
    fetchAccessToken,
  };
}
