// Types of @stepup/client (hand-written; the source is plain ES modules).

/** A way to verify that the server offers: the account password or a code sent by email. */
export type VerificationMethod = "passkey" | "totp" | "password" | "backup_code" | "email";

/** The server's refusal of a protected call: the ConvexError's `data`. */
export interface VerificationRequiredData {
  code: "SENSITIVE_VERIFICATION_REQUIRED";
  message?: string;
  /** The protected action, e.g. "org.delete". */
  action: string;
  /** 1-2: a fresh session or a grant; 3: a grant; 4: a grant that the call spends. */
  level: 1 | 2 | 3 | 4;
  /** The resource the action is about (an org id), or null. */
  resource: string | null;
  /** What the user is confirming, in the server's words: show it as is. */
  description: string;
  /** The methods this user can use for this level. */
  methods: VerificationMethod[];
}

/** A failed verification step, with the server's data (it is answered, not thrown). */
export interface VerificationFailure {
  ok: false;
  code:
    | "INVALID_PASSWORD"
    | "METHOD_NOT_AVAILABLE"
    | "RATE_LIMITED"
    | "INVALID_CODE"
    | "CODE_EXPIRED"
    | "UNAUTHENTICATED"
    | "INVALID_ARGUMENT"
    | (string & {});
  /** With RATE_LIMITED: how long to wait before the next try. */
  retryAfterMs?: number;
  /** With INVALID_CODE: wrong tries left before the code dies (0: send a new one). */
  attemptsLeft?: number;
  message?: string;
  [key: string]: unknown;
}

/** A passed verification: a grant for this session, action and resource, until `expiresAt` (ms). */
export interface VerificationPassed {
  ok: true;
  expiresAt: number;
}

/** A mailed code: `sentTo` is the masked address, the code works until `expiresAt` (ms). */
export interface EmailCodeSent {
  ok: true;
  sentTo: string;
  expiresAt: number;
}

/** What a handler gets when a protected call needs verification. */
export interface VerificationRequest {
  readonly action: string;
  readonly level: 1 | 2 | 3 | 4;
  readonly resource: string | null;
  readonly description: string;
  readonly methods: readonly VerificationMethod[];
  /** 1 for the first dialog of a call; more when a retry was refused again. */
  readonly round: number;
  /** The refusal's data, as the server sent it. */
  readonly data: VerificationRequiredData;
  /** The refusal itself (a ConvexError). */
  readonly error: Error;
  /** Run `sensitive:verifyPassword` for this action and resource. Rejects only on a lost connection. */
  verifyPassword(password: string): Promise<VerificationPassed | VerificationFailure>;
  /** Run `sensitive:sendEmailCode` for this action and resource. */
  sendEmailCode(): Promise<EmailCodeSent | VerificationFailure>;
  /** Run `sensitive:verifyEmailCode` for this action and resource. */
  verifyEmailCode(code: string): Promise<VerificationPassed | VerificationFailure>;
  /** Run `sensitive:verifyTotp` with a code from the user's authenticator app. */
  verifyTotp(code: string): Promise<VerificationPassed | VerificationFailure>;
  /** Run `sensitive:verifyBackupCode` with one of the user's backup codes (spent on success). */
  verifyBackupCode(code: string): Promise<VerificationPassed | VerificationFailure>;
  /**
   * Get the server's passkey options for this action and resource, ask the browser's
   * authenticator (`navigator.credentials.get`), and run `sensitive:verifyPasskey`. Answers
   * `{ok: false, code: "NO_AUTHENTICATOR"}` when the browser has no WebAuthn and
   * `"PASSKEY_CANCELLED"` when the user declined.
   */
  verifyPasskey(navigator?: Navigator): Promise<VerificationPassed | VerificationFailure>;
  /** True when the action demands a passkey or an app that this user does not have. */
  readonly fallback: boolean;
}

