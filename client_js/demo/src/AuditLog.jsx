// An audit trail (audit:list): mine, or an organization's for its owners and admins. Events
// are the server's (backend/audit/log.py); this only words them.

import { useState } from "react";

import { api } from "./api.js";
import { useLiveQuery } from "./hooks.js";
import { EmptyState, InlineStatus, SkeletonRows } from "./ui.jsx";

const ACTIONS = {
  "account.delete": "delete your account",
  "org.rename": "rename an organization",
  "org.delete": "delete an organization",
  "member.role": "change a member's role",
  "member.remove": "remove a member",
  "factor.passkey.add": "add a passkey",
  "factor.passkey.remove": "remove a passkey",
  "factor.totp.add": "set up an authenticator app",
  "factor.totp.remove": "remove the authenticator app",
  "factor.backup_codes.regenerate": "make new backup codes",
  "account.password.change": "change your password",
  "account.email.change": "change your email address",
};

const DONE = {
  "account.delete": "Deleted an account",
  "org.rename": "Renamed an organization",
  "org.delete": "Deleted an organization",
  "member.role": "Changed a member's role",
  "member.remove": "Removed a member",
};

const METHODS = {
  password: "password",
  email: "email code",
  "email-code": "email code",
  passkey: "a passkey",
  totp: "an app code",
  backup_code: "a backup code",
};

function describe(event) {
  const action = ACTIONS[event.action] ?? event.action ?? "an action";
  const method = METHODS[event.method] ?? event.method;
  switch (event.event) {
    case "code.sent":
      return { text: `Emailed a code to confirm: ${action}`, tone: "neutral" };
    case "verification.passed":
      return { text: `Confirmed it's you${method ? ` with ${method}` : ""}, to ${action}`, tone: "good" };
    case "verification.failed":
      return {
        text: `Confirmation failed${method ? ` (${method})` : ""}, to ${action}`,
        tone: "bad",
        detail: event.detail,
      };
    case "grant.minted":
      return { text: `Allowed for a few minutes: ${action}`, tone: "neutral" };
    case "grant.spent":
      return { text: `Used the confirmation to ${action}`, tone: "neutral" };
    case "action.performed":
      return {
        text: DONE[event.action] ?? `Did: ${action}`,
        tone: "good",
        detail: event.outcome === "fresh-session" ? "recent sign-in" : method ? `confirmed with ${method}` : null,
      };
    case "action.refused":
      return { text: `Asked to confirm before you ${action}`, tone: "neutral" };
    case "challenge.issued":
      return { text: `Asked your passkey to confirm: ${action}`, tone: "neutral" };
    case "factor.added":
      return { text: event.method === "passkey" ? "Added a passkey" : "Set up an authenticator app", tone: "good" };
    case "factor.removed":
      return { text: event.method === "passkey" ? "Removed a passkey" : "Removed the authenticator app", tone: "bad" };
    case "factor.changed":
      return { text: `Changed: ${action}`, tone: "neutral" };
    case "rate.limited":
      return { text: "Too many attempts: paused for a while", tone: "bad", detail: event.detail };
    default:
      return { text: event.event, tone: "neutral" };
  }
}

const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function relative(at, now) {
  const seconds = Math.round((now - at) / 1000);
  if (seconds < 45) return "just now";
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 24) return `${hours} h ago`;
  return timeFormat.format(new Date(at));
}

const PAGE = 8;

export function AuditLog({ args = {}, members, emptyText = "No activity yet." }) {
  const events = useLiveQuery(api.audit.list, args);
  const [all, setAll] = useState(false);
  if (events.loading) return <SkeletonRows count={3} label="Loading activity" />;
  if (events.error) return <InlineStatus error={events.error} />;
  if (events.data.length === 0) return <EmptyState icon="check" title={emptyText} />;
  const now = Date.now();
  const who = new Map((members ?? []).map((member) => [member.userId, member.email]));
  const shown = all ? events.data : events.data.slice(0, PAGE);
  return (
    <>
      <ol className="audit" aria-label="Activity, newest first">
        {shown.map((event) => {
          const { text, tone, detail } = describe(event);
          const actor = members ? (who.get(event.userId) ?? "A former member") : null;
          return (
            <li className={`audit-row audit-${tone}`} key={event._id} data-event={event.event}>
              <span className="audit-dot" aria-hidden="true" />
              <div className="audit-text">
                <p className="audit-what">
                  {actor ? <span className="audit-actor">{actor}: </span> : null}
                  {text}
                </p>
                <p className="audit-meta">
                  <time dateTime={new Date(event.at).toISOString()} title={timeFormat.format(new Date(event.at))}>
                    {relative(event.at, now)}
                  </time>
                  {detail ? <span> · {String(detail).replaceAll("_", " ").toLowerCase()}</span> : null}
                  {event.ipAddress ? <span> · {event.ipAddress}</span> : null}
                </p>
              </div>
            </li>
          );
        })}
      </ol>
      {events.data.length > PAGE ? (
        <button type="button" className="link-button audit-more" onClick={() => setAll((value) => !value)}>
          {all ? "Show fewer" : `Show all ${events.data.length} events`}
        </button>
      ) : null}
    </>
  );
}
