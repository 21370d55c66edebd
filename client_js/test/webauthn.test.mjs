// The browser side of passkeys without a browser: the JSON the server sends and takes, and
// what a request answers when the browser has no authenticator or the user declines. The
// real ceremony runs in Chromium with a virtual authenticator (factors-e2e.test.mjs).

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { verificationRequest } from "../src/sensitive-actions.js";
import { askAuthenticator, credentialJSON, fromBase64url, requestOptions, toBase64url } from "../src/webauthn.js";

const refusal = { code: "SENSITIVE_VERIFICATION_REQUIRED", action: "org.delete", level: 4, resource: "o1", methods: ["passkey"] };

function fakeClient(answers) {
  const calls = [];
  return {
    calls,
    async mutation(ref, args) {
      const name = ref[Symbol.for("functionName")];
      calls.push([name, args]);
      return answers[name];
    },
  };
}

describe("webauthn", { timeout: 5_000 }, () => {
  test("base64url round trips without padding", () => {
    const bytes = new Uint8Array([0, 1, 250, 251, 252, 253, 254, 255]);
    const text = toBase64url(bytes);
    assert.doesNotMatch(text, /[+/=]/);
    assert.deepEqual(new Uint8Array(fromBase64url(text)), bytes);
  });

  test("request options become buffers; an assertion becomes JSON", () => {
    const options = requestOptions({ challenge: "AAEC", rpId: "x", allowCredentials: [{ type: "public-key", id: "AwQ" }] });
    assert.deepEqual(new Uint8Array(options.challenge), new Uint8Array([0, 1, 2]));
    assert.deepEqual(new Uint8Array(options.allowCredentials[0].id), new Uint8Array([3, 4]));
    const json = credentialJSON({
      id: "AwQ",
      rawId: new Uint8Array([3, 4]).buffer,
      type: "public-key",
      response: {
        clientDataJSON: new Uint8Array([1]).buffer,
        authenticatorData: new Uint8Array([2]).buffer,
        signature: new Uint8Array([3]).buffer,
        userHandle: null,
      },
      getClientExtensionResults: () => ({}),
    });
    assert.deepEqual(json.response, { clientDataJSON: "AQ", authenticatorData: "Ag", signature: "Aw" });
  });

  test("no WebAuthn in the browser: NO_AUTHENTICATOR, and the server is not asked to verify", async () => {
    assert.deepEqual(await askAuthenticator("get", {}, {}), { ok: false, code: "NO_AUTHENTICATOR" });
    const client = fakeClient({ "sensitive:passkeyOptions": { ok: true, options: { challenge: "AA", rpId: "x" } } });
    const request = verificationRequest(client, refusal, new Error("refused"));
    assert.deepEqual(await request.verifyPasskey({}), { ok: false, code: "NO_AUTHENTICATOR" });
    assert.deepEqual(
      client.calls.map(([name]) => name),
      ["sensitive:passkeyOptions"],
    );
    assert.deepEqual(client.calls[0][1], { action: "org.delete", resource: "o1" });
  });

  test("a declined prompt is PASSKEY_CANCELLED; an answer goes to verifyPasskey", async () => {
    globalThis.PublicKeyCredential ??= class {};
    const declined = { credentials: { get: async () => Promise.reject(Object.assign(new Error("no"), { name: "NotAllowedError" })) } };
    assert.deepEqual(await askAuthenticator("get", {}, declined), { ok: false, code: "PASSKEY_CANCELLED" });
    const signed = {
      credentials: {
        get: async () => ({
          id: "AwQ",
          rawId: new Uint8Array([3, 4]).buffer,
          type: "public-key",
          response: { clientDataJSON: new Uint8Array([1]).buffer, authenticatorData: new Uint8Array([2]).buffer, signature: new Uint8Array([3]).buffer },
        }),
      },
    };
    const client = fakeClient({
      "sensitive:passkeyOptions": { ok: true, options: { challenge: "AA", rpId: "x" } },
      "sensitive:verifyPasskey": { ok: true, expiresAt: 1 },
    });
    const request = verificationRequest(client, refusal, new Error("refused"));
    assert.deepEqual(await request.verifyPasskey(signed), { ok: true, expiresAt: 1 });
    assert.equal(client.calls[1][0], "sensitive:verifyPasskey");
    assert.equal(client.calls[1][1].credential.id, "AwQ");
  });
});
