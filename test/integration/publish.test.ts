import { existsSync, readFileSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startLab, type Lab } from './lab/sshd.js';
import { writeCut } from '../../bench/prep-cut.js';
import { checkLive, liveCut, publish, snapshot } from './support/publish.js';
import { readJournal } from '../../src/core/records/journal.js';
import { descendants } from './lab/procs.js';

const T = 120_000;
const SHAPE = { casillas: 60, counted: 20, imageBytes: 6000, seed: 'it' };
const CUT_A = '20220605_2015_PREP_DGO';
const CUT_B = '20220605_2030_PREP_DGO';
const CUT_C = '20220605_2045_PREP_DGO';

let lab: Lab;
let cuts: string;
let registry: string;

beforeAll(async () => {
  lab = await startLab({ difusores: 3 });
  registry = await lab.writeRegistry();
  cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-cuts-'));
  await writeCut(path.join(cuts, CUT_A), CUT_A, SHAPE);
  await writeCut(path.join(cuts, CUT_B), CUT_B, { ...SHAPE, counted: 26 }, path.join(cuts, CUT_A));
}, T);

afterAll(async () => {
  await lab?.stop();
  if (cuts) await rm(cuts, { recursive: true, force: true });
}, T);

describe('publish over real sshd and rsync', () => {
  test('three difusores go live on the first cut, each passing sha256sum -c', async () => {
    const result = await publish(registry, path.join(cuts, CUT_A));
    expect(result.outcomes.map((o) => [o.id, o.result, o.error])).toEqual(
      lab.difusores.map((d) => [d.id, 'live', undefined]),
    );
    expect(result.exitCode).toBe(0);
    for (const d of lab.difusores) {
      expect(await liveCut(d.path)).toBe(`releases/${CUT_A}`);
      expect(await checkLive(d.path)).toEqual({ ok: true, output: '' });
      expect(existsSync(path.join(d.path, '.staging', CUT_A))).toBe(false);
    }
  }, T);

  test('the next cut shares unchanged files by inode and sends only what changed', async () => {
    const result = await publish(registry, path.join(cuts, CUT_B));
    expect(result.exitCode).toBe(0);
    for (const o of result.outcomes) {
      expect(o.result).toBe('live');
      expect(o.filesLinked).toBeGreaterThan(0);
      // Images of the first 20 casillas are unchanged; pages and aggregates all change.
      expect(o.filesToSend).toBeLessThan(o.filesToSend + o.filesLinked);
    }
    for (const d of lab.difusores) {
      const image = 'actas/0001-B_A.jpg';
      const before = await stat(path.join(d.path, 'releases', CUT_A, image));
      const after = await stat(path.join(d.path, 'releases', CUT_B, image));
      expect(after.ino).toBe(before.ino);
      const page = 'index.html';
      expect((await stat(path.join(d.path, 'releases', CUT_B, page))).ino).not.toBe(
        (await stat(path.join(d.path, 'releases', CUT_A, page))).ino,
      );
      expect(await checkLive(d.path)).toEqual({ ok: true, output: '' });
      expect(result.switchSpreadMs).toBeLessThan(1000);
    }
  }, T);

  test('publishing the live cut again is a no-op', async () => {
    const result = await publish(registry, path.join(cuts, CUT_B));
    expect(result.outcomes.map((o) => o.result)).toEqual(['up-to-date', 'up-to-date', 'up-to-date']);
    expect(result.outcomes.every((o) => o.bytesSent === 0)).toBe(true);
    expect(result.exitCode).toBe(0);
  }, T);

  test('an altered file on a difusor is repaired by publishing again', async () => {
    const d = lab.difusores[1];
    await appendFile(path.join(d.path, 'current', 'index.html'), '<p>resultado falso</p>');
    expect((await checkLive(d.path)).ok).toBe(false);
    const result = await publish(registry, path.join(cuts, CUT_B));
    const outcome = result.outcomes.find((o) => o.id === d.id);
    expect(outcome).toMatchObject({ result: 'live', plan: 'repair', filesSent: 1 });
    expect(await checkLive(d.path)).toEqual({ ok: true, output: '' });
  }, T);

  test('a difusor that is down keeps its whole previous cut (exit 3), and the next run catches it up', async () => {
    await writeCut(path.join(cuts, CUT_C), CUT_C, { ...SHAPE, counted: 33 }, path.join(cuts, CUT_B));
    const down = lab.difusores[2];
    await down.stop();
    try {
      const result = await publish(registry, cuts, { latest: true });
      expect(result.cut).toBe(CUT_C);
      expect(result.exitCode).toBe(3);
      const failed = result.outcomes.find((o) => o.id === down.id);
      expect(failed).toMatchObject({ result: 'failed', failedPhase: 'connecting' });
      expect(failed?.error).toMatch(new RegExp(`${down.host.replace(/\./g, '\\.')}:${down.port}`));
      expect(await liveCut(down.path)).toBe(`releases/${CUT_B}`);
      expect(await checkLive(down.path)).toEqual({ ok: true, output: '' });
      for (const d of lab.difusores.filter((x) => x !== down)) expect(await liveCut(d.path)).toBe(`releases/${CUT_C}`);
    } finally {
      await down.start();
    }
    const again = await publish(registry, cuts, { latest: true });
    expect(again.exitCode).toBe(0);
    expect(Object.fromEntries(again.outcomes.map((o) => [o.id, o.result]))).toEqual({
      [lab.difusores[0].id]: 'up-to-date',
      [lab.difusores[1].id]: 'up-to-date',
      [down.id]: 'live',
    });
    expect(await checkLive(down.path)).toEqual({ ok: true, output: '' });
  }, T);

  test('a difusor offering another host key gets nothing', async () => {
    const [victim, other] = lab.difusores;
    const lying = await lab.writeRegistry(
      { difusores: { [victim.id]: { host_key: other.hostKey } } },
      path.join(lab.dir, 'lying.yaml'),
    );
    const before = await snapshot(victim.path);
    const cutD = '20220605_2100_PREP_DGO';
    await writeCut(path.join(cuts, cutD), cutD, { ...SHAPE, counted: 40 }, path.join(cuts, CUT_C));
    const result = await publish(lying, path.join(cuts, cutD), { only: [victim.id] });
    expect(result.exitCode).toBe(1);
    const outcome = result.outcomes[0];
    expect(outcome).toMatchObject({ id: victim.id, result: 'failed', failedPhase: 'connecting' });
    expect(outcome.error).toMatch(/SHA256:[A-Za-z0-9+/]{43}.*SHA256:[A-Za-z0-9+/]{43}/s);
    expect(await snapshot(victim.path)).toEqual(before);
  }, T);

  test('hostile but legal names survive end to end and nothing is ever run from them', async () => {
    const cutE = '20220605_2115_PREP_DGO';
    const dir = path.join(cuts, cutE);
    const canary = path.join(os.tmpdir(), `difusion-canary-${process.pid}`);
    const names = [
      'con espacios.html',
      'acentuación ñandú.csv',
      "comilla'simple.json",
      'comilla"doble.json',
      '-empieza-con-guion.html',
      `$(touch ${canary}).html`,
      '`touch x`;rm -rf .html',
      'barra\\invertida.txt',
      'estrella*pregunta?.txt',
      'sub dir/-n/archivo con espacio.jpg',
    ];
    await mkdir(dir, { recursive: true });
    for (const name of names) {
      await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
      await writeFile(path.join(dir, name), `contenido de ${name}\n`);
    }
    const result = await publish(registry, dir, { only: [lab.difusores[0].id] });
    expect(result.outcomes[0]).toMatchObject({ result: 'live' });
    const root = lab.difusores[0].path;
    expect(await checkLive(root)).toEqual({ ok: true, output: '' });
    for (const name of names) {
      expect(await readFile(path.join(root, 'current', name), 'utf8')).toBe(`contenido de ${name}\n`);
    }
    expect(existsSync(canary)).toBe(false);
  }, T);

  test('a cut refused after the connections opened sends nothing and leaves no session behind', async () => {
    // The connections open while the cut is scanned: the refusal comes after them and must close them all.
    const bad = path.join(cuts, '20220605_2050_PREP_DGO');
    await mkdir(path.join(bad, 'datos'), { recursive: true });
    await writeFile(path.join(bad, 'index.html'), '<p>corte</p>');
    await symlink('/etc/passwd', path.join(bad, 'datos', 'casillas.json'));
    const live = (): Promise<Array<string | null>> => Promise.all(lab.difusores.map((d) => liveCut(d.path).catch(() => null)));
    const before = await live();
    await expect(publish(registry, bad)).rejects.toThrow(/refused cut .*"datos\/casillas.json": is a symbolic link/s);
    // Here: no ssh (master or rsync) left running; there: no sshd session left under any difusor's listener.
    const sessions = (): string[] => {
      const listeners = lab.difusores.map((d) => d.sshdPid);
      const there = listeners.flatMap((pid) => descendants(pid));
      const here = descendants(process.pid).filter((pid) => !listeners.includes(pid) && !there.includes(pid));
      // A process may end between the listing and the read of its command line: it is gone, which is the point.
      const cmdline = (pid: number): string | undefined => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
        } catch {
          return undefined;
        }
      };
      return [...here, ...there].flatMap((pid) => {
        const line = cmdline(pid);
        return line === undefined ? [] : [`${pid} ${line}`];
      });
    };
    for (let i = 0; i < 50 && sessions().length > 0; i++) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(sessions()).toEqual([]);
    expect(await live()).toEqual(before);
    for (const d of lab.difusores) expect(existsSync(path.join(d.path, 'releases', path.basename(bad)))).toBe(false);
    await rm(bad, { recursive: true });
  }, T);

  test('a dry run leaves every difusor byte for byte as it was', async () => {
    const before = await Promise.all(lab.difusores.map((d) => snapshot(d.path)));
    const result = await publish(registry, cuts, { latest: true, dryRun: true });
    expect(result.outcomes.every((o) => o.result === 'planned')).toBe(true);
    expect(result.outcomes.some((o) => o.filesToSend > 0)).toBe(true);
    const after = await Promise.all(lab.difusores.map((d) => snapshot(d.path)));
    expect(after).toEqual(before);
  }, T);

  test('where this host guesses wrong (a difusor wiped, one pointed back by its admin), the rest is sent after the guess', async () => {
    const [wiped, pointedBack, untouched] = lab.difusores;
    // Every difusor live on one cut, as this host knows; the next one shares its actas.
    const cutD = '20220605_2200_PREP_DGO';
    await writeCut(path.join(cuts, cutD), cutD, { ...SHAPE, counted: 45 }, path.join(cuts, CUT_C));
    expect((await publish(registry, path.join(cuts, cutD))).exitCode).toBe(0);
    const cutE = '20220605_2215_PREP_DGO';
    await writeCut(path.join(cuts, cutE), cutE, { ...SHAPE, counted: 50 }, path.join(cuts, cutD));
    for (const name of ['releases', 'current', '.staging']) await rm(path.join(wiped.path, name), { recursive: true, force: true });
    const releases = (await readdir(path.join(pointedBack.path, 'releases'))).sort();
    const older = releases[releases.length - 2] as string;
    await rm(path.join(pointedBack.path, 'current'));
    await symlink(`releases/${older}`, path.join(pointedBack.path, 'current'));

    const result = await publish(registry, path.join(cuts, cutE));
    expect(result.outcomes.map((o) => [o.id, o.result, o.error])).toEqual(lab.difusores.map((d) => [d.id, 'live', undefined]));
    const of = (id: string): (typeof result.outcomes)[number] => result.outcomes.find((o) => o.id === id) as (typeof result.outcomes)[number];
    // The wiped one had nothing to link from: it got every file, some on the guess and the rest after it.
    expect(of(wiped.id)).toMatchObject({ filesLinked: 0, filesToSend: of(wiped.id).filesSent });
    const staged = (await readJournal(lab.stateDir)).filter((e) => e.cut === cutE && e.phase === 'stage');
    const guessed = (id: string): number => Number(staged.find((e) => e.difusor === id)?.detail?.sentOnGuess ?? 0);
    for (const d of lab.difusores) expect(staged.find((e) => e.difusor === d.id)?.detail?.guessedFrom).toBeDefined();
    expect(guessed(wiped.id)).toBeGreaterThan(0);
    expect(guessed(wiped.id)).toBeLessThan(of(wiped.id).filesSent);
    expect(of(pointedBack.id).previous).toBe(older);
    expect(of(untouched.id).filesLinked).toBeGreaterThan(0);
    for (const d of lab.difusores) {
      expect(await liveCut(d.path)).toBe(`releases/${cutE}`);
      expect(await checkLive(d.path)).toEqual({ ok: true, output: '' });
      // Nothing left behind: the incoming directories were merged (or cleared) and removed.
      expect(await readdir(path.join(d.path, '.staging'))).toEqual([]);
    }
  }, T);
});
