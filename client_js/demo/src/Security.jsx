// The Security section of my account: passkeys, an authenticator app, backup codes, my active
// sessions, and recent security events. Every change of a factor is a protected action on the
// server (factor.*, level 3): the step-up dialog asks first, and the proof cannot come from
// the factor being changed.

import { useConvex } from "convex/react";
import { useCallback, useEffect, useState } from "react";

import { registerPasskey } from "@stepup/client";
import { useSensitiveMutation } from "@stepup/client/react";

import { api } from "./api.js";
import { AuditLog } from "./AuditLog.jsx";
import * as auth from "./auth.js";
import { useLiveQuery, useTask } from "./hooks.js";
import { Button, Card, Field, InlineStatus, SkeletonRows } from "./ui.jsx";

const when = (ms) => (ms ? new Date(ms).toLocaleString() : "never");

const FAILURES = {
  NO_AUTHENTICATOR: "This browser cannot make passkeys.",
  PASSKEY_CANCELLED: "No passkey was made: the prompt was closed.",
  INVALID_PASSKEY: "The passkey was not accepted.",
  CHALLENGE_EXPIRED: "That took too long. Try again.",
  INVALID_CODE: "That code is not right. Check the app and try again.",
  CODE_EXPIRED: "Start the set-up again.",
  RATE_LIMITED: "Too many attempts. Wait a little and try again.",
};

/** A server answer `{ok: false, code}` as an error a task shows. */
function failed(answer) {
  if (answer?.ok === false) throw new Error(FAILURES[answer.code] ?? `Refused: ${answer.code}`);
  return answer;
}

export function SecuritySection() {
  const factors = useLiveQuery(api.sensitive.factors, {});
  const [codes, setCodes] = useState(null);
  return (
    <Card
      title="Security"
      description="Ways to confirm it's you, strongest first. Adding or removing one asks you to confirm with another."
      className="security"
      data-testid="security"
    >
      {factors.loading ? (
        <SkeletonRows count={2} label="Loading your security settings" />
      ) : factors.error ? (
        <InlineStatus error={factors.error} />
      ) : (
        <>
          <Passkeys onCodes={setCodes} />
          <AuthenticatorApp on={factors.data.totp} onCodes={setCodes} />
          <BackupCodes left={factors.data.backupCodesLeft} onCodes={setCodes} />
          {codes ? <ShownCodes codes={codes} onDone={() => setCodes(null)} /> : null}
          <Sessions />
          <section className="security-part">
            <h3>Recent security events</h3>
            <AuditLog emptyText="Nothing yet. Confirmations and protected actions will show up here." />
          </section>
        </>
      )}
    </Card>
  );
}

function Passkeys({ onCodes }) {
  const client = useConvex();
  const list = useLiveQuery(api.sensitive.listPasskeys, {});
  const remove = useSensitiveMutation(api.sensitive.removePasskey);
  const task = useTask();
  const [name, setName] = useState("");
  return (
    <section className="security-part" aria-labelledby="passkeys-title">
      <h3 id="passkeys-title">Passkeys</h3>
      {list.data?.length ? (
        <ul className="factor-list" data-testid="passkeys">
          {list.data.map((key) => (
            <li key={key.id}>
              <span className="factor-name">{key.name}</span>
              <span className="factor-meta">added {when(key.createdAt)}, last used {when(key.lastUsedAt)}</span>
              <Button
                variant="ghost"
                onClick={() => task.run(() => remove({ id: key.id }).then(failed), { done: "Passkey removed." })}
              >
                Remove
              </Button>
            </li>
          ))}
        </ul>
      ) : (
        <p className="muted">No passkeys yet: sign-in confirmations with your fingerprint, face or security key.</p>
      )}
      <form
        className="inline-form"
        onSubmit={(event) => {
          event.preventDefault();
          task.run(
            async () => {
              const added = failed(await registerPasskey(client, { name: name.trim() || "Passkey" }));
              setName("");
              if (added.backupCodes) onCodes(added.backupCodes);
            },
            { done: "Passkey added." },
          );
        }}
      >
        <Field label="Name of the new passkey">
          {(props) => (
            <input {...props} className="input" value={name} onChange={(e) => setName(e.target.value)} placeholder="My laptop" maxLength={64} />
          )}
        </Field>
        <Button type="submit" pending={task.pending} pendingLabel="Waiting for the passkey…">
          Add a passkey
        </Button>
      </form>
      <InlineStatus error={task.error} notice={task.notice} />
    </section>
  );
}

