// My account: who I am and how I sign in (account:me), its Security section (factors,
// sessions, and my activity from audit:list), and deleting the account (account.delete,
// level 4: always asks).

import { useSensitiveMutation } from "@stepup/client/react";

import { api } from "./api.js";
import * as auth from "./auth.js";
import { errorData, errorMessage } from "./errors.js";
import { href, useLiveQuery, useTask } from "./hooks.js";
import { SecuritySection } from "./Security.jsx";
import { useSession } from "./session.jsx";
import { Avatar, Button, Card, DangerItem, DangerZone, InlineStatus, SkeletonRows } from "./ui.jsx";

export function AccountPage({ user }) {
  const me = useLiveQuery(api.account.me, {});
  const profile = me.data ?? null;
  return (
    <div className="page">
      <header className="page-head">
        <div className="page-head-text">
          <p className="eyebrow">Account</p>
          <h1 className="page-title">Your account</h1>
        </div>
      </header>

      <Card title="Profile">
        {me.loading ? (
          <SkeletonRows count={1} label="Loading your profile" />
        ) : me.error ? (
          <InlineStatus error={me.error} />
        ) : (
          <div className="profile">
            <Avatar name={profile?.name ?? user.name} email={profile?.email ?? user.email} size="lg" />
            <dl className="profile-facts">
              <div>
                <dt>Name</dt>
                <dd>{profile?.name ?? user.name}</dd>
              </div>
              <div>
                <dt>Email</dt>
                <dd>{profile?.email ?? user.email}</dd>
              </div>
              <div>
                <dt>Confirming it's you</dt>
                <dd>
                  {profile?.hasPassword
                    ? "With your password, or a code we email you"
                    : "With a code we email you (this account has no password)"}
                </dd>
              </div>
            </dl>
          </div>
        )}
      </Card>

      <SecuritySection />

      <DangerZone>
        <DeleteAccount />
      </DangerZone>
    </div>
  );
}

function DeleteAccount() {
  const session = useSession();
  const remove = useSensitiveMutation(api.account.remove);
  const task = useTask();
  const blocked = errorData(task.error)?.code === "SOLE_OWNER" ? (errorData(task.error).orgs ?? []) : null;
  return (
    <DangerItem
      title="Delete your account"
      action={
        <Button
          variant="danger"
          pending={task.pending}
          pendingLabel="Deleting…"
          onClick={async () => {
            const result = await task.run(() => remove({}), {
              cancelled: "Not deleted: you cancelled the confirmation.",
            });
            if (result.ok) {
              await auth.signOut().catch(() => {}); // the session is already revoked
              window.location.hash = "#/";
              session.signedOut("Your account has been deleted. We're sorry to see you go.");
            }
          }}
        >
          Delete account
        </Button>
      }
    >
      <p>
        Removes you from every organization and signs you out everywhere. Organizations where you are the only member
        are deleted with it. This cannot be undone.
      </p>
      {blocked ? (
        <div className="inline-status inline-error" role="alert">
          <p>{errorMessage(task.error)}:</p>
          <ul className="blocked-orgs">
            {blocked.map((org) => (
              <li key={org.orgId}>
                <a href={href.org(org.orgId)}>{org.name || "An organization"}</a>
              </li>
            ))}
          </ul>
        </div>
      ) : (
        <InlineStatus error={task.error} notice={task.notice} />
      )}
    </DangerItem>
  );
}
