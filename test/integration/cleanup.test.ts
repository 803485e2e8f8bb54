import { readdir, readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startLab, type Lab, type LabDifusor } from './lab/sshd.js';
import { startProxy, type Proxy } from './lab/proxy.js';
import { sleep } from './lab/procs.js';
import { writeCut } from '../../bench/prep-cut.js';
import { checkLive, exec, liveCut, publish } from './support/publish.js';
import { runCli, show } from './support/cli.js';
import type { PublishObserver } from '../../src/core/publish/publish.js';
import type { PublishRunResult } from '../../src/core/publish/publish-run.js';

/**
 * A run that fails on a difusor after writing there leaves its staging as it found it, before the run ends,
 * whatever the cause: a full disk, a helper that refuses a step, a transfer past its timeout, a link cut (the
 * discard then goes over a new connection), a link cut after the switch deadline, a notice that does not fit.
 * Each difusor's root is a small tmpfs of the test's own, so `df` tells whether every byte came back; and the
 * difusor still serves its previous cut whole.
 */

const T = 180_000;
const NOW = '2022-06-05T21:00:00-05:00';
const SHAPE = { casillas: 200, counted: 20, imageBytes: 20_000, seed: 'cleanup' };
const CUTS = ['20220605_2015_PREP_DGO', '20220605_2030_PREP_DGO', '20220605_2045_PREP_DGO', '20220605_2100_PREP_DGO'];
const HELPER = path.resolve('templates/difusion-helper.sh');

let lab: Lab;
let proxy: Proxy;
let cuts: string;
let registry: string;
const mounted: string[] = [];

const cutDir = (i: number): string => path.join(cuts, CUTS[i] as string);

async function mountTmpfs(dir: string, kb: number): Promise<void> {
  await exec('mount', ['-t', 'tmpfs', '-o', `size=${kb}k,mode=755`, 'tmpfs', dir]);
  mounted.push(dir);
}

/** KB in use on the difusor's filesystem, as its admin's `df` says. */
async function usedKb(d: LabDifusor): Promise<number> {
  const { stdout } = await exec('df', ['-Pk', d.path]);
  return Number((stdout.trim().split('\n')[1] as string).split(/\s+/)[2]);
}

async function duKb(dir: string): Promise<number> {
  const { stdout } = await exec('du', ['-sk', dir]);
  return Number(stdout.split('\t')[0]);
}

/** The difusor gave back every byte the failed run took, serves `cut` whole, and its staging is empty. */
async function expectAsFound(d: LabDifusor, usedBefore: number, cut: string): Promise<void> {
  expect({ id: d.id, used: await usedKb(d), staging: await readdir(path.join(d.path, '.staging')) }).toEqual({ id: d.id, used: usedBefore, staging: [] });
  expect(await liveCut(d.path)).toBe(`releases/${cut}`);
  expect(await checkLive(d.path)).toEqual({ ok: true, output: '' });
}

const outcomeOf = (r: PublishRunResult, id: string) => r.outcomes.find((o) => o.id === id);

/** Calls fn once d2's transfer has sent `bytes` more through the proxy (early transfer or not). */
function afterSent(id: string, bytes: number, fn: () => void): { observer: PublishObserver; done: Promise<void> } {
  let started = false;
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  return {
    done,
    observer: {
      phase(which, phase) {
        if (which !== id || started || (phase !== 'preparing' && phase !== 'staging')) return;
        started = true;
        void (async () => {
          const start = proxy.bytes.up;
          for (let i = 0; i < 1500 && proxy.bytes.up < start + bytes; i++) await sleep(20);
          fn();
        })().then(resolve);
      },
    },
  };
}

beforeAll(async () => {
  lab = await startLab({ difusores: 3 });
  cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-cleanup-'));
  for (const [i, cut] of CUTS.entries()) {
    // Each cut brings 60 new casillas' actas: about 2.4 MB that are not in the one before.
    await writeCut(path.join(cuts, cut), cut, { ...SHAPE, counted: SHAPE.counted + 60 * i }, i > 0 ? cutDir(i - 1) : undefined);
  }
  // d1's disk holds the first cut and about half of what the second adds; the others have room to spare.
  const first = await duKb(cutDir(0));
  await mountTmpfs(lab.difusor('d1').path, first + 1200);
  await mountTmpfs(lab.difusor('d2').path, 64 * 1024);
  await mountTmpfs(lab.difusor('d3').path, 64 * 1024);
  proxy = await startProxy({ host: lab.difusor('d2').host, port: lab.difusor('d2').port });
  registry = await lab.writeRegistry({ difusores: { d2: { host: proxy.host, port: proxy.port } } });
  const r = await publish(registry, cutDir(0));
  expect(r.outcomes.filter((o) => o.result === 'failed').map((o) => `${o.id}: ${o.error}`)).toEqual([]);
}, T);

afterAll(async () => {
  await proxy?.close();
  for (const dir of mounted) await exec('umount', ['-l', dir]).catch(() => undefined);
  await lab?.stop();
  if (cuts) await rm(cuts, { recursive: true, force: true });
}, T);

test('a disk that fills during the transfer: the run fails there, and the difusor gets every byte back before the run ends', async () => {
  const d1 = lab.difusor('d1');
  const before = await usedKb(d1);
  const r = await publish(registry, cutDir(1));
  expect(r.exitCode).toBe(3);
  expect(outcomeOf(r, 'd1')).toMatchObject({ result: 'failed', failedPhase: 'staging' });
  expect(outcomeOf(r, 'd1')?.error).toMatch(/No space left on device/);
  expect(outcomeOf(r, 'd1')?.stagingLeft).toBeUndefined();
  await expectAsFound(d1, before, CUTS[0] as string);
  for (const id of ['d2', 'd3']) expect(outcomeOf(r, id)?.result).toBe('live');
}, T);

