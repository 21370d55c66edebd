// What `npm run build` writes and `npm run size` measures, in one place.

import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** The library alone: `convex` and `react` stay imports (they are peer dependencies). */
export const LIBRARY = {
  absWorkingDir: ROOT,
  entryPoints: { index: "src/index.js", react: "src/react.js" },
  bundle: true,
  splitting: true, // one shared core, so both entries share one dialog queue
  format: "esm",
  minify: true,
  target: "es2020",
  platform: "browser",
  external: ["convex", "convex/*", "react"],
  legalComments: "none",
  chunkNames: "chunks/[name]-[hash]",
};

/** For a page without a bundler: the library with `convex/browser` inside. */
export const STANDALONE = {
  absWorkingDir: ROOT,
  entryPoints: { browser: "src/browser.js" },
  bundle: true,
  format: "esm",
  minify: true,
  target: "es2020",
  platform: "browser",
  legalComments: "none",
};
