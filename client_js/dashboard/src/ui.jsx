// Small pieces every page uses: values as text, JSON editing, errors, times.

import { useState } from "react";

/** A Convex value as readable JSON (an Int64 shows as `5n`, bytes by their length). */
export function show(value, indent = 0) {
  return JSON.stringify(
    value,
    (_key, v) => {
      if (typeof v === "bigint") return `${v}n`;
      if (v instanceof ArrayBuffer) return `<${v.byteLength} bytes>`;
      return v;
    },
    indent,
  );
}

/** Parse what a person typed as a JSON object; throws with a readable message. */
export function parseObject(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`Not valid JSON: ${error.message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error("Expected a JSON object: { ... }");
  }
  return value;
}

/** What a failed call says: a ConvexError's message (and field), or the error's text. */
export function describeError(error) {
  const data = error?.data;
  if (data && typeof data === "object") {
    const where = data.path ? ` (${data.path})` : "";
    return `${data.code ? `${data.code}: ` : ""}${data.message ?? show(data)}${where}`;
  }
  return String(error?.message ?? error).replace(/^\[CONVEX [^\]]*\] /, "");
}

export function ErrorText({ error }) {
  if (!error) return null;
  return (
    <p className="error" role="alert">
      {typeof error === "string" ? error : describeError(error)}
    </p>
  );
}

export const time = (ms) => (ms == null ? "" : new Date(ms).toLocaleString());

/** A JSON text area with its own parse error, and the actions under it. */
export function JsonEditor({ label, initial, onSave, saveLabel = "Save", children }) {
  const [text, setText] = useState(initial);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function save() {
    setError(null);
    let value;
    try {
      value = parseObject(text);
    } catch (parseError) {
      setError(parseError.message);
      return;
    }
    setBusy(true);
    try {
      await onSave(value);
    } catch (callError) {
      setError(describeError(callError));
    } finally {
      setBusy(false);
    }
  }
  return (
    <div className="editor">
      <label>
        {label}
        <textarea spellCheck={false} value={text} onChange={(e) => setText(e.target.value)} rows={Math.min(18, text.split("\n").length + 2)} />
      </label>
      <ErrorText error={error} />
      <div className="actions">
        <button className="primary" onClick={save} disabled={busy}>
          {busy ? "Saving…" : saveLabel}
        </button>
        {children}
      </div>
    </div>
  );
}
