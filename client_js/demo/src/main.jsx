// The demo web app: organizations and members over the Convex client, with step-up
// verification through @stepup/client. Served by the backend at `/`, so the deployment URL is
// this page's own origin.

import { ConvexProviderWithAuth, ConvexReactClient } from "convex/react";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

import { createVerificationDialog, withSensitiveActions } from "@stepup/client";
import { SensitiveActionsProvider } from "@stepup/client/react";

import { App } from "./App.jsx";
import { SessionProvider, useConvexSessionAuth } from "./session.jsx";
import "./styles/base.css";
import "./styles/components.css";
import "./styles/auth.css";
import "./styles/workspace.css";

// One dialog for the whole page, themed by the --sv-* properties in styles/base.css.
const verify = createVerificationDialog({ className: "verify-dialog" });

// The Convex client logs each refused mutation as an "Uncaught ConvexError". A refusal that
// asks for verification is expected here (the dialog takes it), so it stays out of the console.
const logger = {
  logVerbose() {},
  log: (...args) => console.log(...args),
  warn: (...args) => console.warn(...args),
  error: (...args) => {
    if (!args.some((arg) => typeof arg === "string" && arg.includes("SENSITIVE_VERIFICATION_REQUIRED"))) {
      console.error(...args);
    }
  },
};

// Every mutation made through this client steps up (plain `useMutation` included); the
// screens use `useSensitiveMutation` for the protected ones, which shares the same queue.
const convex = withSensitiveActions(new ConvexReactClient(window.location.origin, { logger }), {
  onVerificationRequired: verify,
});

createRoot(document.getElementById("root")).render(
  <StrictMode>
    <SessionProvider>
      <ConvexProviderWithAuth client={convex} useAuth={useConvexSessionAuth}>
        <SensitiveActionsProvider onVerificationRequired={verify}>
          <App />
        </SensitiveActionsProvider>
      </ConvexProviderWithAuth>
    </SessionProvider>
  </StrictMode>,
);
