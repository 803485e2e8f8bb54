/**
 * `npm run bench:night`: a whole election night, compressed. 100 cuts in a row (25 hours at 15 minutes, from
 * 2022-06-05 20:00), each published with `publish --latest` through the built CLI to 8 lab difusores (real
 * sshd on loopback, each with a real Apache serving its `current` through the project's vhost), a `probe`
 * after each, and one difusor down for ten cuts (41–50) and caught up at the next. Read the ratios between
 * cut 10 and cut 100: anything that grows with the night shows there.
 *
 * Measured with GNU time per command (user + system CPU, wall, peak RSS of the publication host's process):
 * at cut 10 and at cut 100 a `publish --latest` (the cut's own), a no-op `publish --latest`, a `probe` and a
 * `status`; after every cut the state directory's and the journal's size and the releases each difusor keeps.
 *
 *   BENCH_CUTS=100        how many cuts
 *   BENCH_CASILLAS=240    casillas per cut (two acta images each, filled in over the night)
 *   BENCH_IMAGE_KB=16     size of each acta image
 *   DIFUSION_LAB_KEEP=1   leave the lab's files behind
 *
 * The CLI is built into the bench's own temporary directory (tsc + scripts/build-dist.mjs there): the
 * checkout's dist/ is left alone, as other work may be using it.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { buildCli } from './build-cli.js';
import { writeCut } from './prep-cut.js';
import { startLab, type Lab } from '../test/integration/lab/sshd.js';
import { startVhost } from '../test/integration/lab/vhost.js';
import type { Apache } from '../test/integration/lab/apache.js';

const exec = promisify(execFile);
const CUTS = Number(process.env.BENCH_CUTS ?? 100);
const CASILLAS = Number(process.env.BENCH_CASILLAS ?? 240);
const IMAGE_KB = Number(process.env.BENCH_IMAGE_KB ?? 16);
const DIFUSORES = 8;
const DOWN = { id: 'd8', from: 41, to: 50 };
const MEASURED = [10, CUTS];
const START = Date.UTC(2022, 5, 6, 1, 0); // 2022-06-05 20:00 in Mexico City (UTC-5)

interface Timed {
  cpu: number;
  wall: number;
  rssKb: number;
  code: number;
  stdout: string;
  stderr: string;
}

const say = (line = ''): void => void process.stdout.write(`${line}\n`);
const progress = (line: string): void => void process.stderr.write(`[night ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

/** The cut id and the wall time of cut n (1-based): 15 minutes apart in the publication timezone. */
function cutAt(n: number): { id: string; now: string } {
  const wall = new Date(START + (n - 1) * 15 * 60_000 - 5 * 3600_000);
  const p = (x: number): string => String(x).padStart(2, '0');
  const id = `${wall.getUTCFullYear()}${p(wall.getUTCMonth() + 1)}${p(wall.getUTCDate())}_${p(wall.getUTCHours())}${p(wall.getUTCMinutes())}_PREP_DGO`;
  // Two minutes after the cut: as cron would find it.
  const now = new Date(START + (n - 1) * 15 * 60_000 + 2 * 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return { id, now };
}

/** One CLI command under GNU time, as cron runs it. */
async function timed(cli: string, args: string[], env: Record<string, string>): Promise<Timed> {
  const timeFile = path.join(os.tmpdir(), `difusion-night-time-${process.pid}`);
  let stdout = '';
  let stderr = '';
  let code = 0;
  try {
    ({ stdout, stderr } = await exec('/usr/bin/time', ['-o', timeFile, '-f', '%U %S %e %M', process.execPath, cli, ...args], {
      maxBuffer: 64 << 20,
      env: { ...process.env, NO_COLOR: '1', ...env },
    }));
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; code?: number };
    stdout = e.stdout ?? '';
    stderr = e.stderr ?? '';
    code = typeof e.code === 'number' ? e.code : 1;
  }
  const last = readFileSync(timeFile, 'utf8').trim().split('\n').at(-1)!;
  const [user, sys, wall, rssKb] = last.split(' ').map(Number) as [number, number, number, number];
  await rm(timeFile, { force: true });
  return { cpu: user + sys, wall, rssKb, code, stdout, stderr };
}

async function sizeOf(p: string): Promise<number> {
  const info = await stat(p).catch(() => undefined);
  if (!info) return 0;
  if (!info.isDirectory()) return info.size;
  let total = 0;
  for (const name of await readdir(p)) total += await sizeOf(path.join(p, name));
  return total;
}

