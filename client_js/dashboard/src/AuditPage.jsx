// The audit log, newest first, filtered by kind of event, user and action.

import { useQuery } from "convex/react";
import { useState } from "react";

import { api } from "./admin.js";
import { time } from "./ui.jsx";

const EVENTS = [
  "code.sent",
  "verification.passed",
  "verification.failed",
  "grant.minted",
  "grant.spent",
  "action.performed",
  "action.refused",
  "rate.limited",
  "admin.edit",
  "admin.run",
  "admin.cancel",
];

export function AuditPage() {
  const [event, setEvent] = useState("");
  const [userId, setUserId] = useState("");
  const [action, setAction] = useState("");
  const args = {
    ...(event ? { event } : {}),
    ...(userId.trim() ? { userId: userId.trim() } : {}),
    ...(action.trim() ? { action: action.trim() } : {}),
  };
  const events = useQuery(api.auditLog, args);
  return (
    <section aria-label="Audit log">
      <h2>Audit log</h2>
      <form className="filter" onSubmit={(e) => e.preventDefault()}>
        <label>
          Event
          <select value={event} onChange={(e) => setEvent(e.target.value)}>
            <option value="">any</option>
            {EVENTS.map((name) => (
              <option key={name}>{name}</option>
            ))}
          </select>
        </label>
        <label>
          User id
          <input value={userId} onChange={(e) => setUserId(e.target.value)} placeholder="any" />
        </label>
        <label>
          Action
          <input value={action} onChange={(e) => setAction(e.target.value)} placeholder="any" />
        </label>
      </form>
      {events === undefined ? <p className="loading">Loading…</p> : null}
      {events?.length === 0 ? <p className="empty">No events.</p> : null}
      {events?.length ? (
        <table className="grid">
          <thead>
            <tr>
              <th>when</th>
              <th>event</th>
              <th>outcome</th>
              <th>action</th>
              <th>resource</th>
              <th>user</th>
              <th>method</th>
              <th>address</th>
            </tr>
          </thead>
          <tbody>
            {events.map((e) => (
              <tr key={e._id}>
                <td>{time(e.at)}</td>
                <td className="mono">{e.event}</td>
                <td>{e.outcome}</td>
                <td className="mono">{e.action ?? ""}</td>
                <td className="mono">{e.resource ?? ""}{e.scope ? ` (${e.scope})` : ""}</td>
                <td className="mono">{e.userId ?? ""}</td>
                <td>{e.method ?? ""}</td>
                <td>{e.ipAddress ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}
