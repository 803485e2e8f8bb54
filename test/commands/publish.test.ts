import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { format } from 'node:util';
import { runCommand } from '@oclif/test';
import { preloadCommands } from './support.js';
import { writeCut } from '../../bench/prep-cut.js';

/** Generous: these tests spawn real processes (sh, rsync, sha256sum), and a loaded machine makes that slow. */
const T = 30_000;

/**
 * `difusion publish` end to end through oclif, against `transport: local` difusores in temp dirs:
 * the real helper, the real rsync, the real registry loader, window, lock and journal.
 */

const NOW = '2022-06-05T20:16:00-05:00';
const SHAPE = { casillas: 8, counted: 3, imageBytes: 1500, seed: 'commands' };

let cuts: string;
let work: string;
let registry: string;
let savedNow: string | undefined;
let savedExitCode: typeof process.exitCode;
const savedConsole = { log: console.log, error: console.error };

beforeAll(async () => {
  // oclif imports every command at once; jest's ESM linker loses that race ("request for 'node:fs' is not in
  // cache") and the command is then "not found". Importing it here first puts it in jest's module cache.
  await preloadCommands();
  cuts = mkdtempSync(path.join(tmpdir(), 'difusion-cmd-cuts-'));
  await writeCut(path.join(cuts, '20220605_2015'), '20220605_2015', SHAPE);
  await writeCut(path.join(cuts, '20220605_2030'), '20220605_2030', { ...SHAPE, counted: 5 }, path.join(cuts, '20220605_2015'));
  // A producer's names while writing: never a cut, even though they sort after the newest one.
  await writeCut(path.join(cuts, 'tmp.20220605_2045'), '20220605_2045', { ...SHAPE, counted: 6 });
  await writeCut(path.join(cuts, '20220605_2045.partial'), '20220605_2045', { ...SHAPE, counted: 6 });
}, 30_000);

afterAll(() => {
  rmSync(cuts, { recursive: true, force: true });
});

beforeEach(() => {
  savedNow = process.env.DIFUSION_NOW;
  savedExitCode = process.exitCode;
  // Whatever an earlier file of this worker left in process.exitCode is not this file's run's exit code.
  process.exitCode = undefined;
  process.env.DIFUSION_NOW = NOW;
  // oclif writes through console.log/error, which jest decorates ("console.log" headers, indentation): send
  // them straight to the streams runCommand captures, so stdout is exactly what an operator or cron sees.
  console.log = (...args: unknown[]) => void process.stdout.write(`${format(...args)}\n`);
  console.error = (...args: unknown[]) => void process.stderr.write(`${format(...args)}\n`);
  work = mkdtempSync(path.join(tmpdir(), 'difusion-cmd-'));
  registry = path.join(work, 'difusores.yaml');
  writeFileSync(registry, registryYaml());
});

afterEach(() => {
  if (savedNow === undefined) delete process.env.DIFUSION_NOW;
  else process.env.DIFUSION_NOW = savedNow;
  process.exitCode = savedExitCode;
  Object.assign(console, savedConsole);
  rmSync(work, { recursive: true, force: true });
});

function registryYaml(extra = ''): string {
  return [
    'version: 1',
    'publication:',
    '  timezone: America/Mexico_City',
    "  window: { start: '2022-06-05T20:00', end: '2022-06-06T20:00' }",
    `  state_dir: ${path.join(work, 'state')}`,
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
    extra,
  ].join('\n');
}

const espejo = (id: 'a' | 'b'): string => path.join(work, `espejo-${id}`);

async function publish(...args: string[]): Promise<Awaited<ReturnType<typeof runCommand>>> {
  return runCommand(['publish', ...args, '--registry', registry], { root: process.cwd() });
}

function exitOf(result: { error?: Error & { oclif?: { exit?: number } } }): number {
  return result.error === undefined ? 0 : (result.error.oclif?.exit ?? 1);
}

