// The live member list of an organization (members:list), adding someone by email, changing
// a role (member.role, level 2) and removing a member (member.remove, level 3: always asks).

import { useMutation } from "convex/react";
import { useState } from "react";

import { useSensitiveMutation } from "@stepup/client/react";

import { api, isManager, ROLES, roleLabel } from "./api.js";
import { errorData, errorMessage } from "./errors.js";
import { useTask } from "./hooks.js";
import { Avatar, Button, Card, EmptyState, InlineStatus, RoleBadge, SkeletonRows } from "./ui.jsx";

/** The roles I may hand out: only an owner makes owners. */
function grantable(myRole) {
  return ROLES.filter((role) => role.id !== "owner" || myRole === "owner");
}

/** Whether I may change or remove this member: managers, and only owners touch owners. */
function mayManage(myRole, member) {
  return isManager(myRole) && (member.role !== "owner" || myRole === "owner");
}

export function Members({ org, me, members }) {
  const count = members.data?.length;
  return (
    <Card
      title="Members"
      description={
        count === undefined ? "Who belongs to this organization." : `${count} ${count === 1 ? "person" : "people"} in this organization.`
      }
      className="members-card"
    >
      {isManager(org.role) ? <AddMember org={org} /> : null}
      {members.loading ? (
        <SkeletonRows count={3} label="Loading members" />
      ) : members.error ? (
        <InlineStatus error={members.error} />
      ) : members.data.length === 0 ? (
        <EmptyState title="No members" />
      ) : (
        <ul className="member-list" aria-label={`Members of ${org.name}`}>
          {members.data.map((member) => (
            <MemberRow
              key={member.userId}
              org={org}
              member={member}
              isMe={member.userId === me.id}
              soleOwner={member.role === "owner" && members.data.filter((m) => m.role === "owner").length === 1}
            />
          ))}
        </ul>
      )}
    </Card>
  );
}

function AddMember({ org }) {
  const add = useMutation(api.members.add);
  const [email, setEmail] = useState("");
  const [role, setRole] = useState("member");
  const task = useTask();
  const onEmail = errorData(task.error)?.path === "email" || errorData(task.error)?.code === "ALREADY_MEMBER";
  return (
    <form
      className="add-member"
      aria-label="Add a member"
      onSubmit={async (event) => {
        event.preventDefault();
        if (task.pending) return;
        const address = email.trim();
        const result = await task.run(() => add({ orgId: org._id, email: address, role }), {
          done: `Added ${address} as ${roleLabel(role).toLowerCase()} (invited, if they have no account yet).`,
        });
        if (result.ok) {
          setEmail("");
          setRole("member");
        }
      }}
    >
      <div className="add-member-fields">
        <div className="field add-member-email">
          <label className="field-label" htmlFor="add-member-email">
            Email
          </label>
          <input
            id="add-member-email"
            className="input"
            type="email"
            name="member-email"
            autoComplete="off"
            placeholder="name@company.com"
            required
            value={email}
            aria-invalid={onEmail ? "true" : undefined}
            aria-describedby="add-member-status"
            onChange={(event) => {
              setEmail(event.target.value);
              if (task.error || task.notice) task.reset();
            }}
          />
        </div>
        <div className="field add-member-role">
          <label className="field-label" htmlFor="add-member-role">
            Role
          </label>
          <select
            id="add-member-role"
            className="select"
            name="member-role"
            value={role}
            onChange={(event) => setRole(event.target.value)}
          >
            {grantable(org.role).map((option) => (
              <option key={option.id} value={option.id}>
                {option.label}
              </option>
            ))}
          </select>
        </div>
        <Button type="submit" variant="primary" className="add-member-submit" pending={task.pending} pendingLabel="Adding…">
          Add member
        </Button>
      </div>
      <div id="add-member-status">
        <InlineStatus error={task.error} notice={task.notice} />
      </div>
      <p className="field-hint">Someone without an account joins once they sign in with this email.</p>
    </form>
  );
}

function MemberRow({ org, member, isMe, soleOwner }) {
  const setRole = useSensitiveMutation(api.members.setRole);
  const remove = useSensitiveMutation(api.members.remove);
  const roleTask = useTask();
  const removeTask = useTask();
  const [shownRole, setShownRole] = useState(null); // the role picked while its change is pending
  // The last owner stays one (the server says LAST_OWNER): nothing to offer on that row.
  const manage = mayManage(org.role, member) && !soleOwner;
  const label = member.email || member.name;
  const busy = roleTask.pending || removeTask.pending;

  return (
    <li className={`member ${manage ? "member-managed" : ""}`.trim()} data-email={member.email}>
      <div className="member-main">
        <Avatar name={member.name} email={member.email} />
        <div className="member-id">
          <span className="member-name">
            {member.name || member.email}
            {isMe ? <span className="you-tag">You</span> : null}
          </span>
          <span className="member-email">{member.email}</span>
        </div>
        <div className={`member-actions ${manage ? "member-controls" : ""}`.trim()}>
          {manage ? (
            <select
              className="select select-sm"
              aria-label={`Role of ${label}`}
              value={shownRole ?? member.role}
              disabled={busy}
              onChange={async (event) => {
                const role = event.target.value;
                setShownRole(role);
                await roleTask.run(() => setRole({ orgId: org._id, userId: member.userId, role }), {
                  done: `Now ${roleLabel(role).toLowerCase()}.`,
                  cancelled: "Role not changed: you cancelled the confirmation.",
                });
                setShownRole(null);
              }}
            >
              {grantable(org.role).map((option) => (
                <option key={option.id} value={option.id}>
                  {option.label}
                </option>
              ))}
            </select>
          ) : (
            <RoleBadge role={member.role} />
          )}
          {manage ? (
            <Button
              variant="ghost-danger"
              className="btn-sm"
              aria-label={isMe ? `Leave ${org.name}` : `Remove ${label}`}
              pending={removeTask.pending}
              aria-disabled={roleTask.pending ? "true" : undefined}
              onClick={() =>
                removeTask.run(() => remove({ orgId: org._id, userId: member.userId }), {
                  cancelled: "Not removed: you cancelled the confirmation.",
                })
              }
            >
              {isMe ? "Leave" : "Remove"}
            </Button>
          ) : null}
        </div>
      </div>
      <InlineStatus
        className="member-status"
        error={roleTask.error || removeTask.error ? errorMessage(roleTask.error || removeTask.error) : null}
        notice={roleTask.notice || removeTask.notice}
      />
    </li>
  );
}