/** Resolve `true` once a verification passed (the call is retried), `false` to cancel. */
export type VerificationHandler = (request: VerificationRequest) => boolean | Promise<boolean>;

export interface SensitiveActionsOptions {
  onVerificationRequired: VerificationHandler;
  /** Dialogs per call before the server's refusal is passed on (default 3). */
  maxRounds?: number;
}

/** Any Convex client: `ConvexClient`, `ConvexReactClient`, `ConvexHttpClient`. */
export interface MutationClient {
  mutation(mutation: any, ...args: any[]): Promise<any>;
}

/**
 * Wrap a Convex client so that a mutation refused with SENSITIVE_VERIFICATION_REQUIRED asks
 * `onVerificationRequired` and is retried once it resolves `true`. Everything else passes
 * through. The result has the client's own type.
 */
export declare function withSensitiveActions<Client extends MutationClient>(
  client: Client,
  options: SensitiveActionsOptions,
): Client;

/** A protected call was not retried because the handler resolved `false`. */
export declare class VerificationCancelledError extends Error {
  constructor(data: VerificationRequiredData, cause?: unknown);
  readonly name: "VerificationCancelledError";
  readonly code: "VERIFICATION_CANCELLED";
  /** The server's refusal. */
  readonly data: VerificationRequiredData;
  /** The refusal (a ConvexError). */
  readonly cause: unknown;
}

export declare const SENSITIVE_VERIFICATION_REQUIRED: "SENSITIVE_VERIFICATION_REQUIRED";

/** The refusal's data when `error` is the server asking for verification, else null. */
export declare function verificationRequired(error: unknown): VerificationRequiredData | null;

type Label = string;
type LabelOf<Argument> = string | ((argument: Argument) => string);

/** Every text the built-in dialog shows; a function gets the value shown in it. */
export interface VerificationDialogLabels {
  title: Label;
  password: Label;
  confirmPassword: Label;
  or: Label;
  sendCode: Label;
  code: Label;
  confirmCode: Label;
  resend: Label;
  /** Gets the wait, as "0:42". */
  resendIn: LabelOf<string>;
  cancel: Label;
  /** Gets the masked address. */
  codeSent: LabelOf<string>;
  working: Label;
  sending: Label;
  enterPassword: Label;
  enterCode: Label;
  invalidPassword: Label;
  methodNotAvailable: Label;
  /** Gets the wait, as "0:42". */
  rateLimited: LabelOf<string>;
  /** Gets the wait, as "0:42". */
  tryAgainIn: LabelOf<string>;
  /** Gets the tries left. */
  invalidCode: LabelOf<number>;
  codeUsedUp: Label;
  codeExpired: Label;
  /** Gets the error's message, or "". */
  failed: LabelOf<string>;
}

export declare const DEFAULT_LABELS: Readonly<VerificationDialogLabels>;

/** Time for the dialog's countdowns; tests pass a fake one. */
export interface DialogClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface VerificationDialogOptions {
  /** The document to show the dialog in (default: the global one). */
  document?: Document;
  /** Where to append the dialog (default: `document.body`). */
  container?: Element;
  labels?: Partial<VerificationDialogLabels>;
  /** Added to the dialog's classes. */
  className?: string;
  /** The wait before "send a new code" is offered after a mail (default 60 000, the server's cooldown). */
  resendCooldownMs?: number;
  clock?: DialogClock;
}

/** A handler that asks the user in a native `<dialog>`; themeable with `--sv-*` custom properties. */
/**
 * Register a passkey for the signed-in user: the server's creation options, the browser's
 * authenticator, the server's check. Use a client wrapped by `withSensitiveActions`: adding a
 * passkey is itself a protected action.
 */
export declare function registerPasskey(
  client: MutationClient,
  options?: { name?: string; navigator?: Navigator },
): Promise<{ ok: true; id: string; backupCodes: string[] | null } | VerificationFailure>;

export declare function createVerificationDialog(options?: VerificationDialogOptions): VerificationHandler;
