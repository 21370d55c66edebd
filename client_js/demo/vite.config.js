// The demo web app: `npm run build` (after the library) writes it to demo/dist, which the
// server serves at `/` (its `web_dir` setting). `npm run demo:dev` serves it with live reload
// and forwards /api (HTTP and WebSocket) to a backend started by `make run`.
//
// The app imports the library from ../src (not dist), so the demo always runs the code under
// test, and shares one copy of `convex` and `react` with it.

import path from "node:path";
import { fileURLToPath } from "node:url";

import { defineConfig } from "vite";

const DEMO = path.dirname(fileURLToPath(import.meta.url));
const LIBRARY = path.resolve(DEMO, "../src");

export default defineConfig(() => {
  const backend = process.env.STEPUP_BACKEND_URL ?? "http://127.0.0.1:3210";
  return {
    root: DEMO,
    base: "/",
    // JSX with React's automatic runtime, by Vite's own esbuild step (no plugin needed).
    esbuild: { jsx: "automatic" },
    resolve: {
      // ../convex/_generated (outside client_js) imports convex too: one copy, from here
      dedupe: ["convex"],
      alias: [
        { find: /^@stepup\/client\/react$/, replacement: path.join(LIBRARY, "react.js") },
        { find: /^@stepup\/client$/, replacement: path.join(LIBRARY, "index.js") },
      ],
    },
    build: {
      outDir: path.join(DEMO, "dist"),
      emptyOutDir: true,
      sourcemap: true,
      target: "es2020",
      reportCompressedSize: false,
    },
    server: {
      proxy: {
        // The auth routes check the Origin of sign-ins against the server's own.
        "/api": {
          target: backend,
          ws: true,
          changeOrigin: true,
          headers: { origin: backend },
        },
      },
    },
  };
});
