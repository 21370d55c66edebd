// The verification dialog's logic, without a DOM: a state, the events that change it, and the
// view the DOM layer paints (texts, what is shown, what is disabled, countdowns).
//
// Time is a parameter (`now`, in ms): results carry the moment they arrived, and `view` takes
// the moment it paints, so countdowns and rate limits are tested without waiting.
//
// Methods and their budgets on the server (section 5 of the contract):
// - "password": `verifyPassword` → INVALID_PASSWORD, METHOD_NOT_AVAILABLE, RATE_LIMITED.
// - "send": `sendEmailCode` → RATE_LIMITED (a cooldown between mails, and an hourly budget).
// - "code": `verifyEmailCode` → INVALID_CODE {attemptsLeft}, CODE_EXPIRED, RATE_LIMITED.
// - "passkey": `passkeyOptions` + the browser + `verifyPasskey` → INVALID_PASSKEY,
//   CHALLENGE_EXPIRED, NO_AUTHENTICATOR / PASSKEY_CANCELLED (the browser's), RATE_LIMITED.
// - "totp": `verifyTotp` → INVALID_CODE (wrong or already used), RATE_LIMITED.
// - "backup": `verifyBackupCode` → INVALID_CODE, RATE_LIMITED.
// A RATE_LIMITED answer blocks only the step that got it, until its `retryAfterMs` has passed.

export const DEFAULT_RESEND_COOLDOWN_MS = 60_000;
export const CODE_LENGTH = 6;

/** "0:42", "1:05", "12:00": a wait shown to the user. */
export function formatWait(ms) {
  const seconds = Math.max(0, Math.ceil(ms / 1000));
  const minutes = Math.floor(seconds / 60);
  return `${minutes}:${String(seconds % 60).padStart(2, "0")}`;
}

/** The dialog's texts. Override any of them with `createVerificationDialog({labels})`. */
export const DEFAULT_LABELS = Object.freeze({
  title: "Confirm it's you",
  password: "Password",
  confirmPassword: "Confirm with password",
  or: "or",
  sendCode: "Email me a code",
  code: "6-digit code from the email",
  confirmCode: "Confirm with code",
  resend: "Send a new code",
  resendIn: (wait) => `Send a new code in ${wait}`,
  cancel: "Cancel",
  codeSent: (sentTo) => `We sent a 6-digit code to ${sentTo}.`,
  working: "Checking…",
  sending: "Sending…",
  enterPassword: "Enter your password.",
  enterCode: "Enter the 6 digits from the email.",
  invalidPassword: "That password is not right.",
  methodNotAvailable: "This account has no password. Confirm with an email code instead.",
  rateLimited: (wait) => `Too many attempts. Try again in ${wait}.`,
  tryAgainIn: (wait) => `Try again in ${wait}`,
  invalidCode: (attemptsLeft) =>
    `That code is not right. ${attemptsLeft} ${attemptsLeft === 1 ? "try" : "tries"} left.`,
  codeUsedUp: "That code no longer works. Send a new one.",
  codeExpired: "That code has expired. Send a new one.",
  passkey: "Use a passkey",
  totp: "Code from your authenticator app",
  confirmTotp: "Confirm with app code",
  useBackupCode: "Use a backup code",
  backupCode: "Backup code",
  confirmBackup: "Confirm with backup code",
  enterTotp: "Enter the 6 digits your app shows.",
  enterBackup: "Enter one of your backup codes.",
  noAuthenticator: "This browser cannot use passkeys. Confirm another way.",
  passkeyCancelled: "No passkey was used. Try again, or confirm another way.",
  invalidPasskey: "That passkey was not accepted.",
  challengeExpired: "That took too long. Try again.",
  invalidTotp: "That code is not right, or was used already. Wait for the next one.",
  invalidBackup: "That backup code is not right, or was used already.",
  notOffered: "That method is not available for this action.",
  fallback: "This action asks for a passkey or an authenticator app; you have neither, so confirm by email.",
  failed: (message) => (message ? `Something went wrong: ${message}` : "Something went wrong. Try again."),
});

/** A label that may be a string or a function of one argument. */
function text(label, argument) {
  return typeof label === "function" ? label(argument) : label;
}

