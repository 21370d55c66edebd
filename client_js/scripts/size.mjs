// `npm run size`: the minified + gzipped size of the library, without `convex` (and `react`).
// Prints one line per entry and exits 1 when the main entry passes the 10 KB budget.

import { gzipSync } from "node:zlib";

import { build } from "esbuild";

import { LIBRARY, STANDALONE } from "./bundles.mjs";

const BUDGET = 10 * 1024;

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
for (const [name, size] of rows) {
  console.log(`${name}: ${kb(size.gzipped)} min+gzip (${size.gzipped} B; ${kb(size.minified)} minified)`);
}
const main = rows[0][1].gzipped;
console.log(main <= BUDGET ? `within the ${kb(BUDGET)} budget` : `OVER the ${kb(BUDGET)} budget`);
process.exitCode = main <= BUDGET ? 0 : 1;