const ratio = (a: number, b: number): string => (b > 0 ? `${(a / b).toFixed(2)}×` : '-');
const kb = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KB`;

async function main(): Promise<void> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'difusion-night-'));
  // Apache runs as www-data and must walk down to the difusores' files.
  await chmod(tmp, 0o755);
  let lab: Lab | undefined;
  const apaches: Apache[] = [];
  const cleanup = async (): Promise<void> => {
    for (const a of apaches) await a.stop().catch(() => undefined);
    await lab?.stop().catch(() => undefined);
    if (process.env.DIFUSION_LAB_KEEP !== '1') await rm(tmp, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));
  try {
    progress('building the CLI into the bench directory');
    const cli = await buildCli(tmp, progress);
    progress(`starting ${DIFUSORES} sshd difusores and their Apaches`);
    lab = await startLab({ difusores: DIFUSORES, baseDir: tmp });
    await chmod(lab.dir, 0o755).catch(() => undefined);
    const last = cutAt(CUTS);
    const window = { start: '2022-06-05T20:00', end: `${last.id.slice(0, 4)}-${last.id.slice(4, 6)}-${last.id.slice(6, 8)}T23:59` };
    const registry = await lab.writeRegistry({ publication: { window } });
    // Apache needs `current` to exist: the vhosts start once the first cut is live, and the registry then names them.
    const startApaches = async (): Promise<void> => {
      const urls: Record<string, { public_url: string }> = {};
      for (const d of lab!.difusores) {
        await chmod(d.dir, 0o755);
        await chmod(d.path, 0o755);
        const apache = await startVhost(d);
        apaches.push(apache);
        urls[d.id] = { public_url: apache.url };
      }
      await lab!.writeRegistry({ publication: { window }, difusores: urls });
    };
    const stateDir = lab.stateDir;
    const cutsDir = path.join(tmp, 'cortes');
    await mkdir(cutsDir, { recursive: true });

    const rows: Array<{ n: number; publish: Timed; probe?: Timed; stateBytes: number; journalBytes: number; journalLines: number; kept: number[] }> = [];
    const measured = new Map<number, { publish: Timed; noop: Timed; probe: Timed; status: Timed }>();
    let previous: string | undefined;
    const started = performance.now();
    for (let n = 1; n <= CUTS; n++) {
      const { id, now } = cutAt(n);
      const env = { DIFUSION_NOW: now };
      // The producer writes under another name and renames into place.
      const staging = path.join(cutsDir, `.${id}.tmp`);
      await writeCut(staging, id, { casillas: CASILLAS, counted: Math.min(CASILLAS, Math.round((CASILLAS * n) / CUTS)), imageBytes: IMAGE_KB * 1024, seed: 'night' }, previous);
      await rename(staging, path.join(cutsDir, id));
      // Cuts older than the last one stay in the producer's directory, as a PREP's do all night.
      previous = path.join(cutsDir, id);
      if (n === DOWN.from) await lab.difusor(DOWN.id).stop();
      if (n === DOWN.to + 1) await lab.difusor(DOWN.id).start();

      const publish = await timed(cli, ['publish', '--latest', cutsDir, '--registry', registry], env);
      const expected = n >= DOWN.from && n <= DOWN.to ? 3 : 0;
      if (publish.code !== expected) progress(`cut ${n} ${id}: publish exit ${publish.code} (expected ${expected})\n${publish.stdout.slice(-1500)}\n${publish.stderr.slice(-1500)}`);
      if (n === 1) await startApaches();
      const probe = await timed(cli, ['probe', '--registry', registry, '--json'], env);
      if (probe.code !== 0 && !(n >= DOWN.from && n <= DOWN.to)) progress(`cut ${n}: probe exit ${probe.code}: ${probe.stderr.slice(-500)}`);
      if (MEASURED.includes(n)) {
        const noop = await timed(cli, ['publish', '--latest', cutsDir, '--registry', registry], env);
        const status = await timed(cli, ['status', '--registry', registry], env);
        measured.set(n, { publish, noop, probe, status });
      }
      const kept = await Promise.all(lab.difusores.map(async (d) => (await readdir(path.join(d.path, 'releases')).catch(() => [] as string[])).length));
      const journal = path.join(stateDir, 'journal.jsonl');
      const journalText = readFileSync(journal, 'utf8');
      rows.push({ n, publish, probe, stateBytes: await sizeOf(stateDir), journalBytes: journalText.length, journalLines: journalText.trim().split('\n').length, kept });
      if (n % 10 === 0) progress(`cut ${n}/${CUTS} ${id}: publish ${publish.wall.toFixed(2)} s, state ${kb(rows.at(-1)!.stateBytes)}`);
    }
    const verify = await timed(cli, ['journal', 'verify', '--registry', registry], {});

    say(`A night of ${CUTS} cuts to ${DIFUSORES} difusores (${CASILLAS} casillas, ${IMAGE_KB} KB actas), ${DOWN.id} down for cuts ${DOWN.from}–${DOWN.to}; ${((performance.now() - started) / 1000).toFixed(0)} s, load ${os.loadavg()[0]!.toFixed(2)} at the end`);
    say();
    say('command at cut 10 → cut 100          CPU s            wall s           peak RSS MB');
    const a = measured.get(MEASURED[0]!)!;
    const b = measured.get(MEASURED[1]!)!;
    for (const key of ['publish', 'noop', 'probe', 'status'] as const) {
      const x = a[key];
      const y = b[key];
      const label = { publish: 'publish --latest (a new cut)', noop: 'publish --latest (no-op)', probe: 'probe', status: 'status' }[key];
      say(
        `${label.padEnd(36)} ${x.cpu.toFixed(2)} → ${y.cpu.toFixed(2)} (${ratio(y.cpu, x.cpu)})   ${x.wall.toFixed(2)} → ${y.wall.toFixed(2)} (${ratio(y.wall, x.wall)})   ${(x.rssKb / 1024).toFixed(0)} → ${(y.rssKb / 1024).toFixed(0)} (${ratio(y.rssKb, x.rssKb)})`,
      );
    }
    const peak = Math.max(...rows.flatMap((r) => [r.publish.rssKb, r.probe?.rssKb ?? 0]), ...[...measured.values()].flatMap((m) => [m.noop.rssKb, m.status.rssKb]));
    say(`peak RSS of any command over the night: ${(peak / 1024).toFixed(0)} MB`);
    say();
    const at = (n: number) => rows[n - 1]!;
    const perCut = (from: number, to: number, pick: (r: (typeof rows)[number]) => number): string => kb((pick(at(to)) - pick(at(from))) / (to - from));
    say(`state directory: ${kb(at(1).stateBytes)} at cut 1, ${kb(at(10).stateBytes)} at cut 10, ${kb(at(CUTS).stateBytes)} at cut ${CUTS}; ${perCut(1, CUTS, (r) => r.stateBytes)} per cut`);
    say(`journal: ${kb(at(10).journalBytes)} (${at(10).journalLines} entries) at cut 10, ${kb(at(CUTS).journalBytes)} (${at(CUTS).journalLines} entries) at cut ${CUTS}; ${perCut(1, CUTS, (r) => r.journalBytes)} per cut`);
    say(`releases kept per difusor at cut ${CUTS}: ${at(CUTS).kept.join(' ')} (max over the night ${Math.max(...rows.flatMap((r) => r.kept))})`);
    const downRows = rows.filter((r) => r.n >= DOWN.from && r.n <= DOWN.to + 1);
    if (CUTS > DOWN.to) say(`${DOWN.id} down: publish exits ${downRows.map((r) => r.publish.code).join(' ')} for cuts ${DOWN.from}–${DOWN.to + 1}; catch-up publish ${at(DOWN.to + 1).publish.wall.toFixed(2)} s`);
    const walls = rows.map((r) => r.publish.wall);
    const firstTen = walls.slice(0, 10).reduce((s, x) => s + x, 0) / 10;
    const lastTen = walls.slice(-10).reduce((s, x) => s + x, 0) / 10;
    say(`publish wall, mean of the first ten cuts ${firstTen.toFixed(2)} s, of the last ten ${lastTen.toFixed(2)} s (${ratio(lastTen, firstTen)})`);
    say(`journal verify at the end: exit ${verify.code}, ${verify.cpu.toFixed(2)} CPU s`);
    say();
    say('cut  publish-wall  publish-cpu  probe-cpu  state-KB  journal-KB  kept');
    for (const r of rows.filter((r) => r.n % 10 === 0 || r.n === 1 || (r.n >= DOWN.from && r.n <= DOWN.to + 1)))
      say(`${String(r.n).padStart(3)}  ${r.publish.wall.toFixed(2).padStart(12)}  ${r.publish.cpu.toFixed(2).padStart(11)}  ${(r.probe?.cpu ?? 0).toFixed(2).padStart(9)}  ${(r.stateBytes / 1024).toFixed(0).padStart(8)}  ${(r.journalBytes / 1024).toFixed(0).padStart(10)}  ${r.kept.join(',')}`);
    await writeFile(path.join(os.tmpdir(), 'difusion-night-last.json'), JSON.stringify(rows.map((r) => ({ ...r, publish: { ...r.publish, stdout: undefined, stderr: undefined }, probe: undefined }))));
  } finally {
    await cleanup();
  }
}

await main();
