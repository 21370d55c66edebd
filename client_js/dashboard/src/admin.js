// The admin key: in dev the server hands it to its own pages (GET /_dashboard/key); in
// production the person opening the dashboard types it, and it lives in this tab only
// (sessionStorage). A typed key is tried on a socket of its own before the client uses it.

import { anyApi } from "convex/server";

const STORED = "dashboard.adminKey";

/** `api.tables` is "_system/dashboard:tables" (the dashboard's system functions). */
export const api = anyApi._system.dashboard;

/** The dev key, or null in production (the server answers 404 there). */
export async function devKey() {
  const response = await fetch("/_dashboard/key", { credentials: "same-origin", cache: "no-store" });
  if (!response.ok) return null;
  return (await response.json()).adminKey;
}

export const storedKey = () => sessionStorage.getItem(STORED);
export const storeKey = (key) => sessionStorage.setItem(STORED, key);
export const forgetKey = () => sessionStorage.removeItem(STORED);

/** Whether the server takes `key`: one query over a socket of its own, answered or refused. */
export function tryKey(key, timeoutMs = 10_000) {
  return new Promise((resolve) => {
    const url = `${location.origin.replace(/^http/, "ws")}/api/1.48.0/sync`;
    const socket = new WebSocket(url);
    const done = (ok) => {
      clearTimeout(timer);
      socket.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.onopen = () => {
      const send = (message) => socket.send(JSON.stringify(message));
      send({ type: "Connect", sessionId: crypto.randomUUID(), connectionCount: 0, lastCloseReason: "InitialConnect" });
      send({ type: "Authenticate", tokenType: "Admin", value: key, baseVersion: 0 });
      send({
        type: "ModifyQuerySet",
        baseVersion: 0,
        newVersion: 1,
        modifications: [{ type: "Add", queryId: 0, udfPath: "_system/dashboard:tables", args: [{}] }],
      });
    };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "AuthError") done(false);
      if (message.type === "Transition") {
        const answer = message.modifications.find((m) => m.queryId === 0);
        if (answer) done(answer.type === "QueryUpdated");
      }
    };
    socket.onerror = () => done(false);
  });
}
