// Signed out: sign in with a password, create an account, or get a sign-in link by email;
// OAuth buttons for the providers the server offers (GET /api/auth/providers).

import { useEffect, useRef, useState } from "react";

import * as auth from "./auth.js";
import { errorField, errorMessage } from "./errors.js";
import { Icon } from "./icons.jsx";
import { useSession } from "./session.jsx";
import { Alert, Button, Field, InlineStatus, Logo } from "./ui.jsx";

const PROVIDER_NAMES = { google: "Google", microsoft: "Microsoft", oidc: "single sign-on" };

export function AuthScreen() {
  const session = useSession();
  const [mode, setMode] = useState("password"); // "password" | "link" | "signUp"
  const [email, setEmail] = useState("");
  const providers = useProviders();
  const title = { password: "Sign in", link: "Sign in", signUp: "Create your account" }[mode];
  const subtitle =
    mode === "signUp"
      ? "Set up your organizations and invite your team."
      : "Welcome back. Sign in to manage your organizations.";

  return (
    <div className="auth-page">
      <main className="auth-card" aria-labelledby="auth-title">
        <div className="auth-brand">
          <Logo size={36} />
          <span className="brand-name">Stepup</span>
        </div>
        <h1 className="auth-title" id="auth-title">
          {title}
        </h1>
        <p className="auth-subtitle">{subtitle}</p>
        {session.notice ? <Alert kind="info">{session.notice}</Alert> : null}

        {providers.length > 0 ? (
          <>
            <OAuthButtons providers={providers} />
            <div className="divider" role="separator">
              <span>or</span>
            </div>
          </>
        ) : null}

        {mode !== "signUp" ? (
          <div className="segmented" role="tablist" aria-label="How to sign in">
            {[
              ["password", "Password"],
              ["link", "Email link"],
            ].map(([id, label]) => (
              <button
                key={id}
                type="button"
                role="tab"
                id={`tab-${id}`}
                aria-selected={mode === id}
                aria-controls="auth-panel"
                className="segment"
                onClick={() => setMode(id)}
              >
                {label}
              </button>
            ))}
          </div>
        ) : null}

        <div id="auth-panel" role={mode === "signUp" ? undefined : "tabpanel"} aria-labelledby={mode === "signUp" ? undefined : `tab-${mode}`}>
          {mode === "password" ? <PasswordSignIn email={email} setEmail={setEmail} /> : null}
          {mode === "link" ? <MagicLinkSignIn email={email} setEmail={setEmail} /> : null}
          {mode === "signUp" ? <SignUp email={email} setEmail={setEmail} /> : null}
        </div>

        <p className="auth-switch">
          {mode === "signUp" ? (
            <>
              Already have an account?{" "}
              <button type="button" className="link-button" onClick={() => setMode("password")}>
                Sign in
              </button>
            </>
          ) : (
            <>
              New here?{" "}
              <button type="button" className="link-button" onClick={() => setMode("signUp")}>
                Create an account
              </button>
            </>
          )}
        </p>
      </main>
      <p className="auth-footnote">
        <Icon name="lock" size={14} /> Deleting an organization or removing a member always asks you to confirm
        it's you first.
      </p>
    </div>
  );
}

function useAuthForm() {
  const [pending, setPending] = useState(false);
  const [error, setError] = useState(null);
  async function submit(job) {
    setPending(true);
    setError(null);
    try {
      return await job();
    } catch (caught) {
      setError(caught);
      return undefined;
    } finally {
      setPending(false);
    }
  }
  return { pending, error, submit, setError };
}

function PasswordSignIn({ email, setEmail }) {
  const session = useSession();
  const [password, setPassword] = useState("");
  const form = useAuthForm();
  return (
    <form
      className="stack"
      onSubmit={async (event) => {
        event.preventDefault();
        const user = await form.submit(() => auth.signIn({ email, password }));
        if (user) session.signedIn(user);
      }}
    >
      <Field label="Email">
        {(props) => (
          <input
            {...props}
            className="input"
            type="email"
            name="email"
            autoComplete="username"
            required
            value={email}
            onChange={(event) => setEmail(event.target.value)}
          />
        )}
      </Field>
      <Field label="Password">
        {(props) => (
          <input
            {...props}
            className="input"
            type="password"
            name="password"
            autoComplete="current-password"
            required
            value={password}
            onChange={(event) => setPassword(event.target.value)}
          />
        )}
      </Field>
      <InlineStatus error={form.error} />
      <Button type="submit" variant="primary" className="btn-block" pending={form.pending} pendingLabel="Signing in…">
        Sign in
      </Button>
    </form>
  );
}

