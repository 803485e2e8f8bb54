/**
 * `npm run diff:awstats -- --seeds 1000 [--from 1] [--requests N]`: the differential comparison against
 * AWStats 7.8 over many seeds (test/support/awstats-differential.ts). Prints each seed that differs beyond
 * the README's listed differences, and a summary; exit 1 when any does.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { compareSeed } from '../test/support/awstats-differential.js';

const { values } = parseArgs({ options: { seeds: { type: 'string', default: '100' }, from: { type: 'string', default: '1' }, requests: { type: 'string' } } });
const seeds = Number(values.seeds);
const from = Number(values.from);
const requests = values.requests === undefined ? undefined : Number(values.requests);
for (const [name, n] of [['--seeds', seeds], ['--from', from], ['--requests', requests ?? 1]] as const) {
  if (!Number.isInteger(n) || n < 1) {
    console.error(`${name} must be a whole number from 1 (got "${String(n)}")`);
    process.exit(2);
  }
}

const dir = await mkdtemp(join(tmpdir(), 'difusion-awstats-diff-'));
let failed = 0;
let lines = 0;
let outOfOrder = 0;
let malformed = 0;
const started = Date.now();
try {
  for (let seed = from; seed < from + seeds; seed++) {
    const r = await compareSeed(seed, dir, requests ? { requests } : {});
    lines += r.lines;
    outOfOrder += r.outOfOrder;
    malformed += r.malformed;
    if (r.mismatches.length > 0) {
      failed++;
      console.log(`seed ${seed}: ${r.mismatches.length} difference(s) beyond the listed ones\n  ${r.mismatches.slice(0, 5).join('\n  ')}`);
    }
    if ((seed - from + 1) % 25 === 0) console.error(`${seed - from + 1}/${seeds} seeds, ${failed} differing, ${Math.round((Date.now() - started) / 1000)} s`);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
console.log(
  `${seeds} seeds from ${from}: ${seeds - failed} equal to AWStats but for the listed differences, ${failed} not; ` +
    `${lines.toLocaleString('en')} lines, ${outOfOrder} dropped out of order, ${malformed} malformed`,
);
process.exit(failed === 0 ? 0 : 1);
