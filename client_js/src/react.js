// React bindings: `useSensitiveMutation(ref)` is `useMutation(ref)` from `convex/react` with
// step-up verification, on the same core as `withSensitiveActions`.
//
// Who asks the user, first match wins:
// 1. `useSensitiveMutation(ref, {onVerificationRequired})`: a handler for this hook;
// 2. the nearest `<SensitiveActionsProvider>`: its `onVerificationRequired` handler, or its
//    `render(request, done)` prop, which renders the app's own dialog while one is pending;
// 3. the built-in `<dialog>` (`createVerificationDialog()`).
//
// The wrapped client is the `ConvexReactClient` from `useConvex()`, so every hook of an app
// shares one queue: at most one dialog is open at a time across all of them.

import { useConvex } from "convex/react";
import { getFunctionName } from "convex/server";
import { createContext, createElement, useCallback, useContext, useEffect, useMemo, useRef, useState } from "react";

import { createVerificationDialog } from "./dialog.js";
import { withSensitiveActions } from "./sensitive-actions.js";

const HandlerContext = createContext(null);

let builtInDialog = null;

/** The built-in dialog, made on first use (a server render never needs a document). */
function showBuiltInDialog(request) {
  builtInDialog ??= createVerificationDialog();
  return builtInDialog(request);
}

/**
 * A handler whose requests are kept in state for you to render: `{request, resolve,
 * onVerificationRequired}`. `request` is the pending request or null; call `resolve(true)`
 * once verified or `resolve(false)` to cancel. A pending request is cancelled on unmount.
 */
export function useVerificationPrompt() {
  const [pending, setPending] = useState(null);
  const current = useRef(null);
  const onVerificationRequired = useCallback(
    (request) =>
      new Promise((resolve) => {
        const entry = {
          request,
          resolve: (verified) => {
            if (current.current === entry) current.current = null;
            setPending((shown) => (shown === entry ? null : shown));
            resolve(verified === true);
          },
        };
        current.current?.resolve(false); // one at a time already; never strand an older one
        current.current = entry;
        setPending(entry);
      }),
    [],
  );
  useEffect(() => () => current.current?.resolve(false), []);
  return { request: pending?.request ?? null, resolve: pending?.resolve ?? (() => {}), onVerificationRequired };
}

/**
 * Sets how `useSensitiveMutation` hooks below it ask the user: `onVerificationRequired`
 * (a handler), or `render(request, done)` (an element shown while a request is pending;
 * `done(true)` after a successful verification, `done(false)` to cancel). With neither, the
 * built-in dialog.
 */
export function SensitiveActionsProvider({ onVerificationRequired, render, children }) {
  const prompt = useVerificationPrompt();
  const latest = useRef(null);
  latest.current = { onVerificationRequired, render };
  const showPrompt = prompt.onVerificationRequired;
  const handler = useCallback(
    (request) => {
      const chosen = latest.current;
      if (chosen.onVerificationRequired) return chosen.onVerificationRequired(request);
      if (chosen.render) return showPrompt(request);
      return showBuiltInDialog(request);
    },
    [showPrompt],
  );
  const shown = render && prompt.request ? render(prompt.request, prompt.resolve) : null;
  return createElement(HandlerContext.Provider, { value: handler }, children, shown);
}

/**
 * `useMutation(ref)` with step-up verification: a protected mutation asks the user, then is
 * retried; a cancelled verification rejects with `VerificationCancelledError`. Options:
 * `onVerificationRequired` (a handler for this hook) and `maxRounds`.
 */
export function useSensitiveMutation(ref, options = {}) {
  const convex = useConvex();
  if (convex === undefined || convex === null) {
    throw new Error("useSensitiveMutation needs a ConvexReactClient: render it under <ConvexProvider>");
  }
  const fromContext = useContext(HandlerContext);
  const handler = useRef(null);
  handler.current = options.onVerificationRequired ?? fromContext ?? showBuiltInDialog;
  const { maxRounds } = options;
  const client = useMemo(
    () => withSensitiveActions(convex, { onVerificationRequired: (request) => handler.current(request), maxRounds }),
    [convex, maxRounds],
  );
  const name = getFunctionName(ref);
  return useMemo(() => {
    const mutate = (args, callOptions) => client.mutation(ref, args ?? {}, callOptions);
    mutate.withOptimisticUpdate = (optimisticUpdate) => (args) =>
      client.mutation(ref, args ?? {}, { optimisticUpdate });
    return mutate;
    // `ref` may be a new object on every render (`api.x.y`); its name is what matters.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [client, name]);
}

export { VerificationCancelledError } from "./errors.js";
