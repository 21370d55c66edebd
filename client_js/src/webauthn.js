// Passkeys in the browser: the server's WebAuthn options (JSON, base64url) turned into what
// `navigator.credentials` takes, and its answer back into JSON for the server. No library:
// the browser does the cryptography, the server (py_webauthn) checks it.

const FUNCTION_NAME = Symbol.for("functionName");
const reference = (name) => ({ [FUNCTION_NAME]: name });
const REGISTRATION_OPTIONS = reference("sensitive:passkeyRegistrationOptions");
const REGISTER = reference("sensitive:registerPasskey");

/** base64url text → ArrayBuffer. */
export function fromBase64url(text) {
  const base64 = String(text).replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

/** ArrayBuffer (or a view) → base64url text without padding. */
export function toBase64url(buffer) {
  const bytes = buffer instanceof ArrayBuffer ? new Uint8Array(buffer) : new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const descriptors = (list) => (list ?? []).map((c) => ({ ...c, id: fromBase64url(c.id) }));

/** The server's assertion options (JSON) as `navigator.credentials.get` takes them. */
export function requestOptions(json) {
  return { ...json, challenge: fromBase64url(json.challenge), allowCredentials: descriptors(json.allowCredentials) };
}

/** The server's creation options (JSON) as `navigator.credentials.create` takes them. */
export function creationOptions(json) {
  return {
    ...json,
    challenge: fromBase64url(json.challenge),
    user: { ...json.user, id: fromBase64url(json.user.id) },
    excludeCredentials: descriptors(json.excludeCredentials),
  };
}

/** A `PublicKeyCredential` (from create or get) as the JSON the server takes. */
export function credentialJSON(credential) {
  const response = credential.response;
  const json = {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    response: { clientDataJSON: toBase64url(response.clientDataJSON) },
    clientExtensionResults: credential.getClientExtensionResults?.() ?? {},
    authenticatorAttachment: credential.authenticatorAttachment ?? undefined,
  };
  if (response.attestationObject) {
    json.response.attestationObject = toBase64url(response.attestationObject);
    json.response.transports = response.getTransports?.() ?? [];
  } else {
    json.response.authenticatorData = toBase64url(response.authenticatorData);
    json.response.signature = toBase64url(response.signature);
    if (response.userHandle) json.response.userHandle = toBase64url(response.userHandle);
  }
  return json;
}

function credentials(nav) {
  const store = nav?.credentials;
  return store && typeof store.get === "function" && typeof globalThis.PublicKeyCredential !== "undefined" ? store : null;
}

/**
 * Ask the browser for a credential: `{ok: true, credential}` (as JSON), or `{ok: false, code}`
 * with `NO_AUTHENTICATOR` (this browser has no WebAuthn) or `PASSKEY_CANCELLED` (the user
 * declined, or no authenticator had a matching passkey).
 */
export async function askAuthenticator(kind, publicKey, nav = globalThis.navigator) {
  const store = credentials(nav);
  if (!store) return { ok: false, code: "NO_AUTHENTICATOR" };
  try {
    const credential = await store[kind]({ publicKey });
    if (!credential) return { ok: false, code: "PASSKEY_CANCELLED" };
    return { ok: true, credential: credentialJSON(credential) };
  } catch (error) {
    const name = error?.name;
    if (name === "NotSupportedError") return { ok: false, code: "NO_AUTHENTICATOR" };
    if (name === "NotAllowedError" || name === "AbortError" || name === "InvalidStateError") {
      return { ok: false, code: "PASSKEY_CANCELLED" };
    }
    throw error;
  }
}

/**
 * Register a passkey for the signed-in user through `client` (a Convex client, wrapped by
 * `withSensitiveActions` so that the step-up it needs is asked for): `{ok: true, id,
 * backupCodes}` or `{ok: false, code}`.
 */
export async function registerPasskey(client, { name, navigator: nav } = {}) {
  const started = await client.mutation(REGISTRATION_OPTIONS, {});
  if (!started.ok) return started;
  const asked = await askAuthenticator("create", creationOptions(started.options), nav);
  if (!asked.ok) return asked;
  return client.mutation(REGISTER, { credential: asked.credential, ...(name ? { name } : {}) });
}