/** The state when the dialog opens for `request` (`{methods}` is all it reads). */
export function initialState(request) {
  const methods = Array.isArray(request.methods) ? request.methods : [];
  return {
    passkey: methods.includes("passkey"),
    totp: methods.includes("totp"),
    backup: methods.includes("backup_code"),
    backupOpen: false,
    fallback: request.fallback === true,
    password: methods.includes("password"),
    email: methods.includes("email"),
    busy: null, // "password" | "send" | "code" while that call is in flight
    error: null, // {step, code, attemptsLeft?, retryAfterMs?, message?}
    codeSent: false,
    sentTo: null,
    resendAt: 0,
    blockedUntil: { password: 0, send: 0, code: 0, passkey: 0, totp: 0, backup: 0 },
    verified: false,
  };
}

/**
 * The next state after `event`:
 * - `{type: "start", step}`: a call for `step` ("password", "send", "code") went out.
 * - `{type: "result", step, result, now}`: the server answered `{ok, code, ...}`.
 * - `{type: "failure", step, error}`: the call threw (a lost connection).
 * - `{type: "invalid", step}`: the user submitted an empty password or not 6 digits.
 */
export function transition(state, event, options = {}) {
  const { step } = event;
  switch (event.type) {
    case "start":
      return { ...state, busy: step, error: null };
    case "openBackup":
      return { ...state, backupOpen: true, error: null };
    case "invalid": {
      const code = { password: "EMPTY_PASSWORD", totp: "INCOMPLETE_TOTP", backup: "EMPTY_BACKUP" }[step];
      return { ...state, error: { step, code: code ?? "INCOMPLETE_CODE" } };
    }
    case "failure": {
      const message = event.error && typeof event.error.message === "string" ? event.error.message : "";
      return { ...state, busy: null, error: { step, code: "FAILED", message } };
    }
    case "result":
      return settle({ ...state, busy: null }, step, event.result ?? {}, event.now, options);
    default:
      throw new TypeError(`unknown dialog event ${JSON.stringify(event.type)}`);
  }
}

function settle(state, step, result, now, options) {
  if (result.ok === true) {
    if (step !== "send") return { ...state, error: null, verified: true };
    const cooldown = options.resendCooldownMs ?? DEFAULT_RESEND_COOLDOWN_MS;
    return {
      ...state,
      error: null,
      codeSent: true,
      sentTo: typeof result.sentTo === "string" ? result.sentTo : null,
      resendAt: now + cooldown,
    };
  }
  const error = { step, code: typeof result.code === "string" ? result.code : "FAILED" };
  if (typeof result.message === "string") error.message = result.message;
  switch (error.code) {
    case "RATE_LIMITED": {
      const wait = Math.max(0, Number(result.retryAfterMs) || 0);
      error.retryAfterMs = wait;
      const blockedUntil = { ...state.blockedUntil, [step]: now + wait };
      const resendAt = step === "send" ? Math.max(state.resendAt, now + wait) : state.resendAt;
      return { ...state, error, blockedUntil, resendAt };
    }
    case "METHOD_NOT_AVAILABLE": {
      const method = { password: "password", passkey: "passkey", totp: "totp", backup: "backup" }[step];
      return method ? { ...state, error, [method]: false } : { ...state, error };
    }
    case "NO_AUTHENTICATOR":
      return { ...state, error, passkey: false };
    case "INVALID_CODE":
      error.attemptsLeft = Number.isInteger(result.attemptsLeft) ? result.attemptsLeft : null;
      return { ...state, error };
    default:
      return { ...state, error };
  }
}

