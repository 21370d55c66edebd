// Building the dashboard (dashboard/) with Vite, for `npm run build` and its browser tests.

import path from "node:path";

import { ROOT } from "./bundles.mjs";

export const DASHBOARD_DIR = path.join(ROOT, "dashboard");
export const DASHBOARD_DIST = path.join(DASHBOARD_DIR, "dist");

/** Build dashboard/ into `outDir` (default dashboard/dist); resolves to that directory. */
export async function buildDashboard({ outDir = DASHBOARD_DIST, logLevel = "warn" } = {}) {
  const { build } = await import("vite");
  await build({
    configFile: path.join(DASHBOARD_DIR, "vite.config.js"),
    logLevel,
    build: { outDir, emptyOutDir: true },
  });
  return outDir;
}
