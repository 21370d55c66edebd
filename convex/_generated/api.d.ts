/* eslint-disable */
/**
 * Generated `api` utility.
 *
 * THIS CODE IS AUTOMATICALLY GENERATED.
 *
 * To regenerate, run `python -m backend codegen` (`python -m backend dev` does on every save).
 * @module
 */

import type { FunctionReference } from "convex/server";
import type { Id } from "./dataModel.js";

/**
 * A utility for referencing Convex functions in your app's public API.
 *
 * Usage:
 * ```js
 * const myFunctionReference = api.myModule.myFunction;
 * ```
 */
export declare const api: {
  account: {
    me: FunctionReference<"query", "public", {}, Record<string, any> | null>;
    remove: FunctionReference<"mutation", "public", {}, null>;
  };
  audit: {
    list: FunctionReference<"query", "public", { orgId?: string | null }, Array<Record<string, any>>>;
  };
  invitations: {
    accept: FunctionReference<"mutation", "public", {}, Array<string>>;
    list: FunctionReference<"query", "public", { orgId: string }, Array<Record<string, any>>>;
  };
  members: {
    add: FunctionReference<"mutation", "public", { orgId: string; email: string; role: "owner" | "admin" | "member" }, null>;
    list: FunctionReference<"query", "public", { orgId: string }, Array<Record<string, any>>>;
    remove: FunctionReference<"mutation", "public", { orgId: string; userId: string }, null>;
    setRole: FunctionReference<"mutation", "public", { orgId: string; userId: string; role: "owner" | "admin" | "member" }, null>;
  };
  orgs: {
    create: FunctionReference<"mutation", "public", { name: string }, string>;
    list: FunctionReference<"query", "public", {}, Array<Record<string, any>>>;
    remove: FunctionReference<"mutation", "public", { orgId: string }, null>;
    rename: FunctionReference<"mutation", "public", { orgId: string; name: string }, null>;
  };
  sensitive: {
    sendEmailCode: FunctionReference<"mutation", "public", { action: string; resource?: string | null }, Record<string, any>>;
    status: FunctionReference<"query", "public", { action: string; resource?: string | null }, Record<string, any>>;
    verifyEmailCode: FunctionReference<"mutation", "public", { action: string; code: string; resource?: string | null }, Record<string, any>>;
    verifyPassword: FunctionReference<"mutation", "public", { action: string; password: string; resource?: string | null }, Record<string, any>>;
  };
};

/**
 * A utility for referencing Convex functions in your app's internal API.
 *
 * Usage:
 * ```js
 * const myFunctionReference = internal.myModule.myFunction;
 * ```
 */
export declare const internal: {};
