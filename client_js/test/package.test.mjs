// The package as published: its types compile against the official clients (tsc over
// test/types), and the minified bundle stays small and free of runtime dependencies.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { describe, test } from "node:test";
import { SUITE } from "./support/budget.mjs";

import { build } from "esbuild";

import { LIBRARY, ROOT } from "../scripts/bundles.mjs";

const run = promisify(execFile);

async function bundle(entry) {
  const result = await build({
    ...LIBRARY,
    entryPoints: [entry],
    splitting: false,
    write: false,
    outdir: "out",
    metafile: true,
  });
  const output = result.outputFiles.find((file) => file.path.endsWith(".js"));
  const imports = Object.values(result.metafile.outputs).flatMap((out) => out.imports.map((imported) => imported.path));
  return { code: output.contents, imports };
}

describe("the package", SUITE, () => {
  test("the main entry has no runtime dependency and is under 10 KB minified + gzipped", async () => {
    const { code, imports } = await bundle("src/index.js");
    assert.deepEqual(imports, [], "not even convex");
    const gzipped = gzipSync(code, { level: 9 }).length;
    assert.ok(gzipped < 10 * 1024, `${gzipped} B`);
  });

  test("the react entry imports only react and convex", async () => {
    const { imports } = await bundle("src/react.js");
    assert.deepEqual([...new Set(imports)].sort(), ["convex/react", "convex/server", "react"]);
  });

  test("package.json points every export at ESM with types", async () => {
    const pkg = JSON.parse(await readFile(path.join(ROOT, "package.json"), "utf8"));
    assert.equal(pkg.type, "module");
    assert.deepEqual(Object.keys(pkg.dependencies ?? {}), []);
    assert.equal(pkg.peerDependencies.convex, ">=1.48");
    assert.equal(pkg.peerDependenciesMeta.react.optional, true);
    for (const entry of [".", "./react"]) {
      for (const file of Object.values(pkg.exports[entry])) await readFile(path.join(ROOT, file));
    }
    const react = await import("@stepup/client/react");
    assert.deepEqual(Object.keys(react).sort(), [
      "SensitiveActionsProvider",
      "VerificationCancelledError",
      "useSensitiveMutation",
      "useVerificationPrompt",
    ]);
  });

  test("the hand-written types compile against convex's own (tsc -p test/types)", { timeout: 120_000 }, async () => {
    const tsc = path.join(ROOT, "node_modules", "typescript", "bin", "tsc");
    const { stdout, stderr } = await run(process.execPath, [tsc, "-p", "test/types"], { cwd: ROOT }).catch(
      (error) => error,
    );
    assert.equal(`${stdout}${stderr}`.trim(), "");
  });
});
