import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { acquireLock, isLockHeld } from '../../src/core/records/lock.js';
import { readJournal, verifyJournal } from '../../src/core/records/journal.js';
import { keepProbe, type ProbeReport, type ProbeRow } from '../../src/core/probe/probe.js';
import { StateStore } from '../../src/core/records/state.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'difusion-probe-keep-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const row = (id: string, ok: boolean): ProbeRow => ({
  id,
  name: id,
  registryStatus: 'active',
  ok,
  kinds: ok ? [] : ['lag'],
  cut: '20220605_2015_PREP_DGO',
  lagSeconds: ok ? 0 : 300,
  filesChecked: 11,
  differing: [],
  bytes: 100,
  totalMs: 5,
  warnings: [],
});
const report = (at: string, rows: ProbeRow[]): ProbeReport => ({ at, maxLagSeconds: 60, full: false, difusores: rows, exitCode: rows.every((r) => r.ok) ? 0 : 6 });
const journal = (run: string) => ({ run, operator: 'op@host', command: 'probe --max-lag 60' });

test('a publish holding the lock past the wait: the incidents wait in the state dir, the next probe journals them first, chain intact', async () => {
  const state = new StateStore(dir);
  const lock = await acquireLock(dir, { runId: 'publish-run', command: 'publish --latest /srv/cortes' });
  expect(isLockHeld(lock)).toBe(false);
  const first = await keepProbe(report('2022-06-06T01:40:00.000Z', [row('d1', false), row('d2', true)]), { state, journal: journal('probe-1'), journalThisRun: true, lockWaitMs: 300 }, async () => undefined);
  expect(first.journaled).toBe(0);
  expect(first.deferredBy).toMatch(/publish --latest/);
  expect(await readJournal(dir)).toEqual([]);
  // The last results are written regardless, one file per difusor and nothing else in probe/.
  expect((await readdir(path.join(dir, 'probe'))).sort()).toEqual(['d1.json', 'd2.json']);
  expect(JSON.parse(await readFile(path.join(dir, 'probe', 'd1.json'), 'utf8'))).toMatchObject({ run: 'probe-1', row: { ok: false, kinds: ['lag'] } });

  if (!isLockHeld(lock)) await lock.release();
  const second = await keepProbe(report('2022-06-06T01:45:00.000Z', [row('d1', true), row('d2', true)]), { state, journal: journal('probe-2'), journalThisRun: true, lockWaitMs: 300 });
  expect(second).toEqual({ journaled: 3 });
  const entries = await readJournal(dir);
  expect(entries.map((e) => [e.result, e.difusor ?? null, e.detail?.probedAt])).toEqual([
    ['failed', 'd1', '2022-06-06T01:40:00.000Z'],
    ['info', null, '2022-06-06T01:40:00.000Z'],
    ['info', null, '2022-06-06T01:45:00.000Z'],
  ]);
  expect(await state.readUnjournaled()).toEqual([]);
  expect((await verifyJournal(dir)).ok).toBe(true);
});

test('a watch round whose failures did not change journals nothing, and still keeps the results', async () => {
  const state = new StateStore(dir);
  const kept = await keepProbe(report('2022-06-06T01:40:00.000Z', [row('d1', false)]), { state, journal: journal('w'), journalThisRun: false, lockWaitMs: 300 });
  expect(kept).toEqual({ journaled: 0 });
  expect(await readJournal(dir)).toEqual([]);
  expect(await state.readProbe('d1')).toMatchObject({ row: { ok: false } });
});
