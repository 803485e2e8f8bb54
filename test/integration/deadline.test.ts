import { readFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startLab, type Lab } from './lab/sshd.js';
import { startProxy, type Proxy } from './lab/proxy.js';
import { writeCut } from '../../bench/prep-cut.js';
import { checkLive, liveCut, publish } from './support/publish.js';
import { runCli, show } from './support/cli.js';

/**
 * The switch deadline on real sshd and rsync: one difusor sits behind a thin link (a throttling proxy), so it
 * is still transferring when the others are verified. They go live without it once the deadline passes; it
 * goes live on its own later in the same run, and the summary and journal say how late.
 */

const T = 180_000;
const NOW = '2022-06-05T21:00:00-05:00';
const DEADLINE_S = 2;
const SHAPE = { casillas: 60, counted: 20, imageBytes: 20_000, seed: 'deadline' };
const CUT_A = '20220605_2015_PREP_DGO';
const CUT_B = '20220605_2030_PREP_DGO';

let lab: Lab;
let proxy: Proxy;
let cuts: string;
let registry: string;

interface Entry {
  phase: string;
  result: string;
  difusor?: string;
  cut?: string;
  detail?: { lateSeconds?: number; switchedAt?: string };
}

beforeAll(async () => {
  lab = await startLab({ difusores: 3 });
  const thin = lab.difusor('d3');
  proxy = await startProxy({ host: thin.host, port: thin.port });
  registry = await lab.writeRegistry({
    publication: { switch_deadline_s: DEADLINE_S },
    difusores: { d3: { host: proxy.host, port: proxy.port } },
  });
  cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-deadline-'));
  await writeCut(path.join(cuts, CUT_A), CUT_A, SHAPE);
  await writeCut(path.join(cuts, CUT_B), CUT_B, { ...SHAPE, counted: 40 }, path.join(cuts, CUT_A));
  expect((await publish(registry, path.join(cuts, CUT_A))).exitCode).toBe(0);
}, T);

afterAll(async () => {
  await proxy?.close();
  await lab?.stop();
  if (cuts) await rm(cuts, { recursive: true, force: true });
}, T);

test('a difusor on a thin link does not hold the others: they go live at the deadline, it goes live later in the same run', async () => {
  // ~0.9 MB to send at 64 KB/s: about 14 s, far beyond the 2 s deadline.
  proxy.throttle(64 * 1024);
  const run = await runCli(['publish', path.join(cuts, CUT_B), '--registry', registry], { DIFUSION_NOW: NOW });
  proxy.throttle(0);
  expect({ code: run.code, out: run.code === 0 ? '' : show(run) }).toEqual({ code: 0, out: '' });
  for (const d of lab.difusores) {
    expect(await liveCut(d.path)).toBe(`releases/${CUT_B}`);
    expect(await checkLive(d.path)).toEqual({ ok: true, output: '' });
  }

  const entries = (await readFile(path.join(lab.stateDir, 'journal.jsonl'), 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Entry)
    .filter((e) => e.cut === CUT_B);
  const of = (id: string, phase: string): Entry => entries.find((e) => e.difusor === id && e.phase === phase && e.result === 'ok') as Entry;
  const ms = (iso: string | undefined): number => Date.parse(iso as string);
  const [d1, d2, d3] = ['d1', 'd2', 'd3'].map((id) => of(id, 'switch'));
  expect([d1?.detail?.lateSeconds, d2?.detail?.lateSeconds]).toEqual([0, 0]);
  expect(d3?.detail?.lateSeconds).toBeGreaterThan(DEADLINE_S);
  // The journal is written in order: the fast ones went live before the thin one was even verified.
  const index = (e: Entry): number => entries.indexOf(e);
  expect(index(d1 as Entry)).toBeLessThan(index(of('d3', 'stage')));
  expect(index(d2 as Entry)).toBeLessThan(index(of('d3', 'stage')));
  const groupAt = Math.min(ms(d1?.detail?.switchedAt), ms(d2?.detail?.switchedAt));
  expect(ms(d3?.detail?.switchedAt) - groupAt).toBeGreaterThan(DEADLINE_S * 1000);

  expect(run.stdout).toMatch(/d3\s+live\s+20220605_2030_PREP_DGO\s.*late: live \d+\.\d s after the others/);
  expect(run.stdout).toMatch(/Not everyone was ready within the 2 s deadline: the ready ones switched together; late, each on its own: d3 \d+\.\d s\./);
}, T);
