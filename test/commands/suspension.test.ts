import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { format } from 'node:util';
import { run } from '@oclif/core';
import { captureOutput } from '@oclif/test';
import { preloadCommands } from './support.js';
import { writeCut } from '../../bench/prep-cut.js';
import { terminal } from '../../src/ui/confirm.js';
import { acquireLock, isLockHeld } from '../../src/core/records/lock.js';

/**
 * cutoff, reinstate, rollback and roster through oclif, on `transport: local` difusores (the real helper)
 * with a stand-in for the person at the terminal: what each asks, what --yes and no terminal do, the exit
 * codes, and that a "no" or a refusal changes nothing anywhere.
 */

const T = 60_000;
const NOW = '2022-06-05T21:10:00-05:00';
const SHAPE = { casillas: 6, counted: 2, imageBytes: 800, seed: 'suspension' };
const CUT_1 = '20220605_2015';
const CUT_2 = '20220605_2030';
const REASON = `Alteró "cifras" <b>& más</b>: sí`;

let cuts: string;
let work: string;
let registry: string;
let answers: string[];
let asked: string[];
let interactive: boolean;
const saved = { env: process.env.DIFUSION_NOW, log: console.log, error: console.error, terminal: { ...terminal } };

beforeAll(async () => {
  await preloadCommands();
  cuts = mkdtempSync(path.join(tmpdir(), 'difusion-susp-cuts-'));
  await writeCut(path.join(cuts, CUT_1), CUT_1, SHAPE);
  await writeCut(path.join(cuts, CUT_2), CUT_2, { ...SHAPE, counted: 4 }, path.join(cuts, CUT_1));
}, T);

afterAll(() => rmSync(cuts, { recursive: true, force: true }));

beforeEach(() => {
  // Whatever an earlier file of this worker left in process.exitCode is not this file's run's exit code.
  process.exitCode = undefined;
  process.env.DIFUSION_NOW = NOW;
  console.log = (...args: unknown[]) => void process.stdout.write(`${format(...args)}\n`);
  console.error = (...args: unknown[]) => void process.stderr.write(`${format(...args)}\n`);
  answers = [];
  asked = [];
  interactive = false;
  terminal.interactive = () => interactive;
  terminal.ask = async (question) => {
    asked.push(question);
    return answers.shift() ?? '';
  };
  work = mkdtempSync(path.join(tmpdir(), 'difusion-susp-'));
  registry = path.join(work, 'difusores.yaml');
  writeFileSync(registry, REGISTRY());
});

afterEach(() => {
  if (saved.env === undefined) delete process.env.DIFUSION_NOW;
  else process.env.DIFUSION_NOW = saved.env;
  process.exitCode = undefined;
  Object.assign(console, { log: saved.log, error: saved.error });
  Object.assign(terminal, saved.terminal);
  rmSync(work, { recursive: true, force: true });
});

const REGISTRY = (): string =>
  [
    '# Registro de prueba: los comentarios se conservan',
    'version: 1',
    'publication:',
    '  timezone: America/Mexico_City    # hora del centro',
    "  window: { start: '2022-06-05T20:00', end: '2022-06-06T20:00' }",
    '  official_url: https://prep.example.mx/',
    `  state_dir: ${path.join(work, 'state')}`,
    'difusores:',
    '  # --- primero',
    '  - id: espejo-a',
    '    name: Espejo A',
    '    transport: local',
    `    path: ${path.join(work, 'espejo-a')}`,
    '    public_url: http://localhost/a/',
    '    status: active   # cutoff/reinstate',
    '  - id: espejo-b',
    '    name: Espejo B',
    '    transport: local',
    `    path: ${path.join(work, 'espejo-b')}`,
    '    public_url: http://localhost/b/',
    '',
  ].join('\n');

