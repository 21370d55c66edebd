// @stepup/client: step-up verification for sensitive actions, on top of the official Convex
// client. See README.md beside package.json.

export { withSensitiveActions } from "./sensitive-actions.js";
export { VerificationCancelledError, SENSITIVE_VERIFICATION_REQUIRED, verificationRequired } from "./errors.js";
export { createVerificationDialog } from "./dialog.js";
export { DEFAULT_LABELS } from "./dialog-state.js";
export { registerPasskey } from "./webauthn.js";
