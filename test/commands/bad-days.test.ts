import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { format } from 'node:util';
import { run } from '@oclif/core';
import { captureOutput } from '@oclif/test';
import { preloadCommands } from './support.js';
import { writeCut } from '../../bench/prep-cut.js';

/**
 * Bad input and bad days on the publication host, through oclif on `transport: local` difusores: a rollback to
 * a cut this host never published, a state directory on a full disk (a real tmpfs), and a set clock that every
 * line of the run shows.
 */

const T = 60_000;
const NOW = '2022-06-05T21:10:00-05:00';
const SHAPE = { casillas: 6, counted: 2, imageBytes: 800, seed: 'bad-days' };
const CUT_1 = '20220605_2015';
const CUT_2 = '20220605_2030';
const CUT_3 = '20220605_2045';

let cuts: string;
let work: string;
let stateDir: string;
let registry: string;
const saved = { env: process.env.DIFUSION_NOW, log: console.log, error: console.error };

beforeAll(async () => {
  await preloadCommands();
  cuts = mkdtempSync(path.join(tmpdir(), 'difusion-bad-cuts-'));
  await writeCut(path.join(cuts, CUT_1), CUT_1, SHAPE);
  await writeCut(path.join(cuts, CUT_2), CUT_2, { ...SHAPE, counted: 4 }, path.join(cuts, CUT_1));
  await writeCut(path.join(cuts, CUT_3), CUT_3, { ...SHAPE, counted: 5 }, path.join(cuts, CUT_2));
}, T);

afterAll(() => rmSync(cuts, { recursive: true, force: true }));

beforeEach(() => {
  // Whatever an earlier file of this worker left in process.exitCode is not this file's run's exit code.
  process.exitCode = undefined;
  process.env.DIFUSION_NOW = NOW;
  console.log = (...args: unknown[]) => void process.stdout.write(`${format(...args)}\n`);
  console.error = (...args: unknown[]) => void process.stderr.write(`${format(...args)}\n`);
  work = mkdtempSync(path.join(tmpdir(), 'difusion-bad-'));
  stateDir = path.join(work, 'state');
  registry = path.join(work, 'difusores.yaml');
  writeFileSync(registry, registryYaml());
});

afterEach(() => {
  if (saved.env === undefined) delete process.env.DIFUSION_NOW;
  else process.env.DIFUSION_NOW = saved.env;
  process.exitCode = undefined;
  Object.assign(console, { log: saved.log, error: saved.error });
  rmSync(work, { recursive: true, force: true });
});

const registryYaml = (): string =>
  [
    'version: 1',
    'publication:',
    '  timezone: America/Mexico_City',
    "  window: { start: '2022-06-05T20:00', end: '2022-06-06T20:00' }",
    '  official_url: https://prep.example.mx/',
    `  state_dir: ${stateDir}`,
    'difusores:',
    '  - id: espejo-a',
    '    name: Espejo A',
    '    transport: local',
    `    path: ${path.join(work, 'espejo-a')}`,
    '    public_url: http://localhost/a/',
    '  - id: espejo-b',
    '    name: Espejo B',
    '    transport: local',
    `    path: ${path.join(work, 'espejo-b')}`,
    '    public_url: http://localhost/b/',
    '',
  ].join('\n');

const current = (id: 'a' | 'b'): string => readlinkSync(path.join(work, `espejo-${id}`, 'current'));

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await captureOutput(async () => run([...args, '--registry', registry], { root: process.cwd() }));
  const error = r.error as (Error & { oclif?: { exit?: number } }) | undefined;
  const code = error === undefined ? (typeof process.exitCode === 'number' ? process.exitCode : 0) : (error.oclif?.exit ?? 1);
  process.exitCode = undefined;
  return { code, stdout: r.stdout, stderr: r.stderr + (error?.message ?? '') };
}

