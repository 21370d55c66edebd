// One organization: its name (rename: org.rename, level 1), its members, its activity, and,
// for its owners, deleting it (org.delete, level 4: always asks).

import { useState } from "react";

import { useSensitiveMutation } from "@stepup/client/react";

import { api, isManager } from "./api.js";
import { AuditLog } from "./AuditLog.jsx";
import { errorMessage } from "./errors.js";
import { href, navigate, useLiveQuery, useTask } from "./hooks.js";
import { Members } from "./Members.jsx";
import { Button, Card, DangerItem, DangerZone, EmptyState, InlineStatus, RoleBadge, SkeletonRows } from "./ui.jsx";

export function OrgPage({ orgId, orgs, me, onFlash }) {
  const [deleting, setDeleting] = useState(false);
  const org = orgs.data?.find((row) => row._id === orgId);
  // Members only for an org I can see: after it is deleted, or I am removed, there is nothing
  // to subscribe to.
  const members = useLiveQuery(api.members.list, org ? { orgId } : "skip");

  if (orgs.loading) return <SkeletonRows count={4} label="Loading the organization" />;
  if (orgs.error) return <InlineStatus error={orgs.error} />;
  if (!org) {
    if (deleting) return <SkeletonRows count={2} label="Deleting the organization" />;
    return (
      <div className="card">
        <EmptyState icon="question" title="Organization not found">
          <p>It may have been deleted, or you are no longer one of its members.</p>
          <a className="btn btn-secondary" href={href.home()}>
            Back to your organizations
          </a>
        </EmptyState>
      </div>
    );
  }

  const manager = isManager(org.role);
  return (
    <div className="page">
      <header className="page-head">
        <div className="page-head-text">
          <p className="eyebrow">Organization</p>
          <h1 className="page-title" data-testid="org-title">
            {org.name}
          </h1>
        </div>
        <div className="page-head-meta">
          <span className="muted small">Your role</span>
          <RoleBadge role={org.role} />
        </div>
      </header>

      {manager ? <RenameCard org={org} /> : null}
      <Members org={org} me={me} members={members} />
      {manager ? (
        <Card title="Activity" description="Verifications and protected actions in this organization, newest first.">
          <AuditLog args={{ orgId }} members={members.data} emptyText="Nothing has happened here yet." />
        </Card>
      ) : null}
      {org.role === "owner" ? (
        <DangerZone>
          <DeleteOrg
            org={org}
            onDeleting={setDeleting}
            onDeleted={() => {
              onFlash(`Deleted “${org.name}”.`);
              navigate(href.home());
            }}
          />
        </DangerZone>
      ) : null}
    </div>
  );
}

function RenameCard({ org }) {
  const rename = useSensitiveMutation(api.orgs.rename);
  const [name, setName] = useState(org.name);
  const [editedFrom, setEditedFrom] = useState(org.name);
  const task = useTask();
  // Renamed elsewhere while I was not editing: show the new name.
  if (org.name !== editedFrom && name === editedFrom) {
    setName(org.name);
    setEditedFrom(org.name);
  }
  const unchanged = name.trim() === org.name;
  return (
    <Card title="General" description="The name everyone in the organization sees.">
      <form
        className="rename"
        onSubmit={async (event) => {
          event.preventDefault();
          if (unchanged || task.pending) return;
          const result = await task.run(() => rename({ orgId: org._id, name }), { done: "Saved." });
          if (result.ok) setEditedFrom(name.trim().replace(/\s+/g, " "));
        }}
      >
        <label className="field-label" htmlFor="rename-input">
          Name
        </label>
        <div className="input-row">
          <input
            id="rename-input"
            className="input"
            name="name"
            autoComplete="off"
            maxLength={100}
            required
            value={name}
            aria-invalid={task.error ? "true" : undefined}
            onChange={(event) => {
              setName(event.target.value);
              if (task.notice) task.reset();
            }}
          />
          <Button type="submit" variant="secondary" pending={task.pending} aria-disabled={unchanged ? "true" : undefined}>
            Save
          </Button>
        </div>
        <InlineStatus error={task.error} notice={task.notice} />
      </form>
    </Card>
  );
}

function DeleteOrg({ org, onDeleting, onDeleted }) {
  const remove = useSensitiveMutation(api.orgs.remove);
  const task = useTask();
  return (
    <DangerItem
      title="Delete this organization"
      action={
        <Button
          variant="danger"
          pending={task.pending}
          pendingLabel="Deleting…"
          onClick={async () => {
            onDeleting(true);
            const result = await task.run(() => remove({ orgId: org._id }), {
              cancelled: "Not deleted: you cancelled the confirmation.",
            });
            if (result.ok) onDeleted();
            else onDeleting(false);
          }}
        >
          Delete organization
        </Button>
      }
    >
      <p>
        Deletes <strong>{org.name}</strong> and every membership in it, for everyone. This cannot be undone. You will be
        asked to confirm it's you.
      </p>
      <InlineStatus error={task.error ? errorMessage(task.error) : null} notice={task.notice} />
    </DangerItem>
  );
}
