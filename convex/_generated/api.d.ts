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
    changeEmail: FunctionReference<"mutation", "public", { newEmail: string }, Record<string, any>>;
    changePassword: FunctionReference<"mutation", "public", { currentPassword: string; newPassword: string; revokeOtherSessions?: boolean }, Record<string, any>>;
    confirmTotp: FunctionReference<"mutation", "public", { code: string }, Record<string, any>>;
    enrolTotp: FunctionReference<"mutation", "public", {}, Record<string, any>>;
    factors: FunctionReference<"query", "public", {}, Record<string, any>>;
    listPasskeys: FunctionReference<"query", "public", {}, Array<Record<string, any>>>;
    passkeyOptions: FunctionReference<"mutation", "public", { action: string; resource?: string | null }, Record<string, any>>;
    passkeyRegistrationOptions: FunctionReference<"mutation", "public", {}, Record<string, any>>;
    regenerateBackupCodes: FunctionReference<"mutation", "public", {}, Record<string, any>>;
    registerPasskey: FunctionReference<"mutation", "public", { credential: Record<string, any>; name?: string | null }, Record<string, any>>;
    removePasskey: FunctionReference<"mutation", "public", { id: string }, Record<string, any>>;
    removeTotp: FunctionReference<"mutation", "public", {}, Record<string, any>>;
    renamePasskey: FunctionReference<"mutation", "public", { id: string; name: string }, Record<string, any>>;
    sendEmailCode: FunctionReference<"mutation", "public", { action: string; resource?: string | null }, Record<string, any>>;
    status: FunctionReference<"query", "public", { action: string; resource?: string | null }, Record<string, any>>;
    verifyBackupCode: FunctionReference<"mutation", "public", { action: string; code: string; resource?: string | null }, Record<string, any>>;
    verifyEmailCode: FunctionReference<"mutation", "public", { action: string; code: string; resource?: string | null }, Record<string, any>>;
    verifyPasskey: FunctionReference<"mutation", "public", { action: string; credential: Record<string, any>; resource?: string | null }, Record<string, any>>;
    verifyPassword: FunctionReference<"mutation", "public", { action: string; password: string; resource?: string | null }, Record<string, any>>;
    verifyTotp: FunctionReference<"mutation", "public", { action: string; code: string; resource?: string | null }, Record<string, any>>;
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