const espejo = (id: 'a' | 'b'): string => path.join(work, `espejo-${id}`);
const current = (id: 'a' | 'b'): string => readlinkSync(path.join(espejo(id), 'current'));

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  // runCommand re-splits its arguments on spaces and drops quotes; a reason full of both needs them as given.
  const r = await captureOutput(async () => run([...args, '--registry', registry], { root: process.cwd() }));
  const error = r.error as (Error & { oclif?: { exit?: number } }) | undefined;
  const code = error === undefined ? (typeof process.exitCode === 'number' ? process.exitCode : 0) : (error.oclif?.exit ?? 1);
  process.exitCode = undefined;
  return { code, stdout: r.stdout, stderr: r.stderr + (error?.message ?? '') };
}

function journal(): Array<{ phase: string; result: string; difusor?: string; detail?: Record<string, unknown> }> {
  const file = path.join(work, 'state', 'journal.jsonl');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

async function publishBoth(): Promise<void> {
  expect((await cli('publish', path.join(cuts, CUT_1))).code).toBe(0);
  expect((await cli('publish', path.join(cuts, CUT_2))).code).toBe(0);
}

describe('cutoff', () => {
  test('without a terminal and without --yes it refuses (exit 2) and changes nothing', async () => {
    const r = await cli('cutoff', 'espejo-a', '--reason', REASON);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('there is no terminal to confirm it on');
    expect(readFileSync(registry, 'utf8')).toBe(REGISTRY());
    // Refused before anything was contacted: the difusor's directory was not even looked at.
    expect(existsSync(espejo('a'))).toBe(false);
    expect(journal()).toEqual([]);
  }, T);

  test('on a terminal it shows the plan and asks; "no" changes nothing, "sí" cuts off', async () => {
    await publishBoth();
    interactive = true;
    answers = ['n'];
    const no = await cli('cutoff', 'espejo-a', '--reason', REASON);
    expect(no.code).toBe(1);
    expect(no.stdout).toContain('cancelled: nothing changed');
    expect(no.stdout).toContain(`now serving:   cut ${CUT_2} at http://localhost/a/`);
    expect(no.stdout).toContain(`reason shown:  ${REASON}`);
    expect(asked).toEqual(['Proceed? [y/N] ']);
    expect(readFileSync(registry, 'utf8')).toBe(REGISTRY());
    expect(current('a')).toBe(`releases/${CUT_2}`);

    answers = ['sí'];
    const yes = await cli('cutoff', 'espejo-a', '--reason', REASON);
    expect(yes.code).toBe(0);
    expect(current('a')).toBe('notices/20220605_211000');
    expect(current('b')).toBe(`releases/${CUT_2}`);
    const aviso = JSON.parse(readFileSync(path.join(espejo('a'), 'current', 'aviso.json'), 'utf8'));
    expect(aviso).toMatchObject({ difusor: 'espejo-a', reason: REASON, at: NOW, local: '05/06/2022 21:10 (UTC-5)' });
    const text = readFileSync(registry, 'utf8');
    expect(text).toContain("    status: suspended   # cutoff/reinstate\n    suspended_at: '2022-06-05T21:10:00-05:00'\n");
    expect(text).toContain('  timezone: America/Mexico_City    # hora del centro\n');
    expect(journal().filter((e) => e.phase === 'cutoff')).toEqual([
      expect.objectContaining({ result: 'ok', difusor: 'espejo-a', detail: { reason: REASON, notice: '20220605_211000', from: CUT_2 } }),
    ]);
  }, T);

  test('--yes --json answers for a script; a bad reason or id is refused before anything changes', async () => {
    expect((await cli('publish', path.join(cuts, CUT_1))).code).toBe(0);
    expect((await cli('cutoff', 'espejo-a', '--reason', 'línea\nsegunda', '--yes')).code).toBe(2);
    expect((await cli('cutoff', 'nadie', '--reason', 'x', '--yes')).code).toBe(2);
    expect((await cli('cutoff', 'espejo-a', '--reason', '   ', '--yes')).code).toBe(2);
    expect(readFileSync(registry, 'utf8')).toBe(REGISTRY());
    const r = await cli('cutoff', 'espejo-a', '--reason', REASON, '--yes', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ difusor: 'espejo-a', notice: '20220605_211000', from: CUT_1, exitCode: 0 });
  }, T);

  test('a difusor that refuses the notice: exit 1, status says the notice is NOT in place, the next publish puts it there', async () => {
    expect((await cli('publish', path.join(cuts, CUT_1))).code).toBe(0);
    // A file where the helper needs the notices/ directory: the notice cannot be written.
    writeFileSync(path.join(espejo('a'), 'notices'), 'not a directory');
    const failed = await cli('cutoff', 'espejo-a', '--reason', REASON, '--yes');
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('the notice did not reach it');
    expect(current('a')).toBe(`releases/${CUT_1}`);
    expect(readFileSync(registry, 'utf8')).toContain('status: suspended');
    const before = await cli('status');
    expect(before.stdout).toMatch(/^espejo-a +suspended +20220605_2015 +- .*notice is NOT in place: run difusion cutoff espejo-a again/m);
    // Every later publish (cron) tries the notice again, never the cut, and says so while it fails.
    const cron = await cli('publish', path.join(cuts, CUT_2));
    expect(cron.code).toBe(0);
    expect(cron.stdout).toMatch(
      /^espejo-a +skipped .*suspended, but its notice is NOT in place \(tried again: notice-put failed .*\): run difusion cutoff espejo-a again/m,
    );
    expect(current('a')).toBe(`releases/${CUT_1}`);
    expect(current('b')).toBe(`releases/${CUT_2}`);

    // The difusor's admin mends it; the next cron run puts up the same notice (time and reason from the registry).
    rmSync(path.join(espejo('a'), 'notices'));
    const mended = await cli('publish', path.join(cuts, CUT_2));
    expect(mended.code).toBe(0);
    expect(mended.stdout).toMatch(/^espejo-a +skipped .*suspended; its missing notice is now in place \(notices\/20220605_211000\)/m);
    expect(current('a')).toBe('notices/20220605_211000');
    expect(JSON.parse(readFileSync(path.join(espejo('a'), 'current', 'aviso.json'), 'utf8'))).toMatchObject({ reason: REASON, difusor: 'espejo-a' });
    expect(journal().filter((e) => e.phase === 'cutoff').map((e) => [e.result, e.detail?.retry ?? false])).toEqual([
      ['failed', false],
      ['failed', true],
      ['ok', true],
    ]);
    const after = await cli('status');
    // The notice, no lag (it is not behind on any cut) and no error.
    expect(after.stdout).toMatch(/^espejo-a +suspended +aviso 20220605_211000 +- +1 /m);
    expect(after.stdout).not.toContain('NOT in place');
    expect(after.stdout).toMatch(/^espejo-b +active +20220605_2030 +0 cuts/m);
    const quiet = (await cli('publish', path.join(cuts, CUT_2))).stdout;
    expect(quiet).not.toContain('NOT in place');
    expect(quiet).not.toContain('now in place');
  }, T);

  test('a notice that went up but whose answer was lost: the next publish finds it live and only records it', async () => {
    expect((await cli('publish', path.join(cuts, CUT_1))).code).toBe(0);
    expect((await cli('cutoff', 'espejo-a', '--reason', REASON, '--yes')).code).toBe(0);
    // As the cutoff leaves it when notice-switch renamed `current` but its reply never came back.
    const record = path.join(work, 'state', 'difusores', 'espejo-a.json');
    const state = JSON.parse(readFileSync(record, 'utf8'));
    writeFileSync(record, JSON.stringify({ ...state, lastResult: { ...state.lastResult, result: 'notice-failed', error: 'connection lost' } }));
    const notices = readdirSync(path.join(espejo('a'), 'notices'));
    const cron = await cli('publish', path.join(cuts, CUT_2), '--json');
    expect(cron.code).toBe(0);
    expect(JSON.parse(cron.stdout).skipped).toEqual([
      { id: 'espejo-a', reason: 'suspended; its missing notice is now in place (notices/20220605_211000)', notice: 'restored' },
    ]);
    expect(readdirSync(path.join(espejo('a'), 'notices'))).toEqual(notices);
    expect(current('a')).toBe('notices/20220605_211000');
    expect((await cli('status')).stdout).not.toContain('NOT in place');
  }, T);

  test('another run holding the lock refuses it with exit 5', async () => {
    expect((await cli('publish', path.join(cuts, CUT_1))).code).toBe(0);
    const lock = await acquireLock(path.join(work, 'state'), { runId: 'test', command: 'publish' });
    expect(isLockHeld(lock)).toBe(false);
    try {
      const r = await cli('cutoff', 'espejo-a', '--reason', 'x', '--yes');
      expect(r.code).toBe(5);
      expect(readFileSync(registry, 'utf8')).toBe(REGISTRY());
      expect(current('a')).toBe(`releases/${CUT_1}`);
    } finally {
      if (!isLockHeld(lock)) await lock.release();
    }
  }, T);
});

