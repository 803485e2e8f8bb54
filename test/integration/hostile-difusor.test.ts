import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startLab, type Lab } from './lab/sshd.js';
import { writeCut } from '../../bench/prep-cut.js';
import { checkLive, liveCut, publish } from './support/publish.js';
import { readJournal } from '../../src/core/records/journal.js';

/** What a compromised or careless difusor may have done below its path; the tool must not be led astray. */
const T = 120_000;
const SHAPE = { casillas: 30, counted: 10, imageBytes: 4000, seed: 'hostil' };
const CUTS = ['20220605_2015_PREP_DGO', '20220605_2030_PREP_DGO', '20220605_2045_PREP_DGO', '20220605_2100_PREP_DGO'];

let lab: Lab;
let cuts: string;
let registry: string;
let outside: string;

beforeAll(async () => {
  lab = await startLab({ difusores: 2 });
  registry = await lab.writeRegistry();
  cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-hostile-'));
  outside = await mkdtemp(path.join(os.tmpdir(), 'difusion-outside-'));
  await writeFile(path.join(outside, 'precious.txt'), 'do not touch\n');
  let previous: string | undefined;
  for (const [i, cut] of CUTS.entries()) {
    await writeCut(path.join(cuts, cut), cut, { ...SHAPE, counted: SHAPE.counted + 3 * i }, previous);
    previous = path.join(cuts, cut);
  }
  expect((await publish(registry, path.join(cuts, CUTS[0]))).exitCode).toBe(0);
}, T);

afterAll(async () => {
  await lab?.stop();
  await rm(cuts, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
}, T);

test('a symlink planted in the live release, pointing outside, is never followed nor deleted through', async () => {
  const d = lab.difusores[0];
  const live = path.join(d.path, 'releases', CUTS[0]);
  // Replace an unchanged image by a link out of path, and plant another link where a new file will go.
  await rm(path.join(live, 'actas', '0001-B_A.jpg'));
  await symlink(path.join(outside, 'precious.txt'), path.join(live, 'actas', '0001-B_A.jpg'));
  await symlink(outside, path.join(live, 'fuera'));

  const result = await publish(registry, path.join(cuts, CUTS[1]), { only: [d.id] });
  expect(result.outcomes[0]).toMatchObject({ result: 'live' });
  expect(await checkLive(d.path)).toEqual({ ok: true, output: '' });
  const image = await lstat(path.join(d.path, 'current', 'actas', '0001-B_A.jpg'));
  expect(image.isFile()).toBe(true);
  expect(existsSync(path.join(d.path, 'current', 'fuera'))).toBe(false);
  expect(await readFile(path.join(outside, 'precious.txt'), 'utf8')).toBe('do not touch\n');
}, T);

test('junk in releases/ is left alone and never taken for a cut', async () => {
  const d = lab.difusores[1];
  await mkdir(path.join(d.path, 'releases', 'not-a-cut'), { recursive: true });
  await writeFile(path.join(d.path, 'releases', 'not-a-cut', 'x'), 'junk');
  await symlink(outside, path.join(d.path, 'releases', '20990101_0000'));
  const result = await publish(registry, path.join(cuts, CUTS[1]), { only: [d.id] });
  expect(result.outcomes[0]).toMatchObject({ result: 'live' });
  expect(await readFile(path.join(d.path, 'releases', 'not-a-cut', 'x'), 'utf8')).toBe('junk');
  expect(await readlink(path.join(d.path, 'releases', '20990101_0000'))).toBe(outside);
  expect(await readFile(path.join(outside, 'precious.txt'), 'utf8')).toBe('do not touch\n');
}, T);

test('a `current` that is a real directory is refused, not replaced, and named in the error', async () => {
  const d = lab.difusores[1];
  const current = path.join(d.path, 'current');
  await rm(current);
  await mkdir(current);
  await writeFile(path.join(current, 'index.html'), 'the admin put this here');
  const result = await publish(registry, path.join(cuts, CUTS[2]), { only: [d.id] });
  expect(result.exitCode).toBe(1);
  expect(result.outcomes[0]).toMatchObject({ result: 'failed', failedPhase: 'switching' });
  expect(result.outcomes[0].error).toMatch(/current is not a symlink/);
  expect(await readFile(path.join(current, 'index.html'), 'utf8')).toBe('the admin put this here');
  // The admin restores the symlink; the next run goes through.
  await rm(current, { recursive: true });
  await symlink(`releases/${CUTS[1]}`, current);
  const again = await publish(registry, path.join(cuts, CUTS[2]), { only: [d.id] });
  expect(again.outcomes[0]).toMatchObject({ result: 'live' });
  expect(await liveCut(d.path)).toBe(`releases/${CUTS[2]}`);
}, T);

test('a `current` pointing outside path is not trusted as a base and is replaced by the switch', async () => {
  const d = lab.difusores[0];
  const current = path.join(d.path, 'current');
  await rm(current);
  await symlink(outside, current);
  const result = await publish(registry, path.join(cuts, CUTS[3]), { only: [d.id] });
  expect(result.outcomes[0]).toMatchObject({ result: 'live' });
  expect(result.outcomes[0]?.previous).toBeUndefined();
  // Nothing counts as live: the base is the newest release kept under releases/, never what current points to.
  const staged = (await readJournal(lab.stateDir)).filter((e) => e.difusor === d.id && e.cut === CUTS[3] && e.phase === 'stage');
  expect(staged.at(-1)?.detail).toMatchObject({ base: CUTS[1] });
  expect(await liveCut(d.path)).toBe(`releases/${CUTS[3]}`);
  expect(await checkLive(d.path)).toEqual({ ok: true, output: '' });
  expect(await readFile(path.join(outside, 'precious.txt'), 'utf8')).toBe('do not touch\n');
}, T);
