/**
 * The memoria equals AWStats 7.8 on logs nobody wrote for it: apache-log-generator.ts, written apart from
 * the implementation, with random proportions per seed, read by AWStats itself. Every day and every hour
 * must agree, except the differences the README lists, accounted for line by line (awstats-differential.ts).
 * CI runs a few seeds; `npm run diff:awstats -- --seeds 1000` runs thousands.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AWSTATS, LOGRESOLVEMERGE, compareSeed } from '../support/awstats-differential.js';

const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8];
const installed = existsSync(AWSTATS) && existsSync(LOGRESOLVEMERGE);
if (!installed && process.env.CI) {
  test('AWStats is installed (scripts/ensure-tools.sh --lab)', () => {
    throw new Error(`${AWSTATS} or ${LOGRESOLVEMERGE} is missing: run scripts/ensure-tools.sh --lab so the figures are compared`);
  });
}
(installed ? describe : describe.skip)('AWStats on generated Apache logs, seed by seed', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'difusion-awstats-diff-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test.each(SEEDS)('seed %i: totals, every day and every hour are AWStats\' own but for the listed differences', async (seed) => {
    const result = await compareSeed(seed, dir);
    expect(result.mismatches).toEqual([]);
    // The log is not trivially in order: the rule on lines out of order was exercised.
    expect(result.lines).toBeGreaterThan(1000);
  }, 60_000);

  test('across the seeds, lines out of order, malformed lines and rotations were all met', async () => {
    const results = await Promise.all([11, 12].map((seed) => compareSeed(seed, dir)));
    expect(results.flatMap((r) => r.mismatches)).toEqual([]);
    expect(results.reduce((t, r) => t + r.outOfOrder, 0)).toBeGreaterThan(0);
    expect(results.reduce((t, r) => t + r.malformed, 0)).toBeGreaterThan(0);
  }, 60_000);
});
