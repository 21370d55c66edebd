// How long a suite may take. Each test has its own budget (a few times what it takes on a
// busy machine); a suite's is a backstop over all of its tests and hooks (a server's start),
// so a slow machine on which every test stays within its budget never fails a suite. A test
// file's limit (`--test-timeout` in package.json) is at least the budgets of its suites added
// up: test/budgets.test.mjs keeps both rules.
export const SUITE_MS = 240_000;
export const SUITE = { timeout: SUITE_MS };
