import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startLab, type Lab } from './lab/sshd.js';
import { writeCut } from '../../bench/prep-cut.js';
import { checkLive, liveCut, snapshot } from './support/publish.js';
import { runCli, show, spawnCli, type CliExit } from './support/cli.js';

/** One run per state dir, and the law's opening hour, both through the real CLI. */

const T = 120_000;
const SHAPE = { casillas: 200, counted: 100, imageBytes: 20_000, seed: 'lock' };
const CUT_A = '20220605_2015_PREP_DGO';
const CUT_B = '20220605_2030_PREP_DGO';
const CUT_OPEN = '20220605_2000';

let lab: Lab;
let cuts: string;
let registry: string;

beforeAll(async () => {
  lab = await startLab({ difusores: 3 });
  registry = await lab.writeRegistry();
  cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-lock-'));
  await writeCut(path.join(cuts, CUT_OPEN), CUT_OPEN, { ...SHAPE, counted: 0 });
  await writeCut(path.join(cuts, CUT_A), CUT_A, SHAPE);
  await writeCut(path.join(cuts, CUT_B), CUT_B, { ...SHAPE, counted: 150 }, path.join(cuts, CUT_A));
}, T);

afterAll(async () => {
  await lab?.stop();
  if (cuts) await rm(cuts, { recursive: true, force: true });
}, T);

describe('the publication window, through the CLI', () => {
  test('a run one second before the opening exits 4, says the local time, and changes nothing', async () => {
    const before = await Promise.all(lab.difusores.map((d) => snapshot(d.path)));
    const run = await runCli(['publish', path.join(cuts, CUT_OPEN), '--registry', registry], {
      DIFUSION_NOW: '2022-06-05T19:59:59-05:00',
    });
    expect({ code: run.code, out: run.code === 4 ? '' : show(run) }).toEqual({ code: 4, out: '' });
    expect(run.stderr).toMatch(/has not opened/);
    expect(run.stderr).toMatch(/19:59:59/);
    expect(run.stderr).toMatch(/America\/Mexico_City/);
    expect(await Promise.all(lab.difusores.map((d) => snapshot(d.path)))).toEqual(before);
  }, T);

  test('the opening second itself is allowed for a cut stamped 20:00', async () => {
    const run = await runCli(['publish', path.join(cuts, CUT_OPEN), '--registry', registry], {
      DIFUSION_NOW: '2022-06-05T20:00:00-05:00',
    });
    expect({ code: run.code, out: run.code === 0 ? '' : show(run) }).toEqual({ code: 0, out: '' });
    for (const d of lab.difusores) {
      expect(await liveCut(d.path)).toBe(`releases/${CUT_OPEN}`);
      expect(await checkLive(d.path)).toEqual({ ok: true, output: '' });
    }
  }, T);
});

describe('one run at a time per state dir', () => {
  test('two CLI runs started together: one publishes, the other exits 5 naming the holder', async () => {
    const env = { DIFUSION_NOW: '2022-06-05T21:00:00-05:00' };
    const runs = [0, 1].map(() => spawnCli(['publish', path.join(cuts, CUT_A), '--registry', registry], env));
    // Whichever prints first holds the lock (taken before the manifest is built and the first line printed).
    // Pausing it keeps the race honest on a slow machine: the other cannot finish before the holder does.
    const first = await Promise.race(
      runs.map((r, i) =>
        r.line(/./).then(
          () => ({ holder: i }),
          () => ({ holder: 1 - i }),
        ),
      ),
    );
    const holder = runs[first.holder];
    const other = runs[1 - first.holder];
    holder.signal('SIGSTOP');
    let refused: CliExit;
    try {
      refused = await other.exited;
    } finally {
      holder.signal('SIGCONT');
    }
    const done = await holder.exited;
    expect({ code: done.code, out: done.code === 0 ? '' : show(done) }).toEqual({ code: 0, out: '' });
    expect({ code: refused.code, out: refused.code === 5 ? '' : show(refused) }).toEqual({ code: 5, out: '' });
    const message = refused.stderr.replace(/\s+/g, ' ');
    expect(message).toMatch(/another run holds the lock/);
    expect(message).toContain(`pid ${holder.pid}`);
    expect(message).toContain(`@${os.hostname()}`);
    expect(message).toContain(`${os.userInfo().username}@`);
    expect(message).toMatch(/since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/);
    for (const d of lab.difusores) {
      expect(await liveCut(d.path)).toBe(`releases/${CUT_A}`);
      expect(await checkLive(d.path)).toEqual({ ok: true, output: '' });
    }
  }, T);
});