function SignUp({ email, setEmail }) {
  const session = useSession();
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const form = useAuthForm();
  const field = errorField(form.error);
  const fieldError = (name) => (field === name ? errorMessage(form.error) : null);
  return (
    <form
      className="stack"
      onSubmit={async (event) => {
        event.preventDefault();
        const user = await form.submit(() => auth.signUp({ name, email, password }));
        if (user) session.signedIn(user);
      }}
    >
      <Field label="Name" error={fieldError("name")}>
        {(props) => (
          <input
            {...props}
            className="input"
            name="name"
            autoComplete="name"
            value={name}
            onChange={(event) => setName(event.target.value)}
          />
        )}
      </Field>
      <Field label="Email" error={fieldError("email")}>
        {(props) => (
          <input
            {...props}
            className="input"
            type="email"
            name="email"
            autoComplete="email"
            required
            value={email}
            onChange={(event) => setEmail(event.target.value)}
          />
        )}
      </Field>
      <Field label="Password" hint="At least 8 characters." error={fieldError("password")}>
        {(props) => (
          <input
            {...props}
            className="input"
            type="password"
            name="new-password"
            autoComplete="new-password"
            required
            minLength={8}
            value={password}
            onChange={(event) => setPassword(event.target.value)}
          />
        )}
      </Field>
      <InlineStatus error={field ? null : form.error} />
      <Button type="submit" variant="primary" className="btn-block" pending={form.pending} pendingLabel="Creating account…">
        Create account
      </Button>
    </form>
  );
}

function MagicLinkSignIn({ email, setEmail }) {
  const form = useAuthForm();
  const [sentTo, setSentTo] = useState(null);

  if (sentTo) {
    return (
      <div className="stack">
        <Alert kind="success" title="Check your email">
          We sent a sign-in link to <strong>{sentTo}</strong>. Open it on this device to sign in; it works once and
          expires in a few minutes.
        </Alert>
        <DevOutboxHint email={sentTo} />
        <div className="row">
          <Button variant="secondary" pending={form.pending} onClick={() => form.submit(() => auth.requestMagicLink(sentTo))}>
            Send another link
          </Button>
          <button type="button" className="link-button" onClick={() => setSentTo(null)}>
            Use a different email
          </button>
        </div>
        <InlineStatus error={form.error} />
      </div>
    );
  }

  return (
    <form
      className="stack"
      onSubmit={async (event) => {
        event.preventDefault();
        const address = email.trim();
        const done = await form.submit(async () => {
          await auth.requestMagicLink(address);
          return true;
        });
        if (done) setSentTo(address);
      }}
    >
      <p className="muted small">No password needed: we email you a link that signs you in. New here? The link creates your account.</p>
      <Field label="Email">
        {(props) => (
          <input
            {...props}
            className="input"
            type="email"
            name="email"
            autoComplete="email"
            required
            value={email}
            onChange={(event) => setEmail(event.target.value)}
          />
        )}
      </Field>
      <InlineStatus error={form.error} />
      <Button type="submit" variant="primary" className="btn-block" pending={form.pending} pendingLabel="Sending…">
        Email me a sign-in link
      </Button>
    </form>
  );
}

/**
 * On a server in dev mode, mail lands in the dev outbox instead of an inbox: say so, link to
 * it, and offer the newest link directly. Shows nothing elsewhere (the outbox answers 404).
 */
function DevOutboxHint({ email }) {
  const [outbox, setOutbox] = useState(undefined); // undefined: looking; null: not dev mode
  const since = useRef(Date.now() - 60_000);
  useEffect(() => {
    let stop = false;
    let timer = null;
    async function look(triesLeft) {
      let mail;
      try {
        mail = await auth.devOutbox(email);
      } catch {
        mail = null;
      }
      if (stop) return;
      setOutbox(mail);
      const hasLink = mail?.some((message) => linkIn(message) && Date.parse(message.sentAt ?? 0) >= since.current);
      if (mail && !hasLink && triesLeft > 0) timer = setTimeout(() => look(triesLeft - 1), 500);
    }
    look(20);
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, [email]);

  if (!outbox) return null;
  const link = outbox.map(linkIn).find(Boolean);
  return (
    <aside className="dev-hint" aria-label="Development mode">
      <p className="dev-hint-title">
        <span className="dev-tag">DEV</span> Mail goes to the dev outbox
      </p>
      <p className="dev-hint-body">This server runs in dev mode, so nothing is really emailed.</p>
      <div className="dev-hint-actions">
        {link ? (
          <a className="btn btn-primary btn-sm" href={link}>
            Open the sign-in link
          </a>
        ) : null}
        <a className="btn btn-secondary btn-sm" href={auth.devOutboxURL(email)} target="_blank" rel="noreferrer">
          Open dev outbox ↗
        </a>
      </div>
    </aside>
  );
}

function linkIn(message) {
  const match = /https?:\/\/\S+\/api\/auth\/magic-link\/verify\?\S+/.exec(message?.text ?? "");
  return match ? match[0] : null;
}

/** The server's OAuth providers; none until it answers (or if it cannot). */
function useProviders() {
  const [providers, setProviders] = useState([]);
  useEffect(() => {
    let live = true;
    auth.oauthProviders().then((ids) => live && setProviders(ids), () => {});
    return () => {
      live = false;
    };
  }, []);
  return providers;
}

function OAuthButtons({ providers }) {
  const [pending, setPending] = useState(null);
  const [error, setError] = useState(null);
  return (
    <div className="stack-sm">
      {providers.map((provider) => (
        <Button
          key={provider}
          variant="secondary"
          className="btn-block"
          pending={pending === provider}
          onClick={async () => {
            setPending(provider);
            setError(null);
            try {
              window.location.assign(await auth.socialSignInURL(provider));
            } catch (caught) {
              setError(caught);
              setPending(null);
            }
          }}
        >
          Continue with {PROVIDER_NAMES[provider] ?? provider}
        </Button>
      ))}
      <InlineStatus error={error} />
    </div>
  );
}
