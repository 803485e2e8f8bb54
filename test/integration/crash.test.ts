import { existsSync, readdirSync } from 'node:fs';
import { readdir, readFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startLab, type Lab } from './lab/sshd.js';
import { descendants, isAlive, sleep } from './lab/procs.js';
import { writeCut } from '../../bench/prep-cut.js';
import { checkLive, exec, liveCut, publish } from './support/publish.js';
import { runCli, show, spawnCli, type CliRun } from './support/cli.js';

/**
 * The crash drill: the real CLI killed with SIGKILL (node, ssh and rsync at once, as a power cut or the OOM
 * killer would) at the worst moments. Whatever the moment, every difusor serves one whole cut, old or new,
 * and the next run takes the dead run's lock over and finishes the job.
 */

const T = 120_000;
const NOW = '2022-06-05T21:00:00-05:00';
const BIG = { casillas: 400, counted: 400, imageBytes: 50_000 };
const CUT_A = '20220605_2015_PREP_DGO';
const CUT_B = '20220605_2030_PREP_DGO';
const CUT_C = '20220605_2045_PREP_DGO';
const CUT_D = '20220605_2100_PREP_DGO';

let lab: Lab;
let cuts: string;
let registry: string;

interface JournalLine {
  phase: string;
  run: string;
  detail?: { tookOverFrom?: { pid?: number }; reason?: string };
}

async function journal(): Promise<JournalLine[]> {
  const text = await readFile(path.join(lab.stateDir, 'journal.jsonl'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as JournalLine);
}

/** Sessions left on the difusors by the killed client (a helper step mid-flight) finish or die on EOF. */
async function sessionsSettle(): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const left = lab.difusores.flatMap((d) => descendants(d.sshdPid)).filter((p) => isAlive(p));
    if (left.length === 0) return;
    await sleep(100);
  }
}

/** Every difusor serves one whole cut (one of `allowed`) that passes sha256sum -c. */
async function expectWhole(allowed: string[]): Promise<Record<string, string>> {
  const served: Record<string, string> = {};
  for (const d of lab.difusores) {
    const target = await liveCut(d.path);
    expect(allowed.map((c) => `releases/${c}`)).toContain(target);
    expect({ id: d.id, ...(await checkLive(d.path)) }).toEqual({ id: d.id, ok: true, output: '' });
    served[d.id] = target.replace(/^releases\//, '');
  }
  return served;
}

/**
 * Stops every process of a difusor's sshd sessions. One that ended between the listing and the signal
 * (a short helper step) is simply gone: not an error.
 */
function freeze(sshdPid: number): number[] {
  return descendants(sshdPid).filter((p) => signalIfThere(p, 'SIGSTOP'));
}

function signalIfThere(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    return false;
  }
}

/** The killed run is gone and reaped, so its pid no longer answers; its lock file stays behind. */
async function kill(run: CliRun): Promise<void> {
  run.signal('SIGKILL');
  const exit = await run.exited;
  expect(exit.signal).toBe('SIGKILL');
}

/** A normal CLI run after the crash: takes the stale lock over, exits 0, every difusor live on `cut`. */
async function rerunAndCheck(cut: string, killedPid: number): Promise<void> {
  await sessionsSettle();
  const before = (await journal()).length;
  const rerun = await runCli(['publish', path.join(cuts, cut), '--registry', registry], { DIFUSION_NOW: NOW });
  expect({ code: rerun.code, out: rerun.code === 0 ? '' : show(rerun) }).toEqual({ code: 0, out: '' });
  for (const d of lab.difusores) {
    expect(await liveCut(d.path)).toBe(`releases/${cut}`);
    expect(await checkLive(d.path)).toEqual({ ok: true, output: '' });
    expect(await readdir(path.join(d.path, '.staging'))).toEqual([]);
  }
  const added = (await journal()).slice(before);
  const takeover = added.filter((e) => e.phase === 'lock');
  expect(takeover).toHaveLength(1);
  expect(takeover[0].detail?.tookOverFrom?.pid).toBe(killedPid);
  expect(takeover[0].detail?.reason).toMatch(new RegExp(`pid ${killedPid}\\b.*no longer running`));
}