/** Every entry below a directory with type, size, mtime and inode: equal listings mean nothing changed. */
function listing(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const name of readdirSync(path.join(dir, rel)).sort()) {
      const p = rel ? `${rel}/${name}` : name;
      const st = lstatSync(path.join(dir, p));
      const kind = st.isSymbolicLink() ? `-> ${readlinkSync(path.join(dir, p))}` : st.isDirectory() ? 'd' : `f ${st.size}`;
      out.push(`${p} ${kind} ${st.ino} ${st.mtimeMs} ${st.mode}`);
      if (st.isDirectory() && !st.isSymbolicLink()) walk(p);
    }
  };
  walk('');
  return out;
}

describe('difusion publish', () => {
  it('publishes a cut to every difusor, then the next one sharing its unchanged files by hard links', async () => {
    const result = await publish(path.join(cuts, '20220605_2015'));
    expect(result.error).toBeUndefined();
    for (const id of ['a', 'b'] as const) {
      expect(readlinkSync(path.join(espejo(id), 'current'))).toBe('releases/20220605_2015');
      execFileSync('sha256sum', ['-c', '--strict', '--quiet', 'MANIFEST.sha256'], { cwd: path.join(espejo(id), 'current') });
      expect(readdirSync(path.join(espejo(id), '.staging'))).toEqual([]);
    }
    expect(readFileSync(path.join(espejo('a'), 'current', 'index.html'), 'utf8')).toContain('Actas capturadas: 3 de 8');
    expect(result.stdout).toMatch(/20220605_2015: 2 of 2 difusores live/);
    expect(result.stdout).toMatch(/^espejo-a +live +20220605_2015 /m);
    expect(result.stderr).toContain(`note: the clock is set by DIFUSION_NOW=${NOW}`);

    // The next cut: its unchanged files are hard links to the live release's, the changed ones are sent.
    const next = await publish(path.join(cuts, '20220605_2030'));
    expect(next.error).toBeUndefined();
    const releases = path.join(espejo('a'), 'releases');
    expect(readlinkSync(path.join(espejo('a'), 'current'))).toBe('releases/20220605_2030');
    const ino = (cut: string, rel: string): number => statSync(path.join(releases, cut, rel)).ino;
    const unchanged = readdirSync(path.join(releases, '20220605_2015', 'actas'));
    expect(unchanged).toHaveLength(6);
    for (const acta of unchanged) expect(ino('20220605_2030', `actas/${acta}`)).toBe(ino('20220605_2015', `actas/${acta}`));
    expect(ino('20220605_2030', 'index.html')).not.toBe(ino('20220605_2015', 'index.html'));
    expect(readdirSync(path.join(releases, '20220605_2030', 'actas'))).toHaveLength(10);
    // The previous release is untouched by the new one's changes.
    expect(readFileSync(path.join(releases, '20220605_2015', 'index.html'), 'utf8')).toContain('Actas capturadas: 3 de 8');
    expect(readFileSync(path.join(releases, '20220605_2030', 'index.html'), 'utf8')).toContain('Actas capturadas: 5 de 8');
    execFileSync('sha256sum', ['-c', '--strict', '--quiet', 'MANIFEST.sha256'], { cwd: path.join(releases, '20220605_2015') });
  }, T);

  it('publishing the live cut again repairs a defaced file and removes an intruder, without a switch', async () => {
    const cut = path.join(cuts, '20220605_2015');
    expect(exitOf(await publish(cut, '--only', 'espejo-a'))).toBe(0);
    const live = path.join(espejo('a'), 'releases', '20220605_2015');
    writeFileSync(path.join(live, 'index.html'), 'defaced');
    writeFileSync(path.join(live, 'datos', 'intruso.php'), '<?php system($_GET["c"]);');
    const result = await publish(cut, '--only', 'espejo-a');
    expect(result.error).toBeUndefined();
    expect(readFileSync(path.join(live, 'index.html'), 'utf8')).toBe(readFileSync(path.join(cut, 'index.html'), 'utf8'));
    expect(existsSync(path.join(live, 'datos', 'intruso.php'))).toBe(false);
    execFileSync('sha256sum', ['-c', '--strict', '--quiet', 'MANIFEST.sha256'], { cwd: live });
    expect(result.stdout).toMatch(/^espejo-a +live +20220605_2015 +1 /m);
    expect(result.stdout).not.toContain('switching');
  }, T);

  // `link` drops the base's files the new cut no longer has, but not their directories: a directory the
  // producer removed survives, empty, in every later release (and Apache serves it). See the report.
  test('a directory removed from the cut does not survive, empty, in the next release', async () => {
    const first = path.join(work, 'cortes', '20220605_2015');
    const second = path.join(work, 'cortes', '20220605_2030');
    for (const [dir, files] of [
      [first, { 'index.html': '1', 'municipios/retirado/index.html': 'x' }],
      [second, { 'index.html': '2' }],
    ] as Array<[string, Record<string, string>]>) {
      for (const [rel, content] of Object.entries(files)) {
        mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
        writeFileSync(path.join(dir, rel), content);
      }
    }
    expect(exitOf(await publish(first, '--only', 'espejo-a'))).toBe(0);
    expect(exitOf(await publish(second, '--only', 'espejo-a'))).toBe(0);
    expect(readdirSync(path.join(espejo('a'), 'releases', '20220605_2030')).sort()).toEqual(['MANIFEST.sha256', 'index.html']);
  }, T);

  it('--latest picks the newest cut, ignores a producer\'s temporary names, and a second run is a no-op', async () => {
    const first = await publish('--latest', cuts);
    expect(first.error).toBeUndefined();
    expect(readlinkSync(path.join(espejo('a'), 'current'))).toBe('releases/20220605_2030');
    expect(readdirSync(path.join(espejo('a'), 'releases'))).toEqual(['20220605_2030']);
    expect(first.stdout).not.toContain('2045');

    // prepare recreates the (empty) .staging on every run; what is served must not change at all.
    // Every run takes and frees the difusor's lease (.lease/, never served), the no-op too: its prepare clears staging.
    const served = (): string[] => listing(espejo('a')).filter((l) => !l.startsWith('.staging ') && !l.startsWith('.lease '));
    const before = served();
    const second = await publish('--latest', cuts);
    expect(second.error).toBeUndefined();
    expect(second.stdout).toMatch(/^espejo-a +up-to-date +20220605_2030 /m);
    expect(second.stdout).toContain('20220605_2030: 2 of 2 difusores live.');
    expect(served()).toEqual(before);
  }, T);

  it('refuses a cut holding a symlink with exit 2, naming the path, and creates nothing on any difusor', async () => {
    const bad = path.join(work, 'cortes', '20220605_2015');
    await writeCut(bad, '20220605_2015', SHAPE);
    symlinkSync('/etc/passwd', path.join(bad, 'datos', 'passwd.csv'));
    const result = await publish(bad);
    expect(exitOf(result)).toBe(2);
    expect(result.error?.message).toContain('"datos/passwd.csv": is a symbolic link');
    expect(result.error?.message).toContain('nothing was sent');
    expect(existsSync(espejo('a'))).toBe(false);
    expect(existsSync(espejo('b'))).toBe(false);
  }, T);

  it('refuses before the window opens with exit 4, saying the local time, and creates nothing', async () => {
    process.env.DIFUSION_NOW = '2022-06-05T19:59:59-05:00';
    const result = await publish(path.join(cuts, '20220605_2015'));
    expect(exitOf(result)).toBe(4);
    expect(result.error?.message).toMatch(/has not opened: it is 2022-06-05 19:59:59 .*America\/Mexico_City/);
    expect(existsSync(espejo('a'))).toBe(false);
  }, T);

  it('--dry-run leaves every difusor byte for byte as it was and says what it would do', async () => {
    expect(exitOf(await publish(path.join(cuts, '20220605_2015')))).toBe(0);
    const before = [listing(espejo('a')), listing(espejo('b'))];
    const result = await publish(path.join(cuts, '20220605_2030'), '--dry-run');
    expect(result.error).toBeUndefined();
    expect([listing(espejo('a')), listing(espejo('b'))]).toEqual(before);
    expect(readlinkSync(path.join(espejo('a'), 'current'))).toBe('releases/20220605_2015');
    expect(result.stdout).toMatch(/^espejo-a +planned +20220605_2030 .*new-release; link \d+/m);
    expect(result.stdout).toContain('dry run of 20220605_2030: nothing was changed on any difusor.');
  }, T);

  it('--dry-run on a fresh difusor creates none of its layout', async () => {
    const result = await publish(path.join(cuts, '20220605_2015'), '--dry-run', '--only', 'espejo-a');
    expect(result.error).toBeUndefined();
    expect(listing(espejo('a'))).toEqual([]);
  }, T);

  // localSession.helper (src/adapters/difusor.ts) mkdirs the difusor's path before every verb, inspect included,
  // so a dry run creates the root of a local difusor that did not exist. See the report.
  test('--dry-run does not even create the root directory of a fresh local difusor', async () => {
    const result = await publish(path.join(cuts, '20220605_2015'), '--dry-run', '--only', 'espejo-a');
    expect(result.error).toBeUndefined();
    expect(existsSync(espejo('a'))).toBe(false);
  }, T);

  it('--json prints one JSON document with every outcome', async () => {
    const result = await publish(path.join(cuts, '20220605_2015'), '--json');
    expect(result.error).toBeUndefined();
    const doc = JSON.parse(result.stdout) as { cut: string; exitCode: number; clock?: string; outcomes: Array<{ id: string; result: string; cut: string }> };
    expect(doc.cut).toBe('20220605_2015');
    expect(doc.exitCode).toBe(0);
    expect(doc.clock).toBe(`DIFUSION_NOW=${NOW}`);
    expect(doc.outcomes.map((o) => [o.id, o.result, o.cut])).toEqual([
      ['espejo-a', 'live', '20220605_2015'],
      ['espejo-b', 'live', '20220605_2015'],
    ]);
  }, T);

  it('a difusor that cannot switch keeps its previous state, is named, and the run exits 3', async () => {
    mkdirSync(path.join(espejo('b'), 'current'), { recursive: true });
    writeFileSync(path.join(espejo('b'), 'current', 'index.html'), 'sitio anterior');
    const result = await publish(path.join(cuts, '20220605_2015'));
    expect(exitOf(result)).toBe(3);
    expect(readlinkSync(path.join(espejo('a'), 'current'))).toBe('releases/20220605_2015');
    expect(readFileSync(path.join(espejo('b'), 'current', 'index.html'), 'utf8')).toBe('sitio anterior');
    expect(result.stdout).toMatch(/^espejo-b +failed .*switching: .*current is not a symlink/m);
    expect(result.stdout).toContain('1 of 2 difusores live, 1 failed (they keep their previous cut)');
  }, T);

  it('--only limits the run to one difusor', async () => {
    const result = await publish(path.join(cuts, '20220605_2015'), '--only', 'espejo-b');
    expect(result.error).toBeUndefined();
    expect(existsSync(espejo('a'))).toBe(false);
    expect(readlinkSync(path.join(espejo('b'), 'current'))).toBe('releases/20220605_2015');
  }, T);

  it('refuses an unknown --only id with exit 2, listing the known ones', async () => {
    const result = await publish(path.join(cuts, '20220605_2015'), '--only', 'ujed');
    expect(exitOf(result)).toBe(2);
    expect(result.error?.message).toContain('unknown difusor "ujed" in --only');
    expect((result.error as Error & { suggestions?: string[] }).suggestions).toEqual(['known ids: espejo-a, espejo-b']);
    expect(existsSync(espejo('a'))).toBe(false);
  }, T);

  it('refuses an invalid registry with exit 2, naming file:line:col and the field', async () => {
    writeFileSync(registry, registryYaml('    colour: blue\n'));
    const result = await publish(path.join(cuts, '20220605_2015'));
    expect(exitOf(result)).toBe(2);
    expect(result.error?.message).toMatch(/difusores\.yaml is invalid \(1 problem\(s\)\)/);
    expect(result.stderr).toMatch(/difusores\.yaml:17:5 difusores\[1\]\.colour: /);
    expect(existsSync(espejo('a'))).toBe(false);
  }, T);

  it('refuses a directory whose name is not a cut id with exit 2', async () => {
    const result = await publish(path.join(cuts, 'tmp.20220605_2045'));
    expect(exitOf(result)).toBe(2);
    expect(result.error?.message).toContain('a cut directory is named YYYYMMDD_HHMM[_SUFFIX]');
    expect(existsSync(espejo('a'))).toBe(false);
  }, T);
});
