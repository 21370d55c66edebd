// The dashboard (client_js/dashboard): `npm run build` writes it to dashboard/dist, which the
// server serves at /_dashboard (in dev, or with ADMIN_KEY set). Same stack as the demo: React
// and the official Convex client, JSX by Vite's own esbuild step.

import path from "node:path";
import { fileURLToPath } from "node:url";

import { defineConfig } from "vite";

const DASHBOARD = path.dirname(fileURLToPath(import.meta.url));

export default defineConfig(() => ({
  root: DASHBOARD,
  base: "/_dashboard/",
  esbuild: { jsx: "automatic" },
  build: {
    outDir: path.join(DASHBOARD, "dist"),
    emptyOutDir: true,
    sourcemap: true,
    target: "es2020",
    reportCompressedSize: false,
  },
}));