test('a helper that refuses a step after the staging was written: discarded over the same session', async () => {
  const d3 = lab.difusor('d3');
  const refusing = path.join(lab.dir, 'difusion-helper-refusing.sh');
  // An installed helper that refuses verify (as an older one refuses an option it does not know).
  await writeFile(refusing, (await readFile(HELPER, 'utf8')).replace('\nverify)\n', '\nverify)\n\tdie "refused: verify $*"\n'));
  await writeFile(d3.authorizedKeysFile, `restrict,command="sh ${refusing} ${d3.path}" ${lab.clientPublicKey}\n`, { mode: 0o600 });
  const restricted = await lab.writeRegistry(
    { difusores: { d2: { host: proxy.host, port: proxy.port }, d3: { access: 'restricted' } } },
    path.join(lab.dir, 'restricted.yaml'),
  );
  try {
    const before = await usedKb(d3);
    const r = await publish(restricted, cutDir(2), { only: ['d3'] });
    expect(outcomeOf(r, 'd3')).toMatchObject({ result: 'failed', failedPhase: 'verifying', error: expect.stringContaining('refused: verify') });
    expect(outcomeOf(r, 'd3')?.stagingLeft).toBeUndefined();
    await expectAsFound(d3, before, CUTS[1] as string);
  } finally {
    await writeFile(d3.authorizedKeysFile, `${lab.clientPublicKey}\n`, { mode: 0o600 });
  }
}, T);

test('a transfer past its timeout: stopped, and what it sent discarded over the same session', async () => {
  const d2 = lab.difusor('d2');
  const before = await usedKb(d2);
  proxy.throttle(64 * 1024);
  try {
    const r = await publish(registry, cutDir(2), { only: ['d2'], link: { transferTimeoutMs: 1500 } });
    expect(outcomeOf(r, 'd2')).toMatchObject({ result: 'failed', failedPhase: 'staging' });
    expect(outcomeOf(r, 'd2')?.stagingLeft).toBeUndefined();
  } finally {
    proxy.throttle(0);
  }
  await expectAsFound(d2, before, CUTS[1] as string);
}, T);

test('a link cut mid-transfer: the run discards over one new short connection', async () => {
  const d2 = lab.difusor('d2');
  const before = await usedKb(d2);
  const connections = proxy.connections;
  proxy.throttle(256 * 1024);
  const cut = afterSent('d2', 300_000, () => {
    proxy.throttle(0);
    proxy.cut();
  });
  let r: PublishRunResult;
  try {
    r = await publish(registry, cutDir(2), { only: ['d2'], observer: cut.observer });
    await cut.done;
  } finally {
    proxy.throttle(0);
  }
  expect(outcomeOf(r, 'd2')).toMatchObject({ result: 'failed', failedPhase: 'staging' });
  expect(outcomeOf(r, 'd2')?.stagingLeft).toBeUndefined();
  // The helper's and rsync's connections, then the one the discard went over (rsync's own only if its master was late).
  expect(proxy.connections - connections).toBeGreaterThanOrEqual(3);
  expect(proxy.connections - connections).toBeLessThanOrEqual(4);
  await expectAsFound(d2, before, CUTS[1] as string);
}, T);

test('a link cut after the switch deadline: the others went live, the late one cleans up and keeps its cut', async () => {
  const d2 = lab.difusor('d2');
  const before = await usedKb(d2);
  const quick = await lab.writeRegistry(
    { publication: { switch_deadline_s: 1 }, difusores: { d2: { host: proxy.host, port: proxy.port } } },
    path.join(lab.dir, 'deadline.yaml'),
  );
  let othersLive = false;
  proxy.throttle(128 * 1024);
  const late = afterSent('d2', 400_000, () => {
    proxy.throttle(0);
    proxy.cut();
  });
  let r: PublishRunResult;
  try {
    r = await publish(quick, cutDir(2), {
      only: ['d2', 'd3'],
      observer: {
        phase(id, phase) {
          if (id === 'd3' && phase === 'live') othersLive = true;
          late.observer.phase(id, phase);
        },
      },
    });
    await late.done;
  } finally {
    proxy.throttle(0);
  }
  expect(othersLive).toBe(true);
  expect(r.deadlinePassed).toBe(true);
  expect(outcomeOf(r, 'd3')?.result).toBe('live');
  expect(outcomeOf(r, 'd2')).toMatchObject({ result: 'failed', failedPhase: 'staging' });
  expect(outcomeOf(r, 'd2')?.stagingLeft).toBeUndefined();
  await expectAsFound(d2, before, CUTS[1] as string);
}, T);

test('a cutoff whose notice does not fit on the disk: no staged notice left, the cut still served whole', async () => {
  const d1 = lab.difusor('d1');
  // The disk as a busy web server leaves it: full, its logs taking the last bytes.
  await exec('sh', ['-c', `dd if=/dev/zero of=${path.join(d1.path, 'relleno')} bs=64k 2>/dev/null; true`]);
  try {
    const before = await usedKb(d1);
    const run = await runCli(['cutoff', 'd1', '--reason', 'Prueba de disco lleno', '--yes', '--registry', registry], { DIFUSION_NOW: NOW });
    expect({ code: run.code, said: run.code === 1 ? '' : show(run) }).toEqual({ code: 1, said: '' });
    expect(run.stdout + run.stderr).toMatch(/No space left on device/);
    expect(run.stdout + run.stderr).not.toMatch(/staged notice is left/);
    await expectAsFound(d1, before, CUTS[0] as string);
  } finally {
    await rm(path.join(d1.path, 'relleno'), { force: true });
  }
}, T);
