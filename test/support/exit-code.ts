/**
 * On a 2-core machine jest runs every test file in its own process (maxWorkers = cores - 1 = 1), and it sets the
 * process's exit code only when a test failed: an exit code a test left behind (oclif's `catch` sets
 * process.exitCode when a command ends in an error) would become the suite's, with every test passed.
 */
afterAll(() => {
  process.exitCode = undefined;
});
