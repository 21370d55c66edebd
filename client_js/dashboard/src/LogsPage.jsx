// The live function log, newest first: every call this server process ran (a query, mutation,
// action, HTTP action, scheduled function or cron), how it ended and the lines it logged. Read
// by long poll from GET /_dashboard/api/function_logs with the admin key in the Authorization
// header (never a cookie); arguments and return values are not in it.

import { useEffect, useMemo, useState } from "react";

const ENDPOINT = "/_dashboard/api/function_logs";
const WAIT_SECONDS = 25; // the server answers within 30 s at most
const RETRY_MS = 2_000;
const KEEP = 1_000; // rows this page keeps, as the server's ring does
const OUTCOMES = ["success", "failure", "error"];

async function fetchLogs(adminKey, cursor, signal) {
  const query = cursor === null ? "" : `?cursor=${cursor}&wait=${WAIT_SECONDS}`;
  const response = await fetch(ENDPOINT + query, {
    headers: { Authorization: `Convex ${adminKey}` },
    credentials: "omit",
    cache: "no-store",
    signal,
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(`${body.code ?? response.status}: ${body.message ?? response.statusText}`);
  }
  return response.json();
}

/** The server's records, newest first, followed for as long as the page is open. */
function useFunctionLogs(adminKey) {
  const [entries, setEntries] = useState([]);
  const [error, setError] = useState(null);
  const [live, setLive] = useState(false);
  useEffect(() => {
    const controller = new AbortController();
    let generation = 0; // a server restart numbers its records from 1 again
    let cursor = null;
    const keyed = (list) => list.map((entry) => ({ ...entry, key: `${generation}:${entry.cursor}` })).reverse();
    async function follow() {
      while (!controller.signal.aborted) {
        try {
          const page = await fetchLogs(adminKey, cursor, controller.signal);
          if (page.reset) generation += 1;
          const fresh = keyed(page.entries);
          const replace = cursor === null || page.reset; // the history, not news
          setEntries((shown) => (replace ? fresh : [...fresh, ...shown]).slice(0, KEEP));
          cursor = page.cursor;
          setError(null);
          setLive(true);
          // an empty answer is a wait that ran out, or a server that is stopping: never spin
          if (!page.entries.length) await new Promise((resolve) => setTimeout(resolve, 250));
        } catch (failure) {
          if (controller.signal.aborted) return;
          setLive(false);
          setError(failure.message);
          await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
        }
      }
    }
    follow();
    return () => controller.abort();
  }, [adminKey]);
  return { entries, error, live, clear: () => setEntries([]) };
}

const time = (iso) => (iso ? new Date(iso).toLocaleString() : "");

export function LogsPage({ adminKey }) {
  const { entries, error, live, clear } = useFunctionLogs(adminKey);
  const [path, setPath] = useState("");
  const [outcome, setOutcome] = useState("");
  const [system, setSystem] = useState(false); // the engine's own calls, this page's among them
  const shown = useMemo(() => {
    const text = path.trim().toLowerCase();
    return entries.filter((entry) => {
      const where = String(entry.path ?? "");
      if (!system && where.startsWith("_system/")) return false;
      return (!outcome || entry.outcome === outcome) && (!text || where.toLowerCase().includes(text));
    });
  }, [entries, path, outcome, system]);
  return (
    <section aria-label="Function logs">
      <div className="section-head">
        <h2>Logs</h2>
        <span className={`state ${live ? "success" : "pending"}`}>{live ? "live" : "connecting"}</span>
        <span className="muted">this server process's last {KEEP} calls; arguments and return values are never kept</span>
      </div>
      <form className="filter" onSubmit={(e) => e.preventDefault()}>
        <label>
          Function
          <input value={path} onChange={(e) => setPath(e.target.value)} placeholder="any (part of a path)" />
        </label>
        <label>
          Outcome
          <select value={outcome} onChange={(e) => setOutcome(e.target.value)}>
            <option value="">any</option>
            {OUTCOMES.map((name) => (
              <option key={name}>{name}</option>
            ))}
          </select>
        </label>
        <label className="inline">
          <input type="checkbox" checked={system} onChange={(e) => setSystem(e.target.checked)} />
          System calls
        </label>
        <button type="button" onClick={clear}>
          Clear
        </button>
      </form>
      {error ? (
        <p className="error" role="alert">
          The log could not be read ({error}); trying again.
        </p>
      ) : null}
      {live && shown.length === 0 ? <p className="empty">{entries.length ? "No call matches." : "No calls yet."}</p> : null}
      {shown.length ? (
        <table className="grid">
          <thead>
            <tr>
              <th>when</th>
              <th>kind</th>
              <th>function</th>
              <th>duration</th>
              <th>outcome</th>
              <th>caller</th>
              <th>log lines</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((entry) => (
              <tr key={entry.key}>
                <td>{time(entry.ts)}</td>
                <td>{entry.kind}</td>
                <td className="mono">{entry.path ?? ""}</td>
                <td>{entry.durationMs} ms</td>
                <td>
                  <span className={`state ${entry.outcome === "success" ? "success" : "failed"}`}>{entry.outcome}</span>
                  {entry.error ? <span className="mono"> {entry.error}</span> : null}
                </td>
                <td className="mono">{entry.caller ?? ""}</td>
                <td>{entry.logLines?.length ? <pre className="log-lines">{entry.logLines.join("\n")}</pre> : null}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}
