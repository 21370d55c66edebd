// `withSensitiveActions(client, {onVerificationRequired})`: a Convex client whose mutations
// step up instead of failing.
//
// A protected mutation that the server refuses with `SENSITIVE_VERIFICATION_REQUIRED` is not an
// error for the caller. The wrapper hands the refusal to the app's handler as a *request*: what
// the server wants (action, level, resource, its own description, the methods this user may
// use) plus three functions that run the server's `sensitive:*` mutations through the same
// client, bound to that action and resource. The handler resolves `true` once the user has
// verified, and the wrapper retries the original call once, with the same arguments; or `false`,
// and the call rejects with `VerificationCancelledError`.
//
// Two rules keep this sane when several protected calls are in flight:
//
// - One dialog at a time, per underlying client. A call refused while a dialog is open waits
//   for its turn (a queue, `DialogQueue`). When its turn comes after another dialog finished,
//   it first simply retries: the grant just minted may cover it (a level-1 to 3 grant for the
//   same action and resource does). Only if the server still refuses does it ask.
// - Bounded rounds. A level-4 grant is spent by the call that uses it, so a retry can be
//   refused again when something else spent the grant between the verification and the retry.
//   That is a new round with a new dialog (the user sees the server's reason again), at most
//   `maxRounds` times; after that the caller gets the server's refusal itself.
//
// The retry runs while the call still holds its turn, so the grant it was asked for goes to it
// and not to a call queued behind it.
//
// Everything but `mutation` passes through to the client untouched (a Proxy): queries,
// subscriptions, `setAuth`, `close`, `instanceof`. Only calls made through the wrapper are
// retried.

import { VerificationCancelledError, verificationRequired } from "./errors.js";
import { askAuthenticator, requestOptions } from "./webauthn.js";

const DEFAULT_MAX_ROUNDS = 3;

// Convex function references are objects keyed by this registered symbol; making them here
// keeps `convex` out of this library's runtime imports.
const FUNCTION_NAME = Symbol.for("functionName");
const reference = (name) => ({ [FUNCTION_NAME]: name });
const VERIFY_PASSWORD = reference("sensitive:verifyPassword");
const SEND_EMAIL_CODE = reference("sensitive:sendEmailCode");
const VERIFY_EMAIL_CODE = reference("sensitive:verifyEmailCode");
const VERIFY_TOTP = reference("sensitive:verifyTotp");
const VERIFY_BACKUP_CODE = reference("sensitive:verifyBackupCode");
const PASSKEY_OPTIONS = reference("sensitive:passkeyOptions");
const VERIFY_PASSKEY = reference("sensitive:verifyPasskey");

/** Whose turn it is to show a dialog, for one underlying client. */
class DialogQueue {
  constructor() {
    this.tail = Promise.resolve();
    // Dialogs finished so far: a call that sees this move while it waited retries first.
    this.finished = 0;
  }

  /** Run `task` once every task queued before it has settled. */
  run(task) {
    const turn = this.tail.then(task);
    this.tail = turn.then(
      () => undefined,
      () => undefined,
    );
    return turn;
  }
}

// A wrapper answers this with the client it wraps: wrapping a wrapper wraps the client itself
// (one queue, one handler per call), e.g. useSensitiveMutation under a wrapped provider.
const WRAPPED = Symbol("stepup.wrappedClient");

const queues = new WeakMap();

function queueOf(client) {
  let queue = queues.get(client);
  if (queue === undefined) {
    queue = new DialogQueue();
    queues.set(client, queue);
  }
  return queue;
}

/**
 * Run one of the `sensitive:*` mutations and answer `{ok: true, ...}` or `{ok: false, code,
 * ...}`. The server answers a wrong password or code as data already; a refusal it throws
 * (no session, bad arguments) becomes the same shape, with its data. Only errors without
 * data (a lost connection, a closed client) reject.
 */
async function answer(pending) {
  try {
    return await pending;
  } catch (error) {
    const data = error !== null && typeof error === "object" ? error.data : undefined;
    if (data !== null && typeof data === "object" && typeof data.code === "string") {
      return { ...data, ok: false };
    }
    throw error;
  }
}

