// Types of @stepup/client/react.

import type { OptimisticUpdate } from "convex/browser";
import type { FunctionArgs, FunctionReference, FunctionReturnType } from "convex/server";
import type { ReactNode } from "react";

import type { VerificationHandler, VerificationRequest } from "./index.js";

export type { VerificationHandler, VerificationRequest } from "./index.js";
export { VerificationCancelledError } from "./index.js";

export interface SensitiveMutationOptions {
  /** Who asks the user for this hook (default: the provider's choice, else the built-in dialog). */
  onVerificationRequired?: VerificationHandler;
  /** Dialogs per call before the server's refusal is passed on (default 3). */
  maxRounds?: number;
}

/** Like `ReactMutation` from convex/react: call it with the mutation's arguments. */
export interface SensitiveMutation<Mutation extends FunctionReference<"mutation">> {
  (
    args?: FunctionArgs<Mutation>,
    options?: { optimisticUpdate?: OptimisticUpdate<FunctionArgs<Mutation>> },
  ): Promise<FunctionReturnType<Mutation>>;
  withOptimisticUpdate(
    optimisticUpdate: OptimisticUpdate<FunctionArgs<Mutation>>,
  ): (args?: FunctionArgs<Mutation>) => Promise<FunctionReturnType<Mutation>>;
}

/**
 * `useMutation(ref)` with step-up verification: a protected mutation asks the user and is
 * retried; a cancelled verification rejects with `VerificationCancelledError`. Needs a
 * `<ConvexProvider>` above it.
 */
export declare function useSensitiveMutation<Mutation extends FunctionReference<"mutation">>(
  mutation: Mutation,
  options?: SensitiveMutationOptions,
): SensitiveMutation<Mutation>;

export interface SensitiveActionsProviderProps {
  /** A handler for every hook below. */
  onVerificationRequired?: VerificationHandler;
  /** Or: what to render while a verification is pending; call `done(true)` once verified, `done(false)` to cancel. */
  render?: (request: VerificationRequest, done: (verified: boolean) => void) => ReactNode;
  children?: ReactNode;
}

/** Sets how the `useSensitiveMutation` hooks below it ask the user (default: the built-in dialog). */
export declare function SensitiveActionsProvider(props: SensitiveActionsProviderProps): ReactNode;

export interface VerificationPrompt {
  /** The pending request, or null. */
  request: VerificationRequest | null;
  /** Settle the pending request: `true` once verified, `false` to cancel. */
  resolve: (verified: boolean) => void;
  /** Pass this as `onVerificationRequired`. */
  onVerificationRequired: VerificationHandler;
}

/** A handler whose pending request lives in this component's state, for rendering your own dialog. */
export declare function useVerificationPrompt(): VerificationPrompt;
