// The live list of my organizations (orgs:list), and the form that creates one.

import { useMutation } from "convex/react";
import { useState } from "react";

import { api } from "./api.js";
import { errorMessage } from "./errors.js";
import { href, navigate, useTask } from "./hooks.js";
import { Button, InlineStatus, RoleBadge, SkeletonRows } from "./ui.jsx";

export function OrgSidebar({ orgs, selectedId }) {
  const [creating, setCreating] = useState(false);
  return (
    <aside className="sidebar" aria-labelledby="orgs-title">
      <div className="sidebar-head">
        <h2 className="sidebar-title" id="orgs-title">
          Organizations
        </h2>
        <Button
          variant="ghost"
          className="btn-sm"
          aria-expanded={creating}
          aria-controls="new-org"
          onClick={() => setCreating((open) => !open)}
        >
          {creating ? "Close" : "+ New"}
        </Button>
      </div>
      {creating ? (
        <div id="new-org" className="sidebar-create">
          <CreateOrgForm idPrefix="sidebar" onCreated={() => setCreating(false)} />
        </div>
      ) : null}
      {orgs.loading ? (
        <SkeletonRows count={3} label="Loading your organizations" />
      ) : orgs.error ? (
        <InlineStatus error={errorMessage(orgs.error)} />
      ) : orgs.data.length === 0 ? (
        <p className="sidebar-empty">No organizations yet.</p>
      ) : (
        <ul className="org-list" aria-label="Your organizations">
          {orgs.data.map((org) => (
            <li key={org._id}>
              <a
                className="org-link"
                href={href.org(org._id)}
                aria-current={org._id === selectedId ? "page" : undefined}
                data-org-id={org._id}
              >
                <span className="org-mark" aria-hidden="true">
                  {org.name.trim()[0]?.toUpperCase() ?? "#"}
                </span>
                <span className="org-name">{org.name}</span>
                <RoleBadge role={org.role} />
              </a>
            </li>
          ))}
        </ul>
      )}
    </aside>
  );
}

export function CreateOrgForm({ onCreated, autoFocus = true, idPrefix }) {
  const create = useMutation(api.orgs.create);
  const [name, setName] = useState("");
  const task = useTask();
  const inputId = `${idPrefix}-org-name`;
  return (
    <form
      className="create-org"
      onSubmit={async (event) => {
        event.preventDefault();
        if (task.pending) return;
        const result = await task.run(() => create({ name }));
        if (result.ok) {
          setName("");
          onCreated?.(result.value);
          navigate(href.org(result.value));
        }
      }}
    >
      <label className="field-label" htmlFor={inputId}>
        Organization name
      </label>
      <div className="input-row">
        <input
          id={inputId}
          className="input"
          name="org-name"
          placeholder="e.g. Acme Inc."
          autoComplete="off"
          maxLength={100}
          required
          autoFocus={autoFocus}
          value={name}
          aria-invalid={task.error ? "true" : undefined}
          onChange={(event) => setName(event.target.value)}
        />
        <Button type="submit" variant="primary" pending={task.pending}>
          Create
        </Button>
      </div>
      <InlineStatus error={task.error} />
    </form>
  );
}
