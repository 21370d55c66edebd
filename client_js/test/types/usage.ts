// Compiles only if the published types fit the official clients (`npm run typecheck`).

import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { ConvexReactClient } from "convex/react";
import { anyApi, type FunctionReference } from "convex/server";
import {
  createVerificationDialog,
  DEFAULT_LABELS,
  VerificationCancelledError,
  type VerificationHandler,
  type VerificationRequest,
  verificationRequired,
  withSensitiveActions,
} from "@stepup/client";

const removeOrg = anyApi.orgs.remove as FunctionReference<"mutation", "public", { orgId: string }, null>;

const handler: VerificationHandler = async (request: VerificationRequest) => {
  const description: string = request.description;
  if (request.methods.includes("password")) {
    const result = await request.verifyPassword("secret");
    if (result.ok) return result.expiresAt > 0;
    if (result.code === "RATE_LIMITED") console.log(result.retryAfterMs, description);
  }
  const sent = await request.sendEmailCode();
  if (sent.ok) console.log(sent.sentTo);
  const checked = await request.verifyEmailCode("123456");
  if (!checked.ok && checked.code === "INVALID_CODE") console.log(checked.attemptsLeft);
  return checked.ok;
};

const client: ConvexClient = withSensitiveActions(new ConvexClient("http://127.0.0.1:3210"), {
  onVerificationRequired: handler,
});
const http: ConvexHttpClient = withSensitiveActions(new ConvexHttpClient("http://127.0.0.1:3210"), {
  onVerificationRequired: createVerificationDialog({ labels: { title: "Verify", invalidCode: (n) => `${n} left` } }),
  maxRounds: 2,
});
const react: ConvexReactClient = withSensitiveActions(new ConvexReactClient("http://127.0.0.1:3210"), {
  onVerificationRequired: createVerificationDialog({ document, container: document.body }),
});

async function use(): Promise<void> {
  const removed: null = await client.mutation(removeOrg, { orgId: "o1" });
  await http.mutation(removeOrg, { orgId: "o1" });
  await react.mutation(removeOrg, { orgId: "o1" });
  try {
    await client.mutation(removeOrg, { orgId: "o1" });
  } catch (error) {
    if (error instanceof VerificationCancelledError) console.log(error.data.action, error.code, removed);
    const data = verificationRequired(error);
    if (data) console.log(data.level, data.methods.join());
  }
  console.log(DEFAULT_LABELS.title);
}
void use;

// @ts-expect-error: the handler is required
withSensitiveActions(new ConvexClient("http://127.0.0.1:3210"), {});
// @ts-expect-error: not a client
withSensitiveActions({}, { onVerificationRequired: handler });
