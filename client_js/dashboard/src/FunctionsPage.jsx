// The function runner: pick a function, write its arguments as JSON, run it as a user or as
// nobody. Internal functions run too (the admin key reaches them); each run is audited.

import { useAction, useQuery } from "convex/react";
import { useState } from "react";

import { api } from "./admin.js";
import { describeError, ErrorText, parseObject, show } from "./ui.jsx";

export function FunctionsPage() {
  const functions = useQuery(api.functions, {});
  const users = useQuery(api.users, {});
  const run = useAction(api.run);
  const [path, setPath] = useState("");
  const [args, setArgs] = useState("{}");
  const [asUser, setAsUser] = useState("");
  const [outcome, setOutcome] = useState(null); // {value} | {error}
  const [busy, setBusy] = useState(false);

  if (functions === undefined) return <p className="loading">Loading functions…</p>;
  const chosen = functions.find((f) => f.path === path) ?? functions[0];

  async function submit(event) {
    event.preventDefault();
    setOutcome(null);
    let parsed;
    try {
      parsed = parseObject(args);
    } catch (error) {
      setOutcome({ error: error.message });
      return;
    }
    setBusy(true);
    try {
      const answer = await run({ path: chosen.path, args: parsed, ...(asUser ? { asUser } : {}) });
      setOutcome({ value: answer.value });
    } catch (error) {
      setOutcome({ error: describeError(error) });
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="runner" aria-label="Run a function">
      <h2>Run a function</h2>
      <form onSubmit={submit} className="card form-grid">
        <label>
          Function
          <select
            value={chosen?.path ?? ""}
            onChange={(e) => {
              setPath(e.target.value);
              setOutcome(null);
            }}
          >
            {functions.map((f) => (
              <option key={f.path} value={f.path}>
                {f.path} ({f.visibility} {f.kind})
              </option>
            ))}
          </select>
        </label>
        {chosen ? (
          <p className="signature mono">
            {chosen.kind} {chosen.path}({chosen.args}) → {chosen.returns}
          </p>
        ) : null}
        <label>
          Arguments (JSON)
          <textarea spellCheck={false} rows={6} value={args} onChange={(e) => setArgs(e.target.value)} />
        </label>
        <label>
          Run as
          <select value={asUser} onChange={(e) => setAsUser(e.target.value)}>
            <option value="">Nobody (no identity)</option>
            {(users ?? []).map((u) => (
              <option key={u.id} value={u.id}>
                {u.email ?? u.id}
                {u.name ? ` (${u.name})` : ""}
              </option>
            ))}
          </select>
        </label>
        <div className="actions">
          <button className="primary" disabled={busy || !chosen}>
            {busy ? "Running…" : "Run"}
          </button>
        </div>
      </form>
      {outcome?.error ? <ErrorText error={outcome.error} /> : null}
      {outcome && "value" in outcome ? (
        <figure className="result">
          <figcaption>Result</figcaption>
          <pre className="mono" data-testid="run-result">
            {outcome.value === undefined ? "undefined" : show(outcome.value, 2)}
          </pre>
        </figure>
      ) : null}
    </section>
  );
}
