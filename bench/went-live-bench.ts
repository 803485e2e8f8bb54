/**
 * What one round of `probe --journal FILE` costs to reckon when each cut went live, against reading both journals
 * whole every round: two journals of WENT_LIVE_BENCH_ENTRIES entries each (30 difusores, a switch in ten, 300-byte
 * details; interleaved in time), then 15 rounds each appending 20 entries to both. Every round the incremental
 * fold is checked equal to wentLiveTimes over mergeJournals of both whole journals.
 * WENT_LIVE_BENCH_QUIET=1: this host's journal holds 10 entries and stays so (a standby that only probes), so the
 * copy's switches wait for it, up to went-live.ts's cap.
 *   node --import ./scripts/register-ts.mjs bench/went-live-bench.ts      (WENT_LIVE_BENCH_ENTRIES=20000)
 */
import { readdirSync, statSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { readWentLive, wentLiveFor } from '../src/core/probe/went-live.js';
import { wentLiveTimes } from '../src/core/probe/probe.js';
import { readJournalFile, type JournalEntry } from '../src/core/records/journal.js';
import { mergeJournals } from '../src/core/records/merged-journal.js';

const N = Number(process.env.WENT_LIVE_BENCH_ENTRIES ?? 20000);
const QUIET = process.env.WENT_LIVE_BENCH_QUIET === '1';
const IDS = Array.from({ length: 30 }, (_, i) => `d${i}`);
let seq = 0;
const base = Date.UTC(2022, 5, 6, 2, 0);
function e(host: string, i: number): JournalEntry {
  seq++;
  const c = Math.floor(i / 400);
  const cut = `20220605_${String(20 + Math.floor(c / 4)).padStart(2, '0')}${String((c % 4) * 15).padStart(2, '0')}_PREP`;
  const phase = i % 10 === 0 ? 'switch' : 'transfer';
  return { seq, at: new Date(base + i * 1000 + (host === 'b' ? 500 : 0)).toISOString(), run: 'r', operator: 'o', host, command: 'publish', phase, result: 'ok', cut, difusor: IDS[i % 30], prev: '0'.repeat(64), detail: { pad: 'x'.repeat(300) } };
}
const line = (x: JournalEntry) => JSON.stringify(x) + '\n';
const dir = await mkdtemp(path.join(os.tmpdir(), 'wl-bench-'));
await mkdir(path.join(dir, 'rounds'));
const own = path.join(dir, 'journal.jsonl');
const copy = path.join(dir, 'copy.jsonl');
await writeFile(own, Array.from({ length: QUIET ? 10 : N }, (_, i) => line(e('a', i))).join(''));
await writeFile(copy, Array.from({ length: N }, (_, i) => line(e('b', i))).join(''));
const t = async (f: () => Promise<unknown>) => { const s = performance.now(); await f(); return performance.now() - s; };
const cold = await t(() => readWentLive(dir, [copy]));
const inc: number[] = [];
const whole: number[] = [];
let next = N;
for (let r = 0; r < 15; r++) {
  if (!QUIET) await appendFile(own, Array.from({ length: 20 }, (_, k) => line(e('a', next + k))).join(''));
  await appendFile(copy, Array.from({ length: 20 }, (_, k) => line(e('b', next + k))).join(''));
  next += 20;
  let fold;
  inc.push(await t(async () => { fold = await readWentLive(dir, [copy]); }));
  let merged: JournalEntry[] = [];
  whole.push(await t(async () => { merged = mergeJournals([{ label: 'a', entries: await readJournalFile(own) }, { label: 'b', entries: await readJournalFile(copy) }]); for (const id of IDS) wentLiveTimes(merged, id); }));
  for (const id of IDS) if (JSON.stringify([...wentLiveFor(fold!, id)]) !== JSON.stringify([...wentLiveTimes(merged, id)])) throw new Error(`differ ${id}`);
}
const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const size = statSync(copy).size;
const keptBytes = readdirSync(path.join(dir, 'rounds')).map((f) => statSync(path.join(dir, 'rounds', f)).size);
console.log(JSON.stringify({ quiet: QUIET, keptBytes, entriesEach: N, mbEach: (size / 1e6).toFixed(1), coldMs: cold.toFixed(0), roundMedianMs: med(inc).toFixed(1), wholeMedianMs: med(whole).toFixed(0), ratio: (med(whole) / med(inc)).toFixed(0) }));
await rm(dir, { recursive: true, force: true });