/** The request a handler gets: the server's refusal plus the means to satisfy it. */
export function verificationRequest(client, data, error, round = 1) {
  const target = { action: data.action };
  if (data.resource !== null && data.resource !== undefined) target.resource = data.resource;
  const run = (ref, args) => answer(client.mutation(ref, { ...target, ...args }));
  return Object.freeze({
    action: data.action,
    level: data.level,
    resource: data.resource ?? null,
    description: data.description,
    methods: Object.freeze([...(Array.isArray(data.methods) ? data.methods : [])]),
    fallback: data.fallback === true,
    round,
    data,
    error,
    verifyPassword: (password) => run(VERIFY_PASSWORD, { password: String(password) }),
    sendEmailCode: () => run(SEND_EMAIL_CODE, {}),
    verifyEmailCode: (code) => run(VERIFY_EMAIL_CODE, { code: String(code) }),
    verifyTotp: (code) => run(VERIFY_TOTP, { code: String(code) }),
    verifyBackupCode: (code) => run(VERIFY_BACKUP_CODE, { code: String(code) }),
    // The server's options for this session, action and resource; the browser's
    // authenticator signs its challenge; the server checks the assertion.
    async verifyPasskey(nav) {
      const options = await run(PASSKEY_OPTIONS, {});
      if (!options.ok) return options;
      const asked = await askAuthenticator("get", requestOptions(options.options), nav);
      if (!asked.ok) return asked;
      return run(VERIFY_PASSKEY, { credential: asked.credential });
    },
  });
}

/**
 * Wrap a `ConvexClient`, `ConvexReactClient` or `ConvexHttpClient` so that a mutation refused
 * with `SENSITIVE_VERIFICATION_REQUIRED` asks `onVerificationRequired(request)` and, once it
 * resolves `true`, is retried; `false` rejects the call with `VerificationCancelledError`.
 * Everything else passes through to `client` unchanged.
 *
 * @throws {TypeError} when `client` has no `mutation` method or the handler is missing.
 */
export function withSensitiveActions(wrapped, options) {
  const client = wrapped?.[WRAPPED] ?? wrapped;
  if (client === null || typeof client !== "object" || typeof client.mutation !== "function") {
    throw new TypeError(
      "withSensitiveActions wraps a Convex client (ConvexClient, ConvexReactClient or ConvexHttpClient)",
    );
  }
  const handler = options?.onVerificationRequired;
  if (typeof handler !== "function") {
    throw new TypeError("withSensitiveActions needs onVerificationRequired: async (request) => boolean");
  }
  const maxRounds = options.maxRounds ?? DEFAULT_MAX_ROUNDS;
  if (!Number.isInteger(maxRounds) || maxRounds < 1) {
    throw new TypeError(`maxRounds must be a positive integer, not ${maxRounds}`);
  }
  const queue = queueOf(client);

  async function mutation(ref, ...rest) {
    const call = () => client.mutation(ref, ...rest);
    const seen = queue.finished;
    let refusal;
    try {
      return await call();
    } catch (error) {
      if (!verificationRequired(error)) throw error;
      refusal = error;
    }
    return queue.run(async () => {
      if (queue.finished !== seen) {
        try {
          return await call();
        } catch (error) {
          if (!verificationRequired(error)) throw error;
          refusal = error;
        }
      }
      for (let round = 1; ; round++) {
        const data = verificationRequired(refusal);
        let verified;
        try {
          verified = await handler(verificationRequest(client, data, refusal, round));
        } finally {
          queue.finished++;
        }
        if (verified !== true) throw new VerificationCancelledError(data, refusal);
        try {
          return await call();
        } catch (error) {
          if (!verificationRequired(error) || round >= maxRounds) throw error;
          refusal = error;
        }
      }
    });
  }

  const bound = new Map();
  return new Proxy(client, {
    get(target, property) {
      if (property === "mutation") return mutation;
      if (property === WRAPPED) return target;
      const value = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      // Bind so that methods see the client itself (its private state), and keep the bound
      // function so that `wrapped.query === wrapped.query`, as on the client.
      let entry = bound.get(property);
      if (entry === undefined || entry.value !== value) {
        entry = { value, bound: value.bind(target) };
        bound.set(property, entry);
      }
      return entry.bound;
    },
  });
}