/** The words for an error, in the user's terms. */
export function errorMessage(error, labels = DEFAULT_LABELS) {
  switch (error.code) {
    case "INVALID_PASSWORD":
      return text(labels.invalidPassword);
    case "METHOD_NOT_AVAILABLE":
      return text(error.step === "password" ? labels.methodNotAvailable : labels.notOffered);
    case "NO_AUTHENTICATOR":
      return text(labels.noAuthenticator);
    case "PASSKEY_CANCELLED":
      return text(labels.passkeyCancelled);
    case "INVALID_PASSKEY":
      return text(labels.invalidPasskey);
    case "CHALLENGE_EXPIRED":
      return text(labels.challengeExpired);
    case "INCOMPLETE_TOTP":
      return text(labels.enterTotp);
    case "EMPTY_BACKUP":
      return text(labels.enterBackup);
    case "RATE_LIMITED":
      return text(labels.rateLimited, formatWait(error.retryAfterMs ?? 0));
    case "INVALID_CODE":
      if (error.step === "totp") return text(labels.invalidTotp);
      if (error.step === "backup") return text(labels.invalidBackup);
      return error.attemptsLeft === 0 || error.attemptsLeft === null
        ? text(labels.codeUsedUp)
        : text(labels.invalidCode, error.attemptsLeft);
    case "CODE_EXPIRED":
      return text(labels.codeExpired);
    case "EMPTY_PASSWORD":
      return text(labels.enterPassword);
    case "INCOMPLETE_CODE":
      return text(labels.enterCode);
    default:
      return text(labels.failed, error.message ?? "");
  }
}

/**
 * What to paint at time `now`: `status` (the live region's text, `statusKind` "error",
 * "info", "busy" or null), each control's `disabled` / `invalid` / countdown text, and `nextTickAt`,
 * when the view changes next on its own (null: not until the next event).
 */
export function view(state, now, labels = DEFAULT_LABELS) {
  const blocked = (step) => Math.max(0, state.blockedUntil[step] - now);
  const waitText = (step) => (blocked(step) > 0 ? text(labels.tryAgainIn, formatWait(blocked(step))) : "");
  const resendWait = Math.max(0, state.resendAt - now);
  const deadlines = [...Object.values(state.blockedUntil), state.resendAt]
    .filter((at) => at > now)
    .map((at) => now + (((at - now - 1) % 1000) + 1)); // the next whole-second boundary
  const { error } = state;
  let status = "";
  let statusKind = null;
  if (state.busy !== null) {
    status = text(state.busy === "send" ? labels.sending : labels.working);
    statusKind = "busy";
  } else if (error) {
    status = errorMessage(error, labels);
    statusKind = "error";
  } else if (state.codeSent && state.sentTo) {
    status = text(labels.codeSent, state.sentTo);
    statusKind = "info";
  } else if (state.fallback) {
    status = text(labels.fallback);
    statusKind = "info";
  }
  const codeUsedUp = (error?.code === "INVALID_CODE" && !error.attemptsLeft) || error?.code === "CODE_EXPIRED";
  return {
    status,
    statusKind,
    busy: state.busy !== null,
    passkey: {
      shown: state.passkey,
      disabled: state.busy !== null || blocked("passkey") > 0,
      wait: waitText("passkey"),
    },
    totp: {
      shown: state.totp,
      disabled: state.busy !== null || blocked("totp") > 0,
      invalid: error?.step === "totp",
      wait: waitText("totp"),
    },
    backupLink: { shown: state.backup && !state.backupOpen },
    backup: {
      shown: state.backup && state.backupOpen,
      disabled: state.busy !== null || blocked("backup") > 0,
      invalid: error?.step === "backup",
      wait: waitText("backup"),
    },
    password: {
      shown: state.password,
      disabled: state.busy !== null || blocked("password") > 0,
      invalid: error?.step === "password",
      wait: waitText("password"),
    },
    sendCode: {
      shown: state.email && !state.codeSent,
      disabled: state.busy !== null || blocked("send") > 0,
      wait: waitText("send"),
    },
    code: {
      shown: state.email && state.codeSent,
      disabled: state.busy !== null || blocked("code") > 0 || codeUsedUp,
      invalid: error?.step === "code",
      wait: waitText("code"),
    },
    resend: {
      shown: state.email && state.codeSent,
      disabled: state.busy !== null || resendWait > 0,
      label: resendWait > 0 ? text(labels.resendIn, formatWait(resendWait)) : text(labels.resend),
    },
    nextTickAt: deadlines.length ? Math.min(...deadlines) : null,
  };
}

/** Digits only, at most six: what the code field keeps of typed, pasted or autofilled text. */
export function normalizeCode(value) {
  return String(value ?? "")
    .replace(/\D/g, "")
    .slice(0, CODE_LENGTH);
}
