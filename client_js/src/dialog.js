// `createVerificationDialog(options)`: a ready-made handler that asks the user in a native
// `<dialog>`, with no framework. The logic (what to show, which message, countdowns) is the pure
// state machine in dialog-state.js; this file only builds elements, paints views and moves
// focus.
//
// Accessibility: the dialog is labelled by its title and described by the server's own
// description; every field has a <label>; errors and notices go to one `aria-live` region, and
// the field at fault gets `aria-invalid`. Buttons that cannot act right now are
// `aria-disabled` rather than `disabled`, so the focus never falls out of the dialog when a
// request starts. Focus goes to the first field on open and back to the element that had it
// on close. Escape and the Cancel button cancel.

import { CODE_LENGTH, DEFAULT_LABELS, initialState, normalizeCode, transition, view } from "./dialog-state.js";
import { STYLES } from "./dialog-styles.js";

const SYSTEM_CLOCK = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle),
};

let opened = 0;

/**
 * A handler for `withSensitiveActions` that shows a `<dialog>` offering the methods the server
 * named, and resolves `true` once one succeeded or `false` when the user cancels.
 *
 * Options: `document` (default: the global one), `container` (default: `document.body`),
 * `labels` (texts; see DEFAULT_LABELS), `className` (added to the dialog),
 * `resendCooldownMs` (default 60 s, the server's cooldown between code mails), and `clock`
 * (`{now, setTimeout, clearTimeout}`, for tests).
 */
export function createVerificationDialog(options = {}) {
  const labels = { ...DEFAULT_LABELS, ...options.labels };
  return function showVerificationDialog(request) {
    const doc = options.document ?? globalThis.document;
    if (!doc) {
      return Promise.reject(
        new TypeError("createVerificationDialog needs a document: pass {document} outside a browser"),
      );
    }
    return new Promise((resolve) => open(doc, request, labels, options, resolve));
  };
}

