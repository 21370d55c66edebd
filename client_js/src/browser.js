// One file for a page without a bundler: this library plus the Convex client it drives.
// Built to dist/browser.js by `npm run build`; apps with a bundler import "@stepup/client".

export * from "./index.js";
export { ConvexClient, ConvexHttpClient } from "convex/browser";
export { anyApi } from "convex/server";
export { ConvexError } from "convex/values";
