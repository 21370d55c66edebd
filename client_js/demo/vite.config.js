// The demo web app: `npm run build` (after the library) writes it to demo/dist, which the
// server serves at `/` (its `web_dir` setting). `npm run demo:dev` serves it with live reload
// and forwards /api (HTTP and WebSocket) to a backend started by `make run`.
//
// The app imports the library from ../src (not dist), so the demo always runs the code under
// test, and shares one copy of `convex` and `react` with it.

import path from "node:path";
import { fileURLToPath } from "node:url";

import { defineConfig, loadEnv } from "vite";

const DEMO = path.dirname(fileURLToPath(import.meta.url));
const LIBRARY = path.resolve(DEMO, "../src");
const REPO = path.resolve(DEMO, "../..");

/**
 * The OAuth providers the server will offer, by the same environment variables it reads
 * (backend/auth/oauth.py, `providers_from_env`), from the environment and the repository's
 * `.env`. The server has no endpoint that lists them, so the page learns them at build time;
 * `make run` builds and serves from one environment. `STEPUP_OAUTH_PROVIDERS=google,oidc`
 * overrides (an empty value: no buttons).
 */
function oauthProviders(env) {
  if (env.STEPUP_OAUTH_PROVIDERS !== undefined) {
    return env.STEPUP_OAUTH_PROVIDERS.split(",").map((id) => id.trim()).filter(Boolean);
  }
  const providers = [];
  if (env.GOOGLE_CLIENT_ID) providers.push("google");
  if (env.MICROSOFT_CLIENT_ID) providers.push("microsoft");
  if (env.OIDC_ISSUER && env.OIDC_CLIENT_ID) providers.push(env.OIDC_PROVIDER_ID || "oidc");
  return providers;
}

export default defineConfig(({ mode }) => {
  const backend = process.env.STEPUP_BACKEND_URL ?? "http://127.0.0.1:3210";
  return {
    root: DEMO,
    base: "/",
    // JSX with React's automatic runtime, by Vite's own esbuild step (no plugin needed).
    esbuild: { jsx: "automatic" },
    resolve: {
      alias: [
        { find: /^@stepup\/client\/react$/, replacement: path.join(LIBRARY, "react.js") },
        { find: /^@stepup\/client$/, replacement: path.join(LIBRARY, "index.js") },
      ],
    },
    define: {
      __OAUTH_PROVIDERS__: JSON.stringify(oauthProviders(loadEnv(mode, REPO, ""))),
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