function element(doc, tag, attributes = {}, ...children) {
  const node = doc.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

function setDisabled(button, disabled) {
  button.setAttribute("aria-disabled", String(disabled));
}

function setText(node, value) {
  if (node.textContent !== value) node.textContent = value;
}

function open(doc, request, labels, options, resolve) {
  const clock = options.clock ?? SYSTEM_CLOCK;
  const stateOptions = { resendCooldownMs: options.resendCooldownMs };
  const id = `sv-${++opened}`;
  const previous = doc.activeElement;
  let state = initialState(request);
  let done = false;
  let timer = null;

  const make = (tag, attributes, ...children) => element(doc, tag, attributes, ...children);
  const label = (value) => (typeof value === "function" ? value() : value);

  const title = make("h2", { class: "sv-title", id: `${id}-title` }, label(labels.title));
  const description = make(
    "p",
    { class: "sv-description", id: `${id}-description` },
    String(request.description ?? ""),
  );
  const status = make("p", {
    class: "sv-status",
    id: `${id}-status`,
    role: "status",
    "aria-live": "polite",
    "aria-atomic": "true",
  });

  const passwordInput = make("input", {
    class: "sv-input",
    id: `${id}-password`,
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: "",
    "aria-describedby": `${id}-status ${id}-password-wait`,
  });
  const passwordWait = make("p", { class: "sv-wait", id: `${id}-password-wait`, hidden: "" });
  const passwordButton = make(
    "button",
    { class: "sv-button sv-primary", type: "submit" },
    label(labels.confirmPassword),
  );
  const passwordForm = make(
    "form",
    { class: "sv-section sv-password", novalidate: "" },
    make("label", { class: "sv-label", for: passwordInput.id }, label(labels.password)),
    passwordInput,
    passwordWait,
    passwordButton,
  );

  const or = make("p", { class: "sv-or" }, label(labels.or));
  const orStrong = make("p", { class: "sv-or" }, label(labels.or));

  // Passkey, authenticator app, backup code: shown only when the server offered them.
  const passkeyButton = make(
    "button",
    { class: "sv-button sv-primary sv-passkey", type: "button", "aria-describedby": `${id}-passkey-wait` },
    label(labels.passkey),
  );
  const passkeyWait = make("p", { class: "sv-wait", id: `${id}-passkey-wait`, hidden: "" });
  const passkeySection = make("div", { class: "sv-section sv-passkey-section" }, passkeyButton, passkeyWait);
  const oneTimeField = (name, extra) =>
    make("input", {
      class: `sv-input sv-otp sv-${name}-input${name === "totp" ? " sv-otp-num" : ""}`,
      id: `${id}-${name}`,
      name,
      type: "text",
      required: "",
      spellcheck: "false",
      "aria-describedby": `${id}-status ${id}-${name}-wait`,
      ...extra,
    });
  const totpInput = oneTimeField("totp", {
    inputmode: "numeric",
    autocomplete: "one-time-code",
    pattern: `[0-9]{${CODE_LENGTH}}`,
  });
  const totpWait = make("p", { class: "sv-wait", id: `${id}-totp-wait`, hidden: "" });
  const totpButton = make("button", { class: "sv-button sv-primary", type: "submit" }, label(labels.confirmTotp));
  const totpForm = make(
    "form",
    { class: "sv-section sv-totp", novalidate: "" },
    make("label", { class: "sv-label", for: totpInput.id }, label(labels.totp)),
    totpInput,
    totpWait,
    totpButton,
  );
  const backupLink = make("button", { class: "sv-link sv-backup-link", type: "button" }, label(labels.useBackupCode));
  const backupInput = oneTimeField("backup", { autocomplete: "off", autocapitalize: "none" });
  const backupWait = make("p", { class: "sv-wait", id: `${id}-backup-wait`, hidden: "" });
  const backupButton = make("button", { class: "sv-button", type: "submit" }, label(labels.confirmBackup));
  const backupForm = make(
    "form",
    { class: "sv-section sv-backup", novalidate: "" },
    make("label", { class: "sv-label", for: backupInput.id }, label(labels.backupCode)),
    backupInput,
    backupWait,
    backupButton,
  );

  const sendButton = make(
    "button",
    { class: "sv-button sv-send", type: "button", "aria-describedby": `${id}-send-wait` },
    label(labels.sendCode),
  );
  const sendWait = make("p", { class: "sv-wait", id: `${id}-send-wait`, hidden: "" });
  const codeInput = make("input", {
    class: "sv-input sv-code",
    id: `${id}-code`,
    name: "code",
    type: "text",
    inputmode: "numeric",
    autocomplete: "one-time-code",
    pattern: `[0-9]{${CODE_LENGTH}}`,
    required: "",
    spellcheck: "false",
    "aria-describedby": `${id}-status ${id}-code-wait`,
  });
  const codeWait = make("p", { class: "sv-wait", id: `${id}-code-wait`, hidden: "" });
  const codeButton = make("button", { class: "sv-button sv-primary", type: "submit" }, label(labels.confirmCode));
  const resendButton = make("button", { class: "sv-button sv-resend", type: "button" });
  const codeForm = make(
    "form",
    { class: "sv-section sv-email-code", novalidate: "" },
    make("label", { class: "sv-label", for: codeInput.id }, label(labels.code)),
    codeInput,
    codeWait,
    codeButton,
    resendButton,
  );
  const emailSection = make("div", { class: "sv-section sv-email" }, sendButton, sendWait, codeForm);

  const cancelButton = make("button", { class: "sv-button sv-cancel", type: "button" }, label(labels.cancel));
  const classes = ["sv-dialog", options.className].filter(Boolean).join(" ");
  const dialog = make(
    "dialog",
    {
      class: classes,
      "aria-modal": "true",
      "aria-labelledby": title.id,
      "aria-describedby": description.id,
    },
    make("style", {}, STYLES),
    title,
    description,
    status,
    passkeySection,
    totpForm,
    orStrong,
    passwordForm,
    or,
    emailSection,
    backupLink,
    backupForm,
    make("div", { class: "sv-actions" }, cancelButton),
  );

  function paint() {
    if (done) return;
    const now = clock.now();
    const v = view(state, now, labels);
    setText(status, v.status);
    status.setAttribute("data-kind", v.statusKind ?? "");
    dialog.setAttribute("aria-busy", String(v.busy));

    passkeySection.hidden = !v.passkey.shown;
    setDisabled(passkeyButton, v.passkey.disabled);
    setText(passkeyWait, v.passkey.wait);
    passkeyWait.hidden = !v.passkey.wait;
    totpForm.hidden = !v.totp.shown;
    totpInput.readOnly = v.totp.disabled;
    totpInput.setAttribute("aria-invalid", String(v.totp.invalid));
    setDisabled(totpButton, v.totp.disabled);
    setText(totpWait, v.totp.wait);
    totpWait.hidden = !v.totp.wait;
    backupLink.hidden = !v.backupLink.shown;
    backupForm.hidden = !v.backup.shown;
    backupInput.readOnly = v.backup.disabled;
    backupInput.setAttribute("aria-invalid", String(v.backup.invalid));
    setDisabled(backupButton, v.backup.disabled);
    setText(backupWait, v.backup.wait);
    backupWait.hidden = !v.backup.wait;

    const weaker = v.password.shown || v.sendCode.shown || v.code.shown;
    orStrong.hidden = !((v.passkey.shown || v.totp.shown) && weaker);

    passwordForm.hidden = !v.password.shown;
    emailSection.hidden = !v.sendCode.shown && !v.code.shown;
    or.hidden = !(v.password.shown && (v.sendCode.shown || v.code.shown));
    sendButton.hidden = !v.sendCode.shown;
    codeForm.hidden = !v.code.shown;

    passwordInput.readOnly = v.password.disabled;
    passwordInput.setAttribute("aria-invalid", String(v.password.invalid));
    setDisabled(passwordButton, v.password.disabled);
    setText(passwordWait, v.password.wait);
    passwordWait.hidden = !v.password.wait;

    setDisabled(sendButton, v.sendCode.disabled);
    setText(sendWait, v.sendCode.wait);
    sendWait.hidden = !v.sendCode.wait || !v.sendCode.shown;

    codeInput.readOnly = v.code.disabled;
    codeInput.setAttribute("aria-invalid", String(v.code.invalid));
    setDisabled(codeButton, v.code.disabled);
    setText(codeWait, v.code.wait);
    codeWait.hidden = !v.code.wait;
    setDisabled(resendButton, v.resend.disabled);
    setText(resendButton, v.resend.label);

    if (timer !== null) clock.clearTimeout(timer);
    timer = v.nextTickAt === null ? null : clock.setTimeout(tick, v.nextTickAt - now);
  }

  function tick() {
    timer = null;
    paint();
  }

  function dispatch(event) {
    state = transition(state, event, stateOptions);
    paint();
  }

  function focus(node) {
    if (!done && !node.hidden && typeof node.focus === "function") node.focus();
  }

  /** After a failed step, put the focus where the user's next move is. */
  function refocus(step) {
    const v = view(state, clock.now(), labels);
    const own = { passkey: passkeyButton, totp: totpInput, backup: backupInput }[step];
    if (own) {
      const fallback = [passkeyButton, totpInput, passwordInput, sendButton].find((n) => !n.hidden && n.offsetParent !== null);
      focus(own.closest("[hidden]") ? (fallback ?? cancelButton) : own);
      own.select?.();
    } else if (step === "password") {
      if (v.password.shown) {
        focus(passwordInput);
        passwordInput.select?.();
      } else if (v.sendCode.shown) {
        focus(sendButton);
      }
    } else if (v.code.shown && !v.code.disabled) {
      focus(codeInput);
      codeInput.select?.();
    } else if (v.code.shown) {
      focus(resendButton);
    } else if (v.sendCode.shown) {
      focus(sendButton);
    }
  }

  async function run(step, call) {
    dispatch({ type: "start", step });
    let event;
    try {
      event = { type: "result", step, result: await call(), now: clock.now() };
    } catch (error) {
      event = { type: "failure", step, error };
    }
    if (done) return;
    dispatch(event);
    if (state.verified) finish(true);
    else refocus(step);
  }

  function submitPassword() {
    if (view(state, clock.now(), labels).password.disabled) return;
    const password = passwordInput.value;
    if (!password) {
      dispatch({ type: "invalid", step: "password" });
      focus(passwordInput);
      return;
    }
    return run("password", () => request.verifyPassword(password));
  }

  function sendCode() {
    const v = view(state, clock.now(), labels);
    if (state.codeSent ? v.resend.disabled : v.sendCode.disabled) return;
    return run("send", () => request.sendEmailCode()).then(() => {
      if (state.codeSent && !state.error) {
        codeInput.value = "";
        focus(codeInput);
      }
    });
  }

  function submitCode() {
    if (view(state, clock.now(), labels).code.disabled) return;
    const code = normalizeCode(codeInput.value);
    if (code.length !== CODE_LENGTH) {
      dispatch({ type: "invalid", step: "code" });
      focus(codeInput);
      return;
    }
    return run("code", () => request.verifyEmailCode(code));
  }

  function usePasskey() {
    if (view(state, clock.now(), labels).passkey.disabled) return;
    return run("passkey", () => request.verifyPasskey());
  }

  function submitTotp() {
    if (view(state, clock.now(), labels).totp.disabled) return;
    const code = normalizeCode(totpInput.value);
    if (code.length !== CODE_LENGTH) {
      dispatch({ type: "invalid", step: "totp" });
      focus(totpInput);
      return;
    }
    return run("totp", () => request.verifyTotp(code));
  }

  function submitBackup() {
    if (view(state, clock.now(), labels).backup.disabled) return;
    const code = backupInput.value.trim();
    if (!code) {
      dispatch({ type: "invalid", step: "backup" });
      focus(backupInput);
      return;
    }
    return run("backup", () => request.verifyBackupCode(code));
  }

  function finish(verified) {
    if (done) return;
    done = true;
    if (timer !== null) clock.clearTimeout(timer);
    timer = null;
    if (dialog.open && typeof dialog.close === "function") dialog.close();
    dialog.remove();
    if (previous && previous !== doc.body && previous.isConnected && typeof previous.focus === "function") {
      previous.focus();
    }
    resolve(verified);
  }

  passwordForm.addEventListener("submit", (event) => {
    event.preventDefault();
    submitPassword();
  });
  codeForm.addEventListener("submit", (event) => {
    event.preventDefault();
    submitCode();
  });
  // Typed, pasted or autofilled: keep the digits, and go as soon as there are six.
  codeInput.addEventListener("input", () => {
    const digits = normalizeCode(codeInput.value);
    if (codeInput.value !== digits) codeInput.value = digits;
    if (digits.length === CODE_LENGTH && state.busy === null) submitCode();
  });
  passkeyButton.addEventListener("click", () => usePasskey());
  totpForm.addEventListener("submit", (event) => {
    event.preventDefault();
    submitTotp();
  });
  totpInput.addEventListener("input", () => {
    const digits = normalizeCode(totpInput.value);
    if (totpInput.value !== digits) totpInput.value = digits;
    if (digits.length === CODE_LENGTH && state.busy === null) submitTotp();
  });
  backupLink.addEventListener("click", () => {
    dispatch({ type: "openBackup" });
    focus(backupInput);
  });
  backupForm.addEventListener("submit", (event) => {
    event.preventDefault();
    submitBackup();
  });
  sendButton.addEventListener("click", () => sendCode());
  resendButton.addEventListener("click", () => sendCode());
  cancelButton.addEventListener("click", () => finish(false));
  dialog.addEventListener("cancel", (event) => {
    event.preventDefault();
    finish(false);
  });
  dialog.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      finish(false);
    }
  });
  dialog.addEventListener("close", () => finish(false));

  (options.container ?? doc.body).append(dialog);
  paint();
  if (typeof dialog.showModal === "function" && dialog.isConnected) {
    try {
      dialog.showModal();
    } catch {
      dialog.setAttribute("open", "");
    }
  } else {
    dialog.setAttribute("open", "");
  }
  if (state.passkey) focus(passkeyButton);
  else if (state.totp) focus(totpInput);
  else if (state.password) focus(passwordInput);
  else if (state.email) focus(sendButton);
  else focus(cancelButton);
}