describe('publish, reinstate and rollback around a suspension', () => {
  test('publish skips the suspended difusor (exit 0), reinstate brings the newest cut back and the registry as it was', async () => {
    expect((await cli('publish', path.join(cuts, CUT_1))).code).toBe(0);
    expect((await cli('cutoff', 'espejo-a', '--reason', REASON, '--yes')).code).toBe(0);
    const p = await cli('publish', path.join(cuts, CUT_2));
    expect(p.code).toBe(0);
    expect(p.stdout).toMatch(/^espejo-a +skipped .*suspended/m);
    expect(current('a')).toBe('notices/20220605_211000');
    expect(current('b')).toBe(`releases/${CUT_2}`);

    expect((await cli('reinstate', 'espejo-a')).code).toBe(2);
    const r = await cli('reinstate', 'espejo-a', '--yes');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`will serve:    cut ${CUT_2}`);
    expect(current('a')).toBe(`releases/${CUT_2}`);
    expect(readdirSync(path.join(espejo('a'), 'notices'))).toEqual([]);
    // Two edits in a row: only the explicit `status: active` is left of them.
    expect(readFileSync(registry, 'utf8')).toBe(REGISTRY());
    expect(journal().filter((e) => e.phase === 'reinstate')).toEqual([
      expect.objectContaining({ result: 'ok', difusor: 'espejo-a', detail: { cut: CUT_2, notice: '20220605_211000', from: '20220605_211000' } }),
    ]);
    // Reinstating an active difusor is refused.
    expect((await cli('reinstate', 'espejo-a', '--yes')).code).toBe(2);
  }, T);

  test('rollback goes back to the previous cut, --latest stays there until a cut is published by name', async () => {
    await publishBoth();
    interactive = true;
    answers = ['y'];
    const r = await cli('rollback');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`rollback to ${CUT_1} (from ${CUT_2})`);
    expect(current('a')).toBe(`releases/${CUT_1}`);
    expect(current('b')).toBe(`releases/${CUT_1}`);

    const cron = await cli('publish', '--latest', cuts);
    expect(cron.code).toBe(0);
    expect(cron.stdout).toContain(`rollback hold: --latest stays on ${CUT_1}`);
    expect(current('a')).toBe(`releases/${CUT_1}`);

    const forward = await cli('publish', path.join(cuts, CUT_2));
    expect(forward.code).toBe(0);
    expect(forward.stdout).toContain('is lifted');
    expect((await cli('publish', '--latest', cuts)).stdout).not.toContain('rollback hold');
    expect(current('a')).toBe(`releases/${CUT_2}`);
    // Difusores roll back concurrently: the journal keeps the order they finished in.
    expect(journal().filter((e) => e.phase === 'rollback').map((e) => [e.difusor, e.result]).sort()).toEqual([
      ['espejo-a', 'ok'],
      ['espejo-b', 'ok'],
    ]);
  }, T);

  test('rollback --only holds only that difusor: cron keeps publishing the newest cut to the others', async () => {
    expect((await cli('publish', path.join(cuts, CUT_1))).code).toBe(0);
    expect((await cli('publish', path.join(cuts, CUT_1, '..', CUT_2), '--only', 'espejo-b')).code).toBe(0);
    interactive = true;
    answers = ['y'];
    // --json on a terminal: the plan still shown (on stderr) before the question.
    const r = await cli('rollback', '--only', 'espejo-b', '--json');
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`rollback to ${CUT_1} (from ${CUT_2})`);
    expect(JSON.parse(r.stdout)).toMatchObject({ to: CUT_1, hold: { cut: CUT_1, difusores: ['espejo-b'] } });
    expect(current('b')).toBe(`releases/${CUT_1}`);

    const cron = await cli('publish', '--latest', cuts);
    expect(cron.code).toBe(0);
    expect(cron.stdout).toContain(`rollback hold: espejo-b kept on ${CUT_1}`);
    expect(cron.stdout).toMatch(new RegExp(`^espejo-b +skipped .*rollback hold on ${CUT_1}`, 'm'));
    expect(current('a')).toBe(`releases/${CUT_2}`);
    expect(current('b')).toBe(`releases/${CUT_1}`);
    // Reinstating another difusor brings it the newest cut, not the one espejo-b is held on.
    interactive = false;
    expect((await cli('cutoff', 'espejo-a', '--reason', REASON, '--yes')).code).toBe(0);
    expect((await cli('reinstate', 'espejo-a', '--yes')).code).toBe(0);
    expect(current('a')).toBe(`releases/${CUT_2}`);
  }, T);

  test('rollback names the difusores lacking the release (exit 3) and leaves them as they were', async () => {
    expect((await cli('publish', path.join(cuts, CUT_1), '--only', 'espejo-a')).code).toBe(0);
    expect((await cli('publish', path.join(cuts, CUT_2))).code).toBe(0);
    const r = await cli('rollback', '--to', CUT_1, '--yes');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('not rolled back: espejo-b');
    expect(current('a')).toBe(`releases/${CUT_1}`);
    expect(current('b')).toBe(`releases/${CUT_2}`);
    expect((await cli('rollback', '--to', 'ayer', '--yes')).code).toBe(2);
    expect((await cli('rollback')).code).toBe(2);
  }, T);
});

