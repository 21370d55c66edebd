// The errors this library raises, and how it recognises the server's "verify first" refusal.
//
// The refusal is a ConvexError whose data is `{code: "SENSITIVE_VERIFICATION_REQUIRED", action,
// level, resource, description, methods}`. It is recognised by its data rather than with
// `instanceof ConvexError`: an app may load two copies of `convex`, and this library has no
// runtime dependency on it at all.

export const SENSITIVE_VERIFICATION_REQUIRED = "SENSITIVE_VERIFICATION_REQUIRED";

/** The refusal's data when `error` is the server asking for verification, else `null`. */
export function verificationRequired(error) {
  const data = error !== null && typeof error === "object" ? error.data : undefined;
  if (data === null || typeof data !== "object") return null;
  return data.code === SENSITIVE_VERIFICATION_REQUIRED ? data : null;
}

/**
 * The user declined to verify (the handler resolved `false`), so the protected call was not
 * retried. `data` is the server's refusal and `cause` the original ConvexError.
 */
export class VerificationCancelledError extends Error {
  constructor(data, cause) {
    const what = data && data.description ? `: ${data.description}` : "";
    super(`Verification cancelled${what}`, { cause });
    this.name = "VerificationCancelledError";
    this.code = "VERIFICATION_CANCELLED";
    this.data = data;
  }
}