function AuthenticatorApp({ on, onCodes }) {
  const enrol = useSensitiveMutation(api.sensitive.enrolTotp);
  const confirm = useSensitiveMutation(api.sensitive.confirmTotp);
  const remove = useSensitiveMutation(api.sensitive.removeTotp);
  const task = useTask();
  const [setup, setSetup] = useState(null);
  const [code, setCode] = useState("");
  return (
    <section className="security-part" aria-labelledby="totp-title">
      <h3 id="totp-title">Authenticator app</h3>
      {on ? (
        <div className="factor-row">
          <p data-testid="totp-on">On: codes from your authenticator app confirm it's you.</p>
          <Button variant="ghost" onClick={() => task.run(() => remove({}).then(failed), { done: "App removed." })}>
            Remove
          </Button>
        </div>
      ) : setup ? (
        <form
          className="totp-setup"
          onSubmit={(event) => {
            event.preventDefault();
            task.run(
              async () => {
                const done = failed(await confirm({ code }));
                setSetup(null);
                setCode("");
                if (done.backupCodes) onCodes(done.backupCodes);
              },
              { done: "Authenticator app is on." },
            );
          }}
        >
          <p>Scan this with your authenticator app, or type the key in, then enter the code it shows.</p>
          {/* the server's own SVG (segno): no script, no external reference */}
          <div className="qr" aria-label="QR code for your authenticator app" role="img" dangerouslySetInnerHTML={{ __html: setup.qrSvg }} />
          <p className="totp-secret">
            Key: <code data-testid="totp-secret">{setup.secret}</code>
          </p>
          <Field label="Code from the app">
            {(props) => (
              <input
                {...props}
                className="input"
                value={code}
                onChange={(e) => setCode(e.target.value.replace(/\D/g, "").slice(0, 6))}
                inputMode="numeric"
                autoComplete="one-time-code"
                name="totp-confirm"
              />
            )}
          </Field>
          <Button type="submit" pending={task.pending} pendingLabel="Checking…">
            Turn on
          </Button>
        </form>
      ) : (
        <div className="factor-row">
          <p className="muted">Off.</p>
          <Button onClick={() => task.run(async () => setSetup(failed(await enrol({}))))}>Set up an authenticator app</Button>
        </div>
      )}
      <InlineStatus error={task.error} notice={task.notice} />
    </section>
  );
}

function BackupCodes({ left, onCodes }) {
  const regenerate = useSensitiveMutation(api.sensitive.regenerateBackupCodes);
  const task = useTask();
  return (
    <section className="security-part" aria-labelledby="backup-title">
      <h3 id="backup-title">Backup codes</h3>
      <div className="factor-row">
        <p data-testid="backup-left">
          {left} unused backup code{left === 1 ? "" : "s"}. Each works once, if you lose your passkey or phone.
        </p>
        <Button
          variant="ghost"
          onClick={() => task.run(async () => onCodes(failed(await regenerate({})).codes), { done: "New codes made." })}
        >
          Make new codes
        </Button>
      </div>
      <InlineStatus error={task.error} notice={task.notice} />
    </section>
  );
}

function ShownCodes({ codes, onDone }) {
  return (
    <div className="alert alert-info backup-codes" role="status" data-testid="backup-codes">
      <p>
        <strong>Your backup codes.</strong> Keep them somewhere safe: they are shown only now.
      </p>
      <ul>
        {codes.map((code) => (
          <li key={code}>
            <code>{code}</code>
          </li>
        ))}
      </ul>
      <Button onClick={onDone}>I have saved them</Button>
    </div>
  );
}

function Sessions() {
  const [state, setState] = useState({ list: null, current: null, error: null });
  const task = useTask();
  const load = useCallback(async () => {
    try {
      const [list, current] = await Promise.all([auth.listSessions(), auth.getSession()]);
      setState({ list, current: current?.session?.id ?? null, error: null });
    } catch (error) {
      setState((s) => ({ ...s, error }));
    }
  }, []);
  useEffect(() => {
    load();
  }, [load]);
  return (
    <section className="security-part" aria-labelledby="sessions-title">
      <h3 id="sessions-title">Active sessions</h3>
      {state.error ? <InlineStatus error={state.error} /> : null}
      {state.list === null ? (
        <SkeletonRows count={1} label="Loading your sessions" />
      ) : (
        <ul className="factor-list" data-testid="sessions">
          {state.list.map((s) => (
            <li key={s.id}>
              <span className="factor-name">{s.userAgent || "Unknown browser"}</span>
              <span className="factor-meta">
                {s.ipAddress || "unknown address"}, since {new Date(s.createdAt).toLocaleString()}
              </span>
              {s.id === state.current ? (
                <span className="badge">This session</span>
              ) : (
                <Button
                  variant="ghost"
                  onClick={() => task.run(async () => (await auth.revokeSession(s.id), load()), { done: "Signed out." })}
                >
                  Sign out
                </Button>
              )}
            </li>
          ))}
        </ul>
      )}
      <InlineStatus error={task.error} notice={task.notice} />
    </section>
  );
}
