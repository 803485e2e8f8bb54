import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startLab, type Lab } from './lab/sshd.js';
import { writeCut } from '../../bench/prep-cut.js';
import { IN_WINDOW, publish, liveCut } from './support/publish.js';
import { loadRegistry } from '../../src/core/registry/registry.js';
import { runPublish } from '../../src/core/publish/publish-run.js';
import { openJournal, newRunId } from '../../src/core/records/journal.js';
import { createConnector } from '../../src/adapters/difusor.js';
import { fixedClock } from '../../src/adapters/clock.js';
import { ROOT, show, spawnCli } from './support/cli.js';
import type { PreflightReport } from '../../src/core/publish/preflight.js';

/**
 * preflight on the standby of the alternate site (issue 17 item 5): host a published three cuts (the newest to one
 * difusor of three) and a run of a still holds another difusor's lease; host b, with an empty state directory, asks
 * preflight --latest what it would do on takeover: each difusor's lease holder, its live cut, and what b would send.
 */

const T = 240_000;
const SHAPE = { casillas: 60, counted: 30, imageBytes: 4000, seed: 'standby' };
const CUTS = ['20220605_2015_PREP', '20220605_2030_PREP', '20220605_2045_PREP'];
const NEWEST = CUTS[2] as string;
const exec = promisify(execFile);

let lab: Lab;
let cuts: string;
let registryA: string;
let registryB: string;
let stateB: string;