beforeAll(async () => {
  lab = await startLab({ difusores: 3 });
  registry = await lab.writeRegistry();
  cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-crash-'));
  await writeCut(path.join(cuts, CUT_A), CUT_A, { ...BIG, counted: 100, seed: 'crash' });
  await writeCut(path.join(cuts, CUT_B), CUT_B, { ...BIG, seed: 'crash' }, path.join(cuts, CUT_A));
  // Later cuts share the actas with the one before (as a producer's packaging does); every page changes.
  await writeCut(path.join(cuts, CUT_C), CUT_C, { ...BIG, seed: 'crash' }, path.join(cuts, CUT_B));
  await writeCut(path.join(cuts, CUT_D), CUT_D, { ...BIG, seed: 'crash' }, path.join(cuts, CUT_C));
  // The old cut every difusor serves before the drill.
  const first = await publish(registry, path.join(cuts, CUT_A));
  expect(first.outcomes.filter((o) => o.result === 'failed').map((o) => `${o.id}: ${o.failedPhase}: ${o.error}`)).toEqual([]);
  expect(first.exitCode).toBe(0);
}, T);

afterAll(async () => {
  await lab?.stop();
  if (cuts) await rm(cuts, { recursive: true, force: true });
}, T);

describe('a publish killed with SIGKILL, then run again', () => {
  test('killed during the transfer: everyone keeps the old cut; the rerun takes the lock over and finishes', async () => {
    const run = spawnCli(['publish', path.join(cuts, CUT_B), '--registry', registry], { DIFUSION_NOW: NOW });
    await run.line(/\sstaging\s/);
    // rsync may start before prepare built the staging (into this run's incoming directory): kill once bytes
    // have landed under .staging somewhere.
    const staged = (d: { path: string }): boolean =>
      existsSync(path.join(d.path, '.staging', CUT_B)) ||
      (existsSync(path.join(d.path, '.staging')) && readdirSync(path.join(d.path, '.staging')).some((n) => n.startsWith(`${CUT_B}.in-`)));
    const landed = (): boolean => lab.difusores.some(staged);
    for (let i = 0; i < 600 && !landed(); i++) await sleep(20);
    await kill(run);
    expect(await expectWhole([CUT_A])).toEqual(Object.fromEntries(lab.difusores.map((d) => [d.id, CUT_A])));
    // The transfer it was in left its half-filled staging (or what rsync had received alongside it) behind; the
    // rerun must clean it, never serve it.
    expect(lab.difusores.some(staged)).toBe(true);
    await rerunAndCheck(CUT_B, run.pid);
  }, T);

  test('killed between verify and switch: the verified release is never served half-way', async () => {
    const [, , slow] = lab.difusores;
    const run = spawnCli(['publish', path.join(cuts, CUT_C), '--registry', registry], { DIFUSION_NOW: NOW });
    // One difusor is frozen while it stages, so nobody can switch (switching waits for every difusor's verdict, up
    // to the 20 s switch deadline)
    // and the kill lands after the others verified and promoted their release.
    await run.line(new RegExp(`\\s${slow.id}\\s+staging\\s`));
    const frozen = freeze(slow.sshdPid);
    try {
      await run.line(/\sready(\s|$)/);
      await kill(run);
    } finally {
      for (const p of frozen) if (isAlive(p)) signalIfThere(p, 'SIGKILL');
    }
    expect(await expectWhole([CUT_B])).toEqual(Object.fromEntries(lab.difusores.map((d) => [d.id, CUT_B])));
    const promoted = lab.difusores.filter((d) => existsSync(path.join(d.path, 'releases', CUT_C)));
    expect(promoted.length).toBeGreaterThan(0);
    await rerunAndCheck(CUT_C, run.pid);
  }, T);

  test('killed mid-switch across difusores: some on the new cut, the rest on the old, each whole', async () => {
    const [, , held] = lab.difusores;
    // The held difusor already has the new release (an earlier run died before its switch), so it is ready at
    // once while the others still transfer; its session is frozen there, so its switch is still pending when
    // the others go live.
    expect((await publish(registry, path.join(cuts, CUT_D), { only: [held.id] })).exitCode).toBe(0);
    await exec('ln', ['-sfn', `releases/${CUT_C}`, path.join(held.path, '.current.test')]);
    await exec('mv', ['-T', path.join(held.path, '.current.test'), path.join(held.path, 'current')]);
    expect(await liveCut(held.path)).toBe(`releases/${CUT_C}`);

    const run = spawnCli(['publish', path.join(cuts, CUT_D), '--registry', registry], { DIFUSION_NOW: NOW });
    await run.line(new RegExp(`\\s${held.id}\\s+ready\\s+already staged`));
    const frozen = freeze(held.sshdPid);
    try {
      await run.line(/\slive(\s|$)/);
      await kill(run);
    } finally {
      // The frozen session dies with its client: its queued switch must not run after the kill.
      for (const p of frozen) if (isAlive(p)) signalIfThere(p, 'SIGKILL');
    }
    const served = await expectWhole([CUT_C, CUT_D]);
    expect(Object.values(served)).toContain(CUT_D);
    expect(served[held.id]).toBe(CUT_C);
    await rerunAndCheck(CUT_D, run.pid);
  }, T);
});
