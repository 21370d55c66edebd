// The typed client API (`python -m backend codegen`): TypeScript written against
// `convex/_generated/api` compiles when a call is right and fails to compile when an argument
// has the wrong type, exactly as it would against a Convex deployment's generated API.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";

import { ROOT } from "../scripts/bundles.mjs";
import { REPO_ROOT } from "./support/harness.mjs";

const run = promisify(execFile);
const PYTHON = path.join(REPO_ROOT, ".venv", "bin", "python");
const TSC = path.join(ROOT, "node_modules", "typescript", "bin", "tsc");

// A frontend as Convex's templates lay it out: convex/_generated beside src/.
const GOOD = `
import { ConvexClient } from "convex/browser";
import { useMutation, useQuery } from "convex/react";
import type { FunctionReference } from "convex/server";
import { api, internal } from "../convex/_generated/api";
import type { Doc, Id } from "../convex/_generated/dataModel";

declare const client: ConvexClient;

export function useChannel(channel: Id<"channels"> | null) {
  const rows: Array<Record<string, any>> | undefined = useQuery(
    api.messages.list,
    channel ? { channel } : "skip",
  );
  const send = useMutation(api.messages.send);
  return { rows, send: (body: string) => (channel ? send({ channel, body }) : null) };
}
declare const channel: Id<"channels">;

export async function calls(): Promise<void> {
  const rows: Array<Record<string, any>> = await client.query(api.messages.list, { channel });
  await client.query(api.messages.list, { channel, limit: 5 });
  const sent = await client.mutation(api.messages.send, {
    channel,
    body: "hello",
    attachments: [{ url: "https://example.com/a.png", size: 10 }],
  });
  const id: Id<"messages"> = sent.id;
  const words: number = sent.words;
  const again: Id<"messages"> | null = await client.mutation(api.messages.react, {
    message: id,
    emoji: "heart",
    count: 2n,
  });
  await client.mutation(api.admin.users.ban, { userId: "u1" });
  const n: number = await client.query(api.admin.users.count, {});
  const ref: FunctionReference<"query", "public", { channel: Id<"channels">; limit?: number }> =
    api.messages.list;
  const purge: FunctionReference<"mutation", "internal", { before: number }, number> =
    internal.messages.purge;
  const status = await client.query(api.sensitive.status, { action: "org.delete" });
  void [rows, words, again, n, ref, purge, status];
}

export function documents(message: Doc<"messages">): string {
  const channelId: Id<"channels"> = message.channel;
  const kind: "text" | "image" = message.kind ?? "text";
  return channelId + kind + message._id + message._creationTime.toFixed();
}
`;