/** The cut a difusor serves (current -> releases/<cut>). */
async function serving(): Promise<string[]> {
  return Promise.all(lab.difusores.map(async (d) => (await liveCut(d.path)).replace(/^releases\//, '')));
}

/** The helper itself on the difusor's directory, as a run of host `host` would ask it over SSH. */
async function helper(root: string, args: string[]): Promise<string> {
  return (await exec('sh', [path.join(ROOT, 'templates', 'difusion-helper.sh'), root, ...args])).stdout;
}

beforeAll(async () => {
  lab = await startLab({ difusores: 3 });
  cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-standby-'));
  let previous: string | undefined;
  for (const [i, cut] of CUTS.entries()) {
    await writeCut(path.join(cuts, cut), cut, { ...SHAPE, counted: 30 + 10 * i }, previous);
    previous = path.join(cuts, cut);
  }
  registryA = await lab.writeRegistry({ publication: { state_dir: path.join(lab.dir, 'state-a') } }, path.join(lab.dir, 'difusores-a.yaml'));
  stateB = path.join(lab.dir, 'state-b');
  // lease_s at its most: `lease show` counts a claim as at most lease_s past its writing, as a take would.
  registryB = await lab.writeRegistry({ publication: { state_dir: stateB, lease_s: 3600 } }, path.join(lab.dir, 'difusores-b.yaml'));
  const [d1, d2, d3] = lab.difusores.map((d) => d.id) as [string, string, string];
  for (const cut of CUTS.slice(0, 2)) expect((await publish(registryA, path.join(cuts, cut))).exitCode).toBe(0);
  expect((await publish(registryA, path.join(cuts, NEWEST), { only: [d1] })).exitCode).toBe(0);
  expect(await serving()).toEqual([NEWEST, CUTS[1], CUTS[1]]);
  // A run of a still at work on d2 (an hour's lease: no expiry can pass during the test, however slow), and a
  // lease under b's own name on d3 (a run of b killed earlier).
  expect(await helper(lab.difusor(d2).path, ['lease', 'take', 'a', 'run-of-a', '3600'])).toMatch(/^taken \d+ \d+$/m);
  expect(await helper(lab.difusor(d3).path, ['lease', 'take', 'b', 'dead-run-of-b', '3600'])).toMatch(/^taken \d+ \d+$/m);
}, T);

afterAll(async () => {
  await lab?.stop();
  if (cuts) await rm(cuts, { recursive: true, force: true });
}, T);

describe('preflight on a standby with an empty state directory', () => {
  test('names each lease holder, each live cut, and sends nothing where the newest is live', async () => {
    expect(await readdir(stateB).catch(() => [])).toEqual([]);
    const holders = await Promise.all(lab.difusores.map((d) => readFile(path.join(d.path, '.lease', 'holder'), 'utf8').catch(() => '')));
    const run = spawnCli(['preflight', '--latest', cuts, '--registry', registryB, '--probe-mb', '0', '--json'], { DIFUSION_HOST: 'b' });
    const exit = await run.exited;
    const report = JSON.parse(exit.stdout) as PreflightReport;
    const [r1, r2, r3] = report.difusores;

    // d1: free, serving the newest: nothing to send.
    expect(r1?.takeover).toMatchObject({ lease: { state: 'free' }, leaseDetail: 'free', live: NEWEST, send: { cut: NEWEST, kind: 'up-to-date', files: 0, bytes: 0 } });
    // d2: a's live run holds it: left alone.
    expect(r2?.takeover).toMatchObject({ lease: { state: 'held', holder: { host: 'a', run: 'run-of-a' }, mine: false }, live: CUTS[1], send: { kind: 'left-alone', plan: 'new-release' } });
    expect(r2?.takeover?.leaseDetail).toMatch(/^held by a \(run run-of-a\) since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(UTC[-+]?\d*\), expires in \d+ s \(the difusor's clock\)$/);
    expect(r2?.takeover?.send?.detail).toMatch(new RegExp(`^left alone: held by a \\(otherwise: a new release ${NEWEST}: `));
    // d3: serves the cut before; a lease under b's own name is no reason to stop: a new release, with its counts.
    expect(r3?.takeover).toMatchObject({ lease: { state: 'held', holder: { host: 'b' }, mine: true }, live: CUTS[1], send: { kind: 'new-release' } });
    const send = r3?.takeover?.send;
    const manifest = await readFile(path.join(lab.difusor(lab.difusores[0]?.id as string).path, 'releases', NEWEST, 'MANIFEST.sha256'), 'utf8');
    const entries = manifest.split('\n').filter(Boolean).length;
    expect(send?.files).toBeGreaterThan(0);
    expect(send?.bytes).toBeGreaterThan(0);
    // Sent or linked from the live release, every file once; b, which never published that release, knows its
    // manifest from its own copy of the cut (same digest), so the unchanged files are linked, not sent.
    expect((send?.files ?? 0) + (send?.linked ?? 0)).toBe(entries);
    expect(send?.linked).toBeGreaterThan(0);
    expect(send?.base).toBe(CUTS[1]);
    expect(send?.detail).toMatch(new RegExp(`^a new release ${NEWEST}: ${send?.files} files / ${send?.bytes} bytes \\(linked: ${send?.linked} files?`));

    // Information, not a failure: whatever fails is a check of its own (the lab has no web server on its URLs).
    for (const r of report.difusores) expect(r.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(r.checks.filter((c) => !c.ok && c.name === 'http').map((c) => c.name));
    expect(exit.code).toBe(report.exitCode);
    // Nothing was written on a difusor: the leases and the live cuts are as they were.
    expect(await Promise.all(lab.difusores.map((d) => readFile(path.join(d.path, '.lease', 'holder'), 'utf8').catch(() => '')))).toEqual(holders);
    expect(await serving()).toEqual([NEWEST, CUTS[1], CUTS[1]]);
  }, T);

  test('the human output has a takeover section naming the same', async () => {
    const exit = await spawnCli(['preflight', '--latest', cuts, '--registry', registryB, '--probe-mb', '0'], { DIFUSION_HOST: 'b' }).exited;
    const [d1, d2, d3] = lab.difusores.map((d) => d.id) as [string, string, string];
    const out = exit.stdout;
    expect({ out, err: exit.stderr }).toMatchObject({ out: expect.stringContaining(`takeover (as this host, b, publishing ${NEWEST}):`) });
    const section = out.slice(out.indexOf('takeover (as this host'));
    if (process.env.STANDBY_SHOW) process.stderr.write(out);
    expect(section).toMatch(new RegExp(`${d1} +lease: free\\n +serves: ${NEWEST}\\n +would send: up to date`));
    expect(section).toMatch(new RegExp(`${d2} +lease: held by a \\(run run-of-a\\)[^\\n]*\\n +serves: ${CUTS[1]}\\n +would send: left alone: held by a`));
    expect(section).toMatch(new RegExp(`${d3} +lease: held by b \\(run dead-run-of-b, this host\\)[^\\n]*\\n +serves: ${CUTS[1]}\\n +would send: a new release ${NEWEST}: \\d+ files`));
    if (!section.includes(d3)) throw new Error(show(exit));
  }, T);

  test("b's first publish --latest then does what preflight said, difusor by difusor", async () => {
    const exit = await spawnCli(['preflight', '--latest', cuts, '--registry', registryB, '--probe-mb', '0', '--json'], { DIFUSION_HOST: 'b' }).exited;
    const said = (JSON.parse(exit.stdout) as PreflightReport).difusores;
    const loaded = await loadRegistry(registryB);
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
    const result = await runPublish(
      { registry: loaded.registry, cutArg: cuts, latest: true, only: [], dryRun: false, simulacro: false, host: 'b' },
      { clock: fixedClock(IN_WINDOW), connect: (reg, targets) => createConnector(reg, targets), openJournal, newRunId: () => newRunId() },
    );
    const did = lab.difusores.map((d) => result.outcomes.find((o) => o.id === d.id));
    expect(did.map((o) => [o?.result, o?.leftAlone])).toEqual([
      ['up-to-date', undefined],
      [expect.anything(), 'held'],
      ['live', undefined],
    ]);
    expect(said.map((r) => r.takeover?.send?.kind)).toEqual(['up-to-date', 'left-alone', 'new-release']);
    // Where b sent something, exactly what preflight said it would send.
    const d3 = did[2];
    expect({ files: d3?.filesToSend, bytes: d3?.bytesToSend, linked: d3?.filesLinked }).toEqual({
      files: said[2]?.takeover?.send?.files,
      bytes: said[2]?.takeover?.send?.bytes,
      linked: said[2]?.takeover?.send?.linked,
    });
    expect(await serving()).toEqual([NEWEST, CUTS[1], NEWEST]);
  }, T);
});
