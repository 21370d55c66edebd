// Enough of the server's step-up rules, in memory, to drive `withSensitiveActions` through
// every path without a network: protected mutations with levels, grants bound to an action and
// a resource, level-4 grants spent by the call that uses them, and the `sensitive:*` functions.

import { ConvexError } from "convex/values";

const FUNCTION_NAME = Symbol.for("functionName");

export function functionName(ref) {
  return typeof ref === "string" ? ref : ref[FUNCTION_NAME];
}

export class FakeStepUpServer {
  constructor({ password = "right", methods = ["password", "email"] } = {}) {
    this.password = password;
    this.methods = methods;
    this.grants = new Map(); // "action|resource" -> true
    this.calls = []; // [name, args, options]
    this.protected = new Map(); // name -> {action, level, resource(args), run(args)}
    this.code = null;
  }

  /** Declare `name` as a protected mutation. */
  protect(name, { action, level, resource = () => null, run = () => null, description = `Confirm ${action}` }) {
    this.protected.set(name, { action, level, resource, run, description });
  }

  /** Spend the grant for `action` / `resource` as another client's call would. */
  spend(action, resource = null) {
    this.grants.delete(`${action}|${resource}`);
  }

  /** A client with `mutation`, `query` and a few properties, as a Convex client has. */
  client() {
    const server = this;
    return {
      url: "fake://server",
      closed: false,
      async mutation(ref, args, options) {
        return server.mutate(functionName(ref), args, options);
      },
      async query(ref, args) {
        server.calls.push([functionName(ref), args]);
        return { ok: "query", args };
      },
      close() {
        this.closed = true;
      },
    };
  }

  async mutate(name, args, options) {
    this.calls.push([name, args, options]);
    await Promise.resolve();
    const target = `${args.action}|${args.resource ?? null}`;
    switch (name) {
      case "sensitive:verifyPassword":
        if (args.password === "network") throw new Error("Connection lost");
        if (args.password === "anonymous")
          throw new ConvexError({ code: "UNAUTHENTICATED", message: "You must be signed in" });
        if (args.password !== this.password) return { ok: false, code: "INVALID_PASSWORD" };
        this.grants.set(target, true);
        return { ok: true, expiresAt: 1 };
      case "sensitive:sendEmailCode":
        this.code = "123456";
        return { ok: true, sentTo: "a**@example.com", expiresAt: 2 };
      case "sensitive:verifyEmailCode":
        if (args.code !== this.code) return { ok: false, code: "INVALID_CODE", attemptsLeft: 4 };
        this.grants.set(target, true);
        return { ok: true, expiresAt: 3 };
      default:
        break;
    }
    const spec = this.protected.get(name);
    if (spec === undefined) {
      if (name === "fails:plain") throw new Error("plain failure");
      if (name === "fails:notFound") throw new ConvexError({ code: "NOT_FOUND", message: "gone" });
      return { ran: name, args };
    }
    const resource = spec.resource(args);
    const key = `${spec.action}|${resource}`;
    if (!this.grants.has(key)) {
      throw new ConvexError({
        code: "SENSITIVE_VERIFICATION_REQUIRED",
        message: spec.description,
        action: spec.action,
        level: spec.level,
        resource,
        description: spec.description,
        methods: this.methods,
      });
    }
    if (spec.level >= 4) this.grants.delete(key);
    return spec.run(args);
  }

  /** How many times `name` was called. */
  count(name) {
    return this.calls.filter(([called]) => called === name).length;
  }
}
