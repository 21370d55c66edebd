// The demo app's functions (contract section 4; functions/*.py on the server). `anyApi` makes a
// reference from any path: `api.orgs.remove` is "orgs:remove".

import { anyApi } from "convex/server";

export const api = anyApi;

/** Roles, strongest first, with what each may do (functions/permissions.py). */
export const ROLES = [
  { id: "owner", label: "Owner", help: "Everything, including deleting the organization" },
  { id: "admin", label: "Admin", help: "Rename, and add, change and remove members" },
  { id: "member", label: "Member", help: "See the organization and its members" },
];

export const roleLabel = (role) => ROLES.find((r) => r.id === role)?.label ?? role;
export const isManager = (role) => role === "owner" || role === "admin";
