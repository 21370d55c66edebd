// The dashboard: the official Convex React client, authenticated with the admin key
// (`setAdminAuth`), over the dashboard's system functions (backend/dashboard/functions.py).

import { ConvexProvider, ConvexReactClient } from "convex/react";
import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";

import { devKey, forgetKey, storeKey, storedKey, tryKey } from "./admin.js";
import { App } from "./App.jsx";
import "./dashboard.css";

function KeyForm({ onKey }) {
  const [key, setKey] = useState("");
  const [state, setState] = useState("idle");
  async function submit(event) {
    event.preventDefault();
    setState("checking");
    if (await tryKey(key.trim())) {
      storeKey(key.trim());
      onKey(key.trim());
    } else {
      setState("refused");
    }
  }
  return (
    <main className="key-screen">
      <form className="card key-form" onSubmit={submit}>
        <h1>Dashboard</h1>
        <p className="muted">Enter this deployment's admin key (the server's ADMIN_KEY).</p>
        <label>
          Admin key
          <input type="password" autoComplete="off" value={key} onChange={(e) => setKey(e.target.value)} autoFocus />
        </label>
        {state === "refused" && <p className="error" role="alert">That key was refused.</p>}
        <button className="primary" disabled={!key.trim() || state === "checking"}>
          {state === "checking" ? "Checking…" : "Open the dashboard"}
        </button>
      </form>
    </main>
  );
}

function Root() {
  const [key, setKey] = useState(undefined); // undefined: looking; null: ask for it
  const [client, setClient] = useState(null);
  const [dev, setDev] = useState(false);

  useEffect(() => {
    devKey().then(async (found) => {
      if (found) {
        setDev(true);
        setKey(found);
        return;
      }
      const stored = storedKey();
      setKey(stored && (await tryKey(stored)) ? stored : null);
    });
  }, []);

  useEffect(() => {
    if (!key) return undefined;
    const convex = new ConvexReactClient(window.location.origin, { unsavedChangesWarning: false });
    convex.setAdminAuth(key);
    setClient(convex);
    return () => {
      convex.close();
    };
  }, [key]);

  if (key === undefined) return <p className="loading">Loading…</p>;
  if (key === null) return <KeyForm onKey={setKey} />;
  if (!client) return <p className="loading">Connecting…</p>;
  const signOut = dev
    ? null
    : () => {
        forgetKey();
        setKey(null);
      };
  return (
    <ConvexProvider client={client}>
      <App adminKey={key} dev={dev} signOut={signOut} />
    </ConvexProvider>
  );
}

createRoot(document.getElementById("root")).render(
  <StrictMode>
    <Root />
  </StrictMode>,
);
