// `npm run build`: minified ES modules in dist/ (index.js, react.js, browser.js) with their types,
// then the demo web app (demo/, with Vite) into demo/dist, which the server serves at `/`, and
// the dashboard (dashboard/) into dashboard/dist, served at `/_dashboard`.
// `npm run build -- --library` builds the library only.

import { copyFile, mkdir, rm } from "node:fs/promises";
import path from "node:path";

import { build } from "esbuild";

import { LIBRARY, ROOT, STANDALONE } from "./bundles.mjs";
import { buildDashboard } from "./dashboard.mjs";
import { buildDemo } from "./demo.mjs";

const dist = path.join(ROOT, "dist");
await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
await build({ ...LIBRARY, outdir: dist, sourcemap: true });
await build({ ...STANDALONE, outdir: dist, sourcemap: true });
for (const types of ["index.d.ts", "react.d.ts"]) {
  await copyFile(path.join(ROOT, "src", types), path.join(dist, types));
}
await copyFile(path.join(ROOT, "src", "index.d.ts"), path.join(dist, "browser.d.ts"));
console.log(`built ${path.relative(process.cwd(), dist) || "."}/: index.js, react.js, browser.js`);

if (!process.argv.includes("--library")) {
  const outDir = await buildDemo();
  console.log(`built ${path.relative(process.cwd(), outDir)}/: the demo web app`);
  const dashboard = await buildDashboard();
  console.log(`built ${path.relative(process.cwd(), dashboard)}/: the dashboard (/_dashboard)`);
}
