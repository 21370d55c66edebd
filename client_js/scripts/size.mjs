// `npm run size`: the minified + gzipped size of the library, without `convex` (and `react`).
// Prints one line per entry, each beside its baseline (the size before passkeys, app codes
// and backup codes joined the dialog), and "met"/"missed" for the goals: the main entry under
// 12 KB (the strong factors' goal) and under the 10 KB budget, which makes it exit 1.

import { gzipSync } from "node:zlib";

import { build } from "esbuild";

import { LIBRARY, STANDALONE } from "./bundles.mjs";

const BUDGET = 10 * 1024;
const GOAL = 12 * 1024;
// min+gzip bytes with the password and email-code dialog only (BENCHMARKS.md)
const BASELINE = [5468, 5987, 27703];

async function measure(options, entryPoints) {
  // Each entry on its own, with everything it pulls in: what an app that imports it pays.
  const result = await build({ ...options, entryPoints, splitting: false, write: false, outdir: "out" });
  const code = result.outputFiles.find((file) => file.path.endsWith(".js")).contents;
  return { minified: code.length, gzipped: gzipSync(code, { level: 9 }).length };
}

const kb = (bytes) => `${(bytes / 1024).toFixed(2)} KB`;
const rows = [
  ["@stepup/client (without convex)", await measure(LIBRARY, { index: "src/index.js" })],
  ["@stepup/client/react (without convex, react)", await measure(LIBRARY, { react: "src/react.js" })],
  ["dist/browser.js (with convex/browser)", await measure(STANDALONE, STANDALONE.entryPoints)],
];
for (const [index, [name, size]] of rows.entries()) {
  const ratio = (size.gzipped / BASELINE[index]).toFixed(2);
  console.log(
    `${name}: ${kb(size.gzipped)} min+gzip (${size.gzipped} B; ${kb(size.minified)} minified); ` +
      `baseline ${kb(BASELINE[index])}, ${ratio}x`,
  );
}
const main = rows[0][1].gzipped;
console.log(`goal: main entry under ${kb(GOAL)} min+gzip: ${main < GOAL ? "met" : "missed"}`);
console.log(`budget: main entry under ${kb(BUDGET)} min+gzip: ${main <= BUDGET ? "met" : "missed"}`);
process.exitCode = main <= BUDGET ? 0 : 1;
