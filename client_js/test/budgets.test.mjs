// Every suite declares its budget, and each test file's limit (`--test-timeout` in
// package.json) is at least the budgets of its suites added up, so a busy machine that keeps
// every test within its own budget never fails a file for being slow.

import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { SUITE, SUITE_MS } from "./support/budget.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));

function budgetOf(line, source) {
  if (/,\s*SUITE,\s*\(\)\s*=>/.test(line)) return SUITE_MS;
  const literal = line.match(/\{\s*timeout:\s*([\d_]+)\s*\}/);
  if (literal) return Number(literal[1].replaceAll("_", ""));
  if (/,\s*TIMEOUT,\s*\(\)\s*=>/.test(line)) {
    const declared = source.match(/const TIMEOUT = \{\s*timeout:\s*([\d_]+)\s*\}/);
    if (declared) return Number(declared[1].replaceAll("_", ""));
  }
  return null;
}

describe("test budgets", SUITE, () => {
  test("every file's limit covers its suites' budgets", async () => {
    const pkg = JSON.parse(await readFile(path.join(HERE, "..", "package.json"), "utf8"));
    const limit = Number(pkg.scripts.test.match(/--test-timeout=(\d+)/)[1]);
    const files = (await readdir(HERE)).filter((name) => name.endsWith(".test.mjs"));
    assert.ok(files.length > 10);
    for (const name of files) {
      const source = await readFile(path.join(HERE, name), "utf8");
      let total = 0;
      for (const line of source.split("\n")) {
        if (!/^\s*describe\(/.test(line)) continue;
        const budget = budgetOf(line, source);
        assert.ok(budget !== null, `${name}: a suite without a budget: ${line.trim()}`);
        // an indented suite is declared in a loop over the databases (two of them)
        total += /^\s+describe\(/.test(line) ? 2 * budget : budget;
      }
      assert.ok(total <= limit, `${name}: its suites may take ${total} ms, its limit is ${limit}`);
    }
  });
});
