// Compiles only if the React types fit convex/react (`npm run typecheck`).

import { anyApi, type FunctionReference } from "convex/server";
import { SensitiveActionsProvider, useSensitiveMutation, useVerificationPrompt } from "@stepup/client/react";

const removeOrg = anyApi.orgs.remove as FunctionReference<"mutation", "public", { orgId: string }, null>;

export function DeleteButton({ orgId }: { orgId: string }) {
  const remove = useSensitiveMutation(removeOrg);
  const prompt = useVerificationPrompt();
  const custom = useSensitiveMutation(removeOrg, { onVerificationRequired: prompt.onVerificationRequired });
  const run = async (): Promise<null> => (await remove({ orgId })) ?? (await custom({ orgId }));
  return (
    <>
      <button onClick={() => void run()}>Delete</button>
      {prompt.request && <p onClick={() => prompt.resolve(false)}>{prompt.request.description}</p>}
    </>
  );
}

export function App() {
  return (
    <SensitiveActionsProvider
      render={(request, done) => <button onClick={() => done(false)}>{request.description}</button>}
    >
      <DeleteButton orgId="o1" />
    </SensitiveActionsProvider>
  );
}
