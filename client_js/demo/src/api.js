// The demo app's functions (contract section 4; functions/*.py on the server), through the
// typed API `python -m backend codegen` writes from them (convex/_generated at the repository
// root, as a Convex project keeps it): `api.orgs.remove` is "orgs:remove", typed
// `FunctionReference<"mutation", "public", { orgId: string }, null>` for an editor or tsc.

export { api } from "../../../convex/_generated/api.js";

/** Roles, strongest first, with what each may do (functions/permissions.py). */
export const ROLES = [
  { id: "owner", label: "Owner", help: "Everything, including deleting the organization" },
  { id: "admin", label: "Admin", help: "Rename, and add, change and remove members" },
  { id: "member", label: "Member", help: "See the organization and its members" },
];

export const roleLabel = (role) => ROLES.find((r) => r.id === role)?.label ?? role;
export const isManager = (role) => role === "owner" || role === "admin";