// Each line that must not compile, with what tsc says about it.
const BAD = [
  [`await client.mutation(api.messages.send, { channel, body: 42 });`, /Type 'number' is not assignable to type 'string'/],
  [`await client.query(api.messages.list, { channel: "not-an-id" });`, /Type 'string' is not assignable to type 'Id<"channels">'/],
  [`await client.mutation(api.messages.react, { message: id, emoji: "thumbs" });`, /Type '"thumbs"' is not assignable to type '"\+1" \| "heart"'/],
  [`await client.query(api.messages.list, {});`, /Property 'channel' is missing/],
  [`await client.mutation(api.admin.users.ban, { userId: "u1", reason: 7 });`, /Type 'number' is not assignable to type 'string'/],
  [`await client.mutation(internal.messages.purge, { before: 1 });`, /"internal"' is not assignable to type '"public"'/],
  [`const wrong: string = await client.query(api.admin.users.count, {});`, /Type 'number' is not assignable to type 'string'/],
  [`await client.query(api.messages.nothing, {});`, /Property 'nothing' does not exist/],
  [`useQuery(api.messages.list, { channel, limit: "5" });`, /Type 'string' is not assignable to type 'number'/],
];

function badFile() {
  const header = [
    `import { ConvexClient } from "convex/browser";`,
    `import { useQuery } from "convex/react";`,
    `import { api, internal } from "../convex/_generated/api";`,
    `import type { Id } from "../convex/_generated/dataModel";`,
    `declare const client: ConvexClient;`,
    `declare const channel: Id<"channels">;`,
    `declare const id: Id<"messages">;`,
    `export async function wrong(): Promise<void> {`,
  ];
  const lines = [...header, ...BAD.map(([line]) => `  ${line}`), `}`];
  return { text: lines.join("\n") + "\n", firstLine: header.length + 1 };
}

const TSCONFIG = {
  compilerOptions: {
    target: "ES2022",
    module: "ESNext",
    moduleResolution: "Bundler",
    strict: true,
    noEmit: true,
    skipLibCheck: false,
    lib: ["ES2022", "DOM"],
    types: [],
  },
  include: ["src/*.ts", "convex/_generated/*.d.ts"],
};

describe("the generated api under tsc", { timeout: 240_000 }, () => {
  let dir;

  before(async () => {
    // inside client_js, so that `convex` resolves from its node_modules as in an app
    dir = await mkdtemp(path.join(ROOT, "test", ".codegen-"));
    await run(PYTHON, ["-m", "backend", "codegen", "--out", path.join(dir, "convex", "_generated")], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        APP_SCHEMA: "tests.apps.typed.schema",
        APP_FUNCTIONS: "tests.apps.typed.functions",
      },
    });
    await mkdir(path.join(dir, "src"));
    await writeFile(path.join(dir, "tsconfig.json"), JSON.stringify(TSCONFIG, null, 2));
  });

  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("api.js is Convex's: api and internal are anyApi", async () => {
    const js = await readFile(path.join(dir, "convex", "_generated", "api.js"), "utf8");
    assert.match(js, /import \{ anyApi \} from "convex\/server";/);
    assert.match(js, /export const api = anyApi;/);
    assert.match(js, /export const internal = anyApi;/);
    const generated = await import(path.join(dir, "convex", "_generated", "api.js"));
    const { getFunctionName } = await import("convex/server");
    assert.equal(getFunctionName(generated.api.admin.users.ban), "admin/users:ban");
    assert.equal(getFunctionName(generated.api.messages.list), "messages:list");
  });

  test("right calls compile; each wrong argument is a compile error where it is made", async () => {
    const bad = badFile();
    await writeFile(path.join(dir, "src", "good.ts"), GOOD);
    await writeFile(path.join(dir, "src", "bad.ts"), bad.text);
    const outcome = await run(process.execPath, [TSC, "-p", dir, "--pretty", "false"], { cwd: dir }).then(
      () => ({ code: 0, stdout: "" }),
      (error) => ({ code: error.code, stdout: error.stdout }),
    );
    assert.equal(outcome.code, 2, `tsc should fail on bad.ts:\n${outcome.stdout}`);
    const errors = outcome.stdout.split("\n").filter((line) => line.includes("error TS"));
    const elsewhere = errors.filter((line) => !line.startsWith("src/bad.ts("));
    assert.deepEqual(elsewhere, [], "good.ts and the generated files compile");
    BAD.forEach(([line, expected], index) => {
      const at = `src/bad.ts(${bad.firstLine + index},`;
      const mine = errors.filter((error) => error.startsWith(at));
      assert.ok(mine.length > 0, `no error for ${line}\n${outcome.stdout}`);
      assert.ok(
        mine.some((error) => expected.test(error)) || expected.test(outcome.stdout.split(at)[1] ?? ""),
        `${line}: expected ${expected}, got\n${mine.join("\n")}`,
      );
    });
  });

  test("without the wrong file, tsc passes", async () => {
    await writeFile(path.join(dir, "src", "good.ts"), GOOD);
    await rm(path.join(dir, "src", "bad.ts"), { force: true });
    await run(process.execPath, [TSC, "-p", dir, "--pretty", "false"], { cwd: dir });
  });
});
