import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startWanLab, type WanLab } from './lab/wan.js';
import { writeCut } from '../../bench/prep-cut.js';
import { runCli, show } from './support/cli.js';
import type { PreflightReport } from '../../src/core/publish/preflight.js';

/**
 * preflight's speed check on a lab WAN: d1 and d2 share a 40 Mbit/s uplink, d3 also sits on 2 Mbit/s of its own.
 * The newest cut adds ~19 MB of actas: at 2 Mbit/s that is over a minute, so d3 is named and the exit is 3.
 */

const T = 180_000;
const SHAPE = { casillas: 80, imageBytes: 120_000, seed: 'speed' };
const CUT_A = '20220605_2015_PREP_DGO';
const CUT_B = '20220605_2030_PREP_DGO';

let lab: WanLab;
let cuts: string;
let registry: string;

beforeAll(async () => {
  lab = await startWanLab({ difusores: 3, shape: { uplinkMbit: 40, thin: { id: 'd3', mbit: 2 } } });
  registry = await lab.writeRegistry();
  cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-speed-'));
  await writeCut(path.join(cuts, CUT_A), CUT_A, { ...SHAPE, counted: 0 });
  await writeCut(path.join(cuts, CUT_B), CUT_B, { ...SHAPE, counted: 80 }, path.join(cuts, CUT_A));
}, T);

afterAll(async () => {
  await lab?.stop();
  if (cuts) await rm(cuts, { recursive: true, force: true });
}, T);

test('names the difusor whose link cannot bring the newest delta live within a minute, exit 3; leaves nothing behind', async () => {
  const run = await runCli(['preflight', '--latest', cuts, '--registry', registry, '--probe-mb', '1', '--json']);
  expect({ code: run.code }).toEqual({ code: 3 });
  const report = JSON.parse(run.stdout) as PreflightReport;
  const speed = (id: string) => report.difusores.find((r) => r.id === id);
  for (const id of ['d1', 'd2']) {
    expect({ id, check: speed(id)?.checks.find((c) => c.name === 'speed') }).toEqual({
      id,
      check: { name: 'speed', ok: true, detail: expect.stringMatching(/Mbit\/s: the newest cut's delta \(19\.\d MB\) would be live in ~\d+(\.\d)? s(; with compress: true it would send .*)?$/) },
    });
    expect(speed(id)?.speed?.predictedSeconds).toBeLessThan(60);
  }
  const thin = speed('d3');
  expect(thin?.ready).toBe(false);
  expect(thin?.checks.find((c) => c.name === 'speed')).toMatchObject({ ok: false, detail: expect.stringMatching(/beyond the 60 s rule/) });
  // 2 Mbit/s is 250 kB/s; the estimate must see the thin link, not the uplink.
  expect(thin?.speed?.bytesPerSecond).toBeLessThan(400_000);
  expect(thin?.speed?.predictedSeconds).toBeGreaterThan(60);
  for (const d of lab.difusores) {
    const staging = path.join(d.path, '.staging');
    expect({ id: d.id, left: existsSync(staging) ? await readdir(staging) : [] }).toEqual({ id: d.id, left: [] });
    expect(existsSync(path.join(d.path, 'current'))).toBe(false);
  }
  expect(show(run)).not.toMatch(/Error:/);
}, T);