describe('roster', () => {
  test('lists every difusor with its logo inlined; a suspended one is marked and unlinked', async () => {
    expect((await cli('publish', path.join(cuts, CUT_1))).code).toBe(0);
    mkdirSync(path.join(work, 'logos'));
    const png = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000', 'hex');
    writeFileSync(path.join(work, 'logos', 'a.png'), png);
    writeFileSync(registry, REGISTRY().replace('    public_url: http://localhost/b/\n', '    public_url: http://localhost/b/\n    logo: logos/a.png\n').replace('name: Espejo A', `name: 'Espejo "A" <i>& Cía</i>'`));
    expect((await cli('cutoff', 'espejo-a', '--reason', REASON, '--yes')).code).toBe(0);
    const out = path.join(work, 'sitio');
    const r = await cli('roster', '--out', out);
    expect(r.code).toBe(0);
    const html = readFileSync(path.join(out, 'index.html'), 'utf8');
    expect(html).toContain('Espejo &quot;A&quot; &lt;i&gt;&amp; Cía&lt;/i&gt;');
    expect(html).not.toContain('href="http://localhost/a/"');
    expect(html).toContain('href="http://localhost/b/"');
    expect(html).toContain(`src="data:image/png;base64,${png.toString('base64')}"`);
    expect(html).toContain('Suspendido');
    const json = JSON.parse(readFileSync(path.join(out, 'roster.json'), 'utf8'));
    expect(json.difusores).toEqual([
      { id: 'espejo-a', name: 'Espejo "A" <i>& Cía</i>', status: 'suspended', url: null, logo: null, suspended_at: NOW },
      { id: 'espejo-b', name: 'Espejo B', status: 'active', url: 'http://localhost/b/', logo: 'logos/espejo-b.png' },
    ]);
    expect(readFileSync(path.join(out, 'logos', 'espejo-b.png'))).toEqual(png);
    // A logo that cannot be read is named, exit 2.
    writeFileSync(registry, REGISTRY().replace('    public_url: http://localhost/b/\n', '    public_url: http://localhost/b/\n    logo: logos/nada.png\n'));
    const bad = await cli('roster', '--out', out);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('logo of espejo-b');
  }, T);
});
