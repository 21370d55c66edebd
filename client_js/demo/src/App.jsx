// The page: signed out, the auth screen; signed in, the workspace (top bar, the live list of
// my organizations beside the selected one, or my account).

import { useConvexAuth, useMutation } from "convex/react";
import { useCallback, useEffect, useState } from "react";

import { api } from "./api.js";
import { AccountPage } from "./AccountPage.jsx";
import { AuthScreen } from "./AuthScreen.jsx";
import * as auth from "./auth.js";
import { errorMessage } from "./errors.js";
import { href, useLiveQuery, useRoute } from "./hooks.js";
import { OrgPage } from "./OrgPage.jsx";
import { CreateOrgForm, OrgSidebar } from "./OrgSidebar.jsx";
import { Icon } from "./icons.jsx";
import { useSession } from "./session.jsx";
import { Avatar, Button, EmptyState, Logo, SkeletonRows, Spinner } from "./ui.jsx";

export function App() {
  const session = useSession();
  const convexAuth = useConvexAuth();
  if (session.status === "loading") return <Splash />;
  if (session.status === "unreachable") {
    return (
      <div className="splash">
        <EmptyState icon="alert" title="Can't reach the server">
          <p>{errorMessage(session.error)}</p>
          <Button variant="primary" onClick={session.refresh}>
            Try again
          </Button>
        </EmptyState>
      </div>
    );
  }
  if (session.status !== "signedIn") return <AuthScreen />;
  if (!convexAuth.isAuthenticated) return <Splash label="Connecting…" />;
  return <Workspace key={session.user.id} user={session.user} />;
}

function Splash({ label = "Loading…" }) {
  return (
    <div className="splash">
      <Logo size={40} />
      <Spinner label={label} />
    </div>
  );
}

function Workspace({ user }) {
  const session = useSession();
  const route = useRoute();
  const orgs = useLiveQuery(api.orgs.list, {});
  const [flash, setFlash] = useState(null);
  const acceptInvitations = useMutation(api.invitations.accept);

  // Organizations that invited this (proven) email before it had an account: join them now.
  useEffect(() => {
    acceptInvitations({}).catch(() => {});
  }, [acceptInvitations]);

  useEffect(() => {
    if (!flash) return undefined;
    const timer = setTimeout(() => setFlash(null), 6000);
    return () => clearTimeout(timer);
  }, [flash]);

  const signOut = useCallback(async () => {
    try {
      await auth.signOut();
    } catch {
      // Already gone on the server; the cookie is dead either way.
    }
    window.location.hash = "#/";
    session.signedOut("You are signed out.");
  }, [session]);

  const detail = route.page !== "home";
  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <TopBar user={user} page={route.page} onSignOut={signOut} />
      <div className={`layout ${detail ? "layout-detail" : ""}`}>
        <OrgSidebar orgs={orgs} selectedId={route.orgId} />
        <main className="main" id="main" tabIndex={-1}>
          {flash ? (
            <div className="flash" role="status">
              <span>{flash}</span>
              <button type="button" className="flash-close" aria-label="Dismiss" onClick={() => setFlash(null)}>
                ×
              </button>
            </div>
          ) : null}
          {detail ? (
            <a className="back-link" href={href.home()}>
              ← All organizations
            </a>
          ) : null}
          {route.page === "org" ? (
            <OrgPage key={route.orgId} orgId={route.orgId} orgs={orgs} me={user} onFlash={setFlash} />
          ) : route.page === "account" ? (
            <AccountPage user={user} />
          ) : (
            <Home user={user} orgs={orgs} />
          )}
        </main>
      </div>
    </div>
  );
}

function TopBar({ user, page, onSignOut }) {
  const [pending, setPending] = useState(false);
  return (
    <header className="topbar">
      <a className="brand" href={href.home()}>
        <Logo size={28} />
        <span className="brand-name">Stepup</span>
      </a>
      <nav className="topnav" aria-label="Main">
        <a className="topnav-link" href={href.home()} aria-current={page !== "account" ? "page" : undefined}>
          Organizations
        </a>
        <a className="topnav-link" href={href.account()} aria-current={page === "account" ? "page" : undefined}>
          Account
        </a>
      </nav>
      <div className="topbar-user">
        <Avatar name={user.name} email={user.email} size="sm" />
        <span className="topbar-email" title={user.email}>
          {user.email}
        </span>
        <Button
          variant="ghost"
          className="btn-sm"
          pending={pending}
          onClick={async () => {
            setPending(true);
            await onSignOut();
          }}
        >
          Sign out
        </Button>
      </div>
    </header>
  );
}

function Home({ user, orgs }) {
  const first = (user.name || user.email).split(/\s+/)[0];
  return (
    <div className="page">
      <header className="page-head">
        <div>
          <p className="eyebrow">Welcome</p>
          <h1 className="page-title">Hello, {first}</h1>
        </div>
      </header>
      {orgs.loading ? (
        <SkeletonRows count={2} />
      ) : orgs.data?.length ? (
        <div className="card home-card">
          <EmptyState icon="building" title="Pick an organization">
            <p>Open one from your list to rename it and manage its members, or create a new one with “+ New”.</p>
          </EmptyState>
        </div>
      ) : (
        <div className="card home-card">
          <EmptyState icon="plus" title="Create your first organization">
            <p>Organizations hold your team. You will be its owner; add members by their email once they have signed up.</p>
          </EmptyState>
          <CreateOrgForm autoFocus={false} idPrefix="home" />
        </div>
      )}
      <aside className="card explainer">
        <h2 className="card-title explainer-title">
          <Icon name="shield" size={18} /> How sensitive actions are protected
        </h2>
        <ul className="explainer-list">
          <li>
            <strong>Renaming</strong> and <strong>changing roles</strong> work right after you sign in; later, we ask you to
            confirm it's you.
          </li>
          <li>
            <strong>Removing a member</strong>, <strong>deleting an organization</strong> and{" "}
            <strong>deleting your account</strong> always ask: with your password, or a code we email you.
          </li>
          <li>Every confirmation, and every action it allowed, is in your activity log.</li>
        </ul>
      </aside>
    </div>
  );
}
