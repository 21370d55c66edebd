// Building the demo web app (demo/) with Vite, for `npm run build` and the end-to-end tests.

import path from "node:path";

import { ROOT } from "./bundles.mjs";

export const DEMO_DIR = path.join(ROOT, "demo");
export const DEMO_DIST = path.join(DEMO_DIR, "dist");

/** Build demo/ into `outDir` (default demo/dist); resolves to that directory. */
export async function buildDemo({ outDir = DEMO_DIST, logLevel = "warn" } = {}) {
  const { build } = await import("vite");
  await build({
    configFile: path.join(DEMO_DIR, "vite.config.js"),
    logLevel,
    build: { outDir, emptyOutDir: true },
  });
  return outDir;
}