const journalLines = (): number => (existsSync(path.join(stateDir, 'journal.jsonl')) ? readFileSync(path.join(stateDir, 'journal.jsonl'), 'utf8').trim().split('\n').length : 0);

describe('rollback --to a cut it cannot go back to', () => {
  test('a cut this host never published is refused (exit 2) before any difusor is contacted, naming the cuts it can go back to', async () => {
    expect((await cli('publish', path.join(cuts, CUT_1))).code).toBe(0);
    expect((await cli('publish', path.join(cuts, CUT_2))).code).toBe(0);
    const before = journalLines();
    // A difusor that would fail if asked: the refusal must come first.
    rmSync(path.join(work, 'espejo-b'), { recursive: true });
    const r = await cli('rollback', '--to', '20220605_2000', '--yes');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--to 20220605_2000: this host never published that cut');
    expect(r.stderr).toContain(`it can go back to ${CUT_1}`);
    expect(existsSync(path.join(work, 'espejo-b'))).toBe(false);
    expect(current('a')).toBe(`releases/${CUT_2}`);
    expect(journalLines()).toBe(before);
  }, T);

  test('a cut newer than what is live is refused (exit 2): a rollback only goes back', async () => {
    expect((await cli('publish', path.join(cuts, CUT_1))).code).toBe(0);
    expect((await cli('publish', path.join(cuts, CUT_2))).code).toBe(0);
    expect((await cli('rollback', '--to', CUT_1, '--yes')).code).toBe(0);
    const r = await cli('rollback', '--to', CUT_2, '--yes');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--to ${CUT_2}: it is newer than what is live (${CUT_1})`);
    expect(r.stderr).toContain('a rollback only goes back (nothing was contacted)');
    expect(current('a')).toBe(`releases/${CUT_1}`);
  }, T);
});

describe('a set clock', () => {
  test('the progress lines show the time DIFUSION_NOW gives, not the machine\'s', async () => {
    const r = await cli('publish', path.join(cuts, CUT_1));
    expect(r.code).toBe(0);
    const progress = r.stdout.split('\n').filter((l) => /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d {2}espejo-/.test(l));
    expect(progress.length).toBeGreaterThan(0);
    for (const line of progress) expect(line.startsWith('2022-06-05 21:10:00')).toBe(true);
  }, T);
});

describe('a state directory on a full disk', () => {
  let mount: string | undefined;
  afterEach(() => {
    if (mount) execFileSync('umount', [mount]);
    mount = undefined;
  });

  test('names the path, what was and was not done, and what to free; the difusores stay whole; freed, the same command works', async () => {
    mkdirSync(stateDir);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', stateDir]);
    mount = stateDir;
    expect((await cli('publish', path.join(cuts, CUT_1))).code).toBe(0);
    // Fill what is left: dd stops at the end of the filesystem.
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${path.join(stateDir, 'relleno')}`, 'bs=4k'], { stdio: 'ignore' });
    } catch {
      // "No space left on device" is how dd ends here.
    }
    const r = await cli('publish', '--latest', cuts);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`the publication host could not write its state directory: ${stateDir}`);
    expect(r.stderr).toContain('the disk is full (ENOSPC');
    expect(r.stderr).toMatch(/done: nothing; no difusor was changed|not done: not switched to/);
    expect(r.stderr).toContain(`to free: space on the filesystem of ${stateDir}`);
    expect(r.stderr).not.toMatch(/^\s*Error: ENOSPC: no space left on device, write\s*$/m);
    expect(current('a')).toBe(`releases/${CUT_1}`);
    expect(current('b')).toBe(`releases/${CUT_1}`);

    rmSync(path.join(stateDir, 'relleno'));
    const again = await cli('publish', '--latest', cuts);
    expect(again.code).toBe(0);
    expect(current('a')).toBe(`releases/${CUT_3}`);
    expect((await cli('journal', 'verify')).code).toBe(0);
  }, T);
});
