/* eslint-disable */
/**
 * Generated data model types.
 *
 * THIS CODE IS AUTOMATICALLY GENERATED.
 *
 * To regenerate, run `python -m backend codegen` (`python -m backend dev` does on every save).
 * @module
 */

import type {
  DocumentByName,
  TableNamesInDataModel,
  SystemTableNames,
} from "convex/server";
import type { GenericId } from "convex/values";

/**
 * A type describing your Convex data model.
 */
export type DataModel = {
  invitations: {
    document: { _id: Id<"invitations">; _creationTime: number; orgId: Id<"orgs">; email: string; role: "owner" | "admin" | "member"; invitedBy: string; expiresAt: number };
    fieldPaths: "_creationTime" | "_id" | "email" | "expiresAt" | "invitedBy" | "orgId" | "role";
    indexes: {
      by_id: ["_id"];
      by_creation_time: ["_creationTime"];
      by_org: ["orgId", "email", "_creationTime"];
      by_email: ["email", "_creationTime"];
    };
    searchIndexes: {};
    vectorIndexes: {};
  };
  memberships: {
    document: { _id: Id<"memberships">; _creationTime: number; orgId: Id<"orgs">; userId: string; role: "owner" | "admin" | "member" };
    fieldPaths: "_creationTime" | "_id" | "orgId" | "role" | "userId";
    indexes: {
      by_id: ["_id"];
      by_creation_time: ["_creationTime"];
      by_org: ["orgId", "userId", "_creationTime"];
      by_user: ["userId", "orgId", "_creationTime"];
    };
    searchIndexes: {};
    vectorIndexes: {};
  };
  orgs: {
    document: { _id: Id<"orgs">; _creationTime: number; name: string; createdBy: string };
    fieldPaths: "_creationTime" | "_id" | "createdBy" | "name";
    indexes: {
      by_id: ["_id"];
      by_creation_time: ["_creationTime"];
    };
    searchIndexes: {};
    vectorIndexes: {};
  };
};

/** The names of all of your Convex tables. */
export type TableNames = TableNamesInDataModel<DataModel>;

/** The type of a document stored in Convex. */
export type Doc<TableName extends TableNames> = DocumentByName<DataModel, TableName>;

/**
 * An identifier for a document in Convex: a string at run time, distinguished by
 * its table when type checking.
 */
export type Id<TableName extends TableNames | SystemTableNames> = GenericId<TableName>;
