// The page's building blocks: nothing here knows about organizations or auth.

import { useId } from "react";

import { roleLabel } from "./api.js";
import { Icon } from "./icons.jsx";
import { errorMessage } from "./errors.js";

export function Logo({ size = 28 }) {
  return (
    <svg className="logo" width={size} height={size} viewBox="0 0 32 32" aria-hidden="true">
      <rect width="32" height="32" rx="8" fill="currentColor" />
      <path d="M16 6l8 3v6c0 5-3.4 9.3-8 11-4.6-1.7-8-6-8-11V9z" fill="#fff" />
      <path
        d="M12.5 16.2l2.4 2.4 4.8-5"
        fill="none"
        stroke="currentColor"
        strokeWidth="2.2"
        strokeLinecap="round"
        strokeLinejoin="round"
      />
    </svg>
  );
}

export function Spinner({ label = "Loading…" }) {
  return (
    <span className="spinner" role="status">
      <span className="spinner-ring" aria-hidden="true" />
      <span className="visually-hidden">{label}</span>
    </span>
  );
}

/** A button that shows it is working (and stays focusable: aria-disabled, not disabled). */
export function Button({ variant = "secondary", pending = false, pendingLabel, children, className = "", ...props }) {
  const onClick = props.onClick;
  return (
    <button
      type="button"
      {...props}
      className={`btn btn-${variant} ${className}`.trim()}
      aria-disabled={pending || props["aria-disabled"] ? "true" : undefined}
      onClick={(event) => {
        if (pending || props["aria-disabled"]) {
          event.preventDefault();
          return;
        }
        onClick?.(event);
      }}
    >
      {pending ? <span className="btn-spinner" aria-hidden="true" /> : null}
      {pending && pendingLabel ? pendingLabel : children}
    </button>
  );
}

/** A labelled input with its hint and its error, wired for screen readers. */
export function Field({ label, hint, error, children, className = "" }) {
  const id = useId();
  const hintId = hint ? `${id}-hint` : undefined;
  const errorId = error ? `${id}-error` : undefined;
  const describedBy = [hintId, errorId].filter(Boolean).join(" ") || undefined;
  return (
    <div className={`field ${className}`.trim()}>
      <label className="field-label" htmlFor={id}>
        {label}
      </label>
      {children({ id, "aria-describedby": describedBy, "aria-invalid": error ? "true" : undefined })}
      {hint ? (
        <p className="field-hint" id={hintId}>
          {hint}
        </p>
      ) : null}
      {error ? (
        <p className="field-error" id={errorId}>
          {error}
        </p>
      ) : null}
    </div>
  );
}

/** An error (or a notice) right where it happened. */
export function InlineStatus({ error, notice, className = "" }) {
  if (error) {
    return (
      <p className={`inline-status inline-error ${className}`.trim()} role="alert">
        {typeof error === "string" ? error : errorMessage(error)}
      </p>
    );
  }
  if (notice) {
    return (
      <p className={`inline-status inline-notice ${className}`.trim()} role="status">
        {notice}
      </p>
    );
  }
  return null;
}

export function Alert({ kind = "info", title, children }) {
  return (
    <div className={`alert alert-${kind}`} role={kind === "error" ? "alert" : "status"}>
      {title ? <p className="alert-title">{title}</p> : null}
      <div className="alert-body">{children}</div>
    </div>
  );
}

export function Card({ title, description, actions, children, className = "", as: Tag = "section", ...props }) {
  const id = useId();
  return (
    <Tag className={`card ${className}`.trim()} aria-labelledby={title ? id : undefined} {...props}>
      {title ? (
        <header className="card-head">
          <div>
            <h2 className="card-title" id={id}>
              {title}
            </h2>
            {description ? <p className="card-description">{description}</p> : null}
          </div>
          {actions ? <div className="card-actions">{actions}</div> : null}
        </header>
      ) : null}
      {children}
    </Tag>
  );
}

export function EmptyState({ icon = "building", title, children }) {
  return (
    <div className="empty">
      <div className="empty-icon" aria-hidden="true">
        <Icon name={icon} size={22} />
      </div>
      <p className="empty-title">{title}</p>
      {children ? <div className="empty-body">{children}</div> : null}
    </div>
  );
}

export function SkeletonRows({ count = 3, label = "Loading…" }) {
  return (
    <div className="skeleton-rows" role="status" aria-label={label}>
      {Array.from({ length: count }, (_, index) => (
        <div className="skeleton-row" key={index} aria-hidden="true">
          <span className="skeleton skeleton-avatar" />
          <span className="skeleton skeleton-line" style={{ width: `${60 - index * 12}%` }} />
        </div>
      ))}
    </div>
  );
}

export function RoleBadge({ role }) {
  return <span className={`badge badge-${role}`}>{roleLabel(role)}</span>;
}

const AVATAR_COLORS = ["#2f5bea", "#0f7b6c", "#8a4fd1", "#c2410c", "#0369a1", "#be185d", "#4d7c0f"];

export function Avatar({ name, email, size = "md" }) {
  const source = (name || email || "?").trim();
  const letters = source
    .split(/[\s@._-]+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((part) => part[0].toUpperCase())
    .join("");
  let hash = 0;
  for (const char of email || source) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return (
    <span
      className={`avatar avatar-${size}`}
      style={{ background: AVATAR_COLORS[hash % AVATAR_COLORS.length] }}
      aria-hidden="true"
    >
      {letters || "?"}
    </span>
  );
}

/** A red-bordered section for what cannot be undone. */
export function DangerZone({ title = "Danger zone", children }) {
  const id = useId();
  return (
    <section className="danger-zone" aria-labelledby={id}>
      <h2 className="danger-title" id={id}>
        {title}
      </h2>
      <div className="danger-items">{children}</div>
    </section>
  );
}

export function DangerItem({ title, children, action }) {
  return (
    <div className="danger-item">
      <div className="danger-text">
        <p className="danger-item-title">{title}</p>
        <div className="danger-item-body">{children}</div>
      </div>
      <div className="danger-action">{action}</div>
    </div>
  );
}
