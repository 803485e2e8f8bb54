/**
 * `npm run bench:report`: peak resident memory beside lines per second of the memoria técnica, the CLI as
 * shipped (`bin/run.js report` against a registry of local difusores whose access_log names generated logs),
 * against GoAccess and AWStats on the same files, side by side in one run. Never a timed test: it prints.
 *
 *   ours, GoAccess     1M and 3M lines of the same traffic shape (a week, 20,000 clients)
 *   ours               8 difusores of 1M lines each in one `report` run, against one
 *   ours               1M lines from 20,000, 200,000 and 1,000,000 distinct client addresses: the slope
 *                      of peak memory per million distinct addresses
 *   AWStats            1M and 3M lines; with AWSTATS_LINES=N, only a sample instead (the head of the 1M log)
 *
 * Peak memory is the child's maximum resident set (GNU time's %M, from wait4's rusage), CPU is its
 * user + system time. Logs are generated once into .bench/report/ (gitignored) and kept for the next run;
 * the CLI is built into .bench/report/pkg (tsc + scripts/build-dist.mjs there), so the checkout's dist/ is
 * left alone. BENCH_REPEATS (default 1) runs each measurement that many times and keeps the median.
 */
import { execFile } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { link, mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildCli } from './build-cli.js';
import { generateLog } from '../test/support/logs.js';

const exec = promisify(execFile);
const ROOT = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
const WORK = path.join(ROOT, '.bench', 'report');
const AWSTATS = '/usr/lib/cgi-bin/awstats.pl';
const AWSTATS_LINES = process.env.AWSTATS_LINES ? Number(process.env.AWSTATS_LINES) : undefined;
const REPEATS = Number(process.env.BENCH_REPEATS ?? 1);
const MILLION = 1_000_000;
const PERIOD = ['--from', '2022-06-03', '--to', '2022-06-13'];

const say = (text = ''): void => void process.stdout.write(text + '\n');
const progress = (text: string): void => void process.stderr.write(`[bench:report] ${text}\n`);

interface LogSpec {
  /** Lines the shape is spread over (a week); the file holds the first `take` of them. */
  lines: number;
  take?: number;
  /** Distinct client addresses; undefined: the generator's 20,000 (IPv6 among them). */
  distinct?: number;
}

/**
 * A log of the generator's traffic shape: `lines` spread over a week from 2022-06-05, 20,000 clients. With
 * `distinct`, each line's address is replaced by one of exactly that many (all of them met when lines ≥
 * distinct), the rest of the line unchanged.
 */
async function ensureLog(name: string, spec: LogSpec): Promise<string> {
  const file = path.join(WORK, 'logs', name);
  if (existsSync(file)) return file;
  await mkdir(path.dirname(file), { recursive: true });
  const take = spec.take ?? spec.lines;
  progress(`generating ${name}: ${take.toLocaleString('en')} lines`);
  const partial = `${file}.partial`;
  const out = createWriteStream(partial);
  let batch = '';
  let i = 0;
  for (let line of generateLog(spec.lines, { stepMs: (7 * 86_400_000) / spec.lines, start: '2022-06-05 00:00:00', clients: 20_000 })) {
    if (i >= take) break;
    if (spec.distinct) {
      // 7919 is prime and divides neither count: i ↦ i·7919 mod n visits every address.
      const a = (i * 7919) % spec.distinct;
      line = `10.${(a >> 16) & 255}.${(a >> 8) & 255}.${a & 255}${line.slice(line.indexOf(' '))}`;
    }
    batch += line + '\n';
    i++;
    if (batch.length > 1 << 20) {
      if (!out.write(batch)) await new Promise<void>((r) => out.once('drain', () => r()));
      batch = '';
    }
  }
  out.end(batch);
  await new Promise<void>((r) => out.once('finish', () => r()));
  await rename(partial, file);
  return file;
}

interface Measured {
  wall: number;
  cpu: number;
  peakMb: number;
  stdout: string;
}

/** One command under GNU time: wall, user + system CPU and the peak RSS of the process it waited for. */
async function timed(command: string, args: string[], options: { cwd?: string } = {}): Promise<Measured> {
  const timeFile = path.join(WORK, `time.${process.pid}`);
  let stdout = '';
  try {
    ({ stdout } = await exec('/usr/bin/time', ['-o', timeFile, '-f', '%U %S %e %M', command, ...args], { maxBuffer: 64 << 20, cwd: options.cwd, env: { ...process.env, NO_COLOR: '1' } }));
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    throw new Error(`${path.basename(command)} ${args.slice(0, 3).join(' ')} failed:\n${(e.stderr || e.stdout || String(error)).slice(-1500)}`);
  }
  const [user, sys, wall, rssKb] = readFileSync(timeFile, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number) as [number, number, number, number];
  await rm(timeFile, { force: true });
  return { wall, cpu: user + sys, peakMb: (rssKb * 1024) / 1e6, stdout };
}

async function median(times: number, run: () => Promise<Measured>): Promise<Measured> {
  const all: Measured[] = [];
  for (let i = 0; i < times; i++) all.push(await run());
  all.sort((a, b) => a.wall - b.wall);
  const mid = all[Math.floor(all.length / 2)]!;
  const byPeak = [...all].sort((a, b) => a.peakMb - b.peakMb);
  return { ...mid, peakMb: byPeak[Math.floor(byPeak.length / 2)]!.peakMb };
}

/** A registry of local difusores d1..dN, each with its own directory whose logs/access_log is `logs[i]`. */
async function registryFor(name: string, logs: string[]): Promise<string> {
  const dir = path.join(WORK, 'runs', name);
  await rm(dir, { recursive: true, force: true });
  const difusores: string[] = [];
  for (const [i, log] of logs.entries()) {
    const id = `d${i + 1}`;
    await mkdir(path.join(dir, id, 'logs'), { recursive: true });
    await mkdir(path.join(dir, id, 'www'));
    // A hard link: eight difusores of 1M lines cost no more disk than one.
    await link(log, path.join(dir, id, 'logs', 'access_log'));
    difusores.push(`  - id: ${id}`, `    name: Difusor ${id}`, '    transport: local', `    path: ${dir}/${id}/www`, `    public_url: http://localhost/${id}/`, `    access_log: ${dir}/${id}/logs/access_log*`);
  }
  const registry = path.join(dir, 'difusores.yaml');
  await writeFile(
    registry,
    ['version: 1', 'publication:', '  timezone: America/Mexico_City', "  window: { start: '2022-06-05T20:00', end: '2022-06-06T20:00' }", `  state_dir: ${dir}/state`, 'difusores:', ...difusores, ''].join('\n'),
  );
  return registry;
}

interface Row {
  tool: string;
  log: string;
  lines: number;
  m: Measured;
  note?: string;
  /** Distinct addresses with a page in the period: the ones `report` keeps in memory (first difusor). */
  visitors?: number;
}

async function ours(cli: string, name: string, logs: string[], linesEach: number): Promise<Row> {
  const registry = await registryFor(name, logs);
  const out = path.join(path.dirname(registry), 'memoria');
  const m = await median(REPEATS, () => timed(process.execPath, [cli, 'report', '--registry', registry, ...PERIOD, '--out', out, '--json']));
  const report = JSON.parse(m.stdout) as { difusores: Array<{ id: string; result: string; hits: number; visitors: number }> };
  const bad = report.difusores.filter((d) => d.result !== 'ok');
  if (bad.length > 0) throw new Error(`report ${name}: ${bad.map((d) => `${d.id} ${d.result}`).join(', ')}`);
  const d1 = report.difusores[0]!;
  return { tool: 'difusion report', log: name, lines: linesEach * logs.length, m, visitors: d1.visitors, note: `${d1.hits.toLocaleString('en')} hits, ${d1.visitors.toLocaleString('en')} visitors${logs.length > 1 ? ' each' : ''}` };
}

async function goaccess(name: string, log: string, lines: number): Promise<Row> {
  const out = path.join(WORK, 'runs', `goaccess-${name}.json`);
  const m = await median(REPEATS, () => timed('goaccess', [log, '--log-format=COMBINED', '--no-global-config', '-o', out]));
  await rm(out, { force: true });
  return { tool: 'GoAccess', log: name, lines, m };
}

async function awstats(name: string, log: string, lines: number, note?: string): Promise<Row> {
  const dir = path.join(WORK, 'runs', `awstats-${name}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(path.join(dir, 'data'), { recursive: true });
  const include = existsSync('/etc/awstats/awstats.conf') ? 'Include "/etc/awstats/awstats.conf"\n' : '';
  await writeFile(path.join(dir, 'awstats.bench.conf'), `${include}LogFile="${log}"\nLogFormat=1\nDirData="${dir}/data"\nSiteDomain="prep.example.mx"\nDNSLookup=0\n`);
  // AWStats keeps its history in DirData: every repeat starts from an empty one.
  const m = await median(REPEATS, async () => {
    await rm(path.join(dir, 'data'), { recursive: true, force: true });
    await mkdir(path.join(dir, 'data'));
    return timed('perl', [AWSTATS, '-config=bench', `-configdir=${dir}`, '-update']);
  });
  return { tool: 'AWStats', log: name, lines, m, note };
}

const mb = (n: number): string => `${n.toFixed(0)} MB`;
const rate = (lines: number, seconds: number): string => Math.round(lines / seconds).toLocaleString('en');
const x = (a: number, b: number): string => `${(a / b).toFixed(2)}×`;

async function main(): Promise<void> {
  await mkdir(WORK, { recursive: true });
  const started = performance.now();
  const load = os.loadavg()[0]!;
  const log1m = await ensureLog('week-1m.log', { lines: MILLION });
  const log3m = await ensureLog('week-3m.log', { lines: 3 * MILLION });
  const sample = AWSTATS_LINES ? await ensureLog(`week-1m-head-${AWSTATS_LINES}.log`, { lines: MILLION, take: AWSTATS_LINES }) : undefined;
  const distinct200k = await ensureLog('week-1m-200k-addresses.log', { lines: MILLION, distinct: 200_000 });
  const distinct1m = await ensureLog('week-1m-1m-addresses.log', { lines: MILLION, distinct: MILLION });
  progress('building the CLI into .bench/report/pkg');
  const cli = await buildCli(WORK, progress);
  const version = await timed(process.execPath, [cli, '--version']);

  const rows: Row[] = [];
  const step = async (label: string, work: () => Promise<Row>): Promise<Row> => {
    progress(label);
    const row = await work();
    rows.push(row);
    progress(`  ${row.m.wall.toFixed(2)} s, CPU ${row.m.cpu.toFixed(2)} s, peak ${mb(row.m.peakMb)}`);
    return row;
  };
  const one = await step('ours, 1M lines', () => ours(cli, '1M', [log1m], MILLION));
  const three = await step('ours, 3M lines', () => ours(cli, '3M', [log3m], 3 * MILLION));
  const eight = await step('ours, 8 difusores of 1M lines', () => ours(cli, '8 × 1M', Array.from({ length: 8 }, () => log1m), MILLION));
  const a200k = await step('ours, 1M lines from 200,000 addresses', () => ours(cli, '1M, 200k addresses', [distinct200k], MILLION));
  const a1m = await step('ours, 1M lines from 1,000,000 addresses', () => ours(cli, '1M, 1M addresses', [distinct1m], MILLION));
  let g1: Row | undefined;
  let g3: Row | undefined;
  if (existsSync('/usr/bin/goaccess')) {
    g1 = await step('GoAccess, 1M lines', () => goaccess('1M', log1m, MILLION));
    g3 = await step('GoAccess, 3M lines', () => goaccess('3M', log3m, 3 * MILLION));
  } else {
    progress('goaccess is not installed: skipped (scripts/ensure-tools.sh --lab installs it)');
  }
  let aw1: Row | undefined;
  let aw3: Row | undefined;
  if (!existsSync(AWSTATS)) progress('awstats is not installed: skipped');
  else if (sample && AWSTATS_LINES) {
    aw1 = await step(`AWStats, ${AWSTATS_LINES.toLocaleString('en')} lines`, () =>
      awstats(`${AWSTATS_LINES / 1000}k sample`, sample, AWSTATS_LINES, `a sample: the first ${AWSTATS_LINES.toLocaleString('en')} lines of the 1M log`),
    );
  } else {
    aw1 = await step('AWStats, 1M lines', () => awstats('1M', log1m, MILLION));
    aw3 = await step('AWStats, 3M lines', () => awstats('3M', log3m, 3 * MILLION));
  }

  say(`bench:report, ${new Date().toISOString().slice(0, 16)}, ${os.cpus().length} cores, load ${load.toFixed(1)} at the start and ${os.loadavg()[0]!.toFixed(1)} at the end, ${((performance.now() - started) / 1000).toFixed(0)} s; ${REPEATS === 1 ? 'one run each' : `median of ${REPEATS}`}`);
  say(`the CLI's bare start-up (--version): ${version.wall.toFixed(2)} s, peak ${mb(version.peakMb)}`);
  say();
  say(['tool'.padEnd(17), 'log'.padEnd(20), 'lines'.padStart(10), 'wall s'.padStart(8), 'CPU s'.padStart(8), 'lines/s'.padStart(10), 'lines/CPU s'.padStart(12), 'peak RSS'.padStart(10), '  notes'].join(''));
  for (const r of rows) {
    say(
      [
        r.tool.padEnd(17),
        r.log.padEnd(20),
        r.lines.toLocaleString('en').padStart(10),
        r.m.wall.toFixed(2).padStart(8),
        r.m.cpu.toFixed(2).padStart(8),
        rate(r.lines, r.m.wall).padStart(10),
        rate(r.lines, r.m.cpu).padStart(12),
        mb(r.m.peakMb).padStart(10),
        `  ${r.note ?? ''}`,
      ].join(''),
    );
  }
  say();
  say('ratios');
  say(`  peak, 3M lines / 1M lines:                     ${x(three.m.peakMb, one.m.peakMb)}   (target ≤ 1.30×, and under 250 MB)`);
  say(`  peak, 8 difusores / 1 difusor:                 ${x(eight.m.peakMb, one.m.peakMb)}   (${mb((eight.m.peakMb - one.m.peakMb) / 7)} per difusor more)`);
  // An address is kept once it asks for a page: the slope is per million of those (the report's visitors).
  const perMillion = (a: Row, b: Row): string => mb(((b.m.peakMb - a.m.peakMb) / (b.visitors! - a.visitors!)) * MILLION);
  say(`  peak per million visitors kept (slope):        ${perMillion(a200k, a1m)} (200k → 1M addresses in the log), ${perMillion(one, a1m)} (20k → 1M)`);
  say(`    visitors ${[one, a200k, a1m].map((r) => r.visitors!.toLocaleString('en')).join(' → ')}: peak ${[one, a200k, a1m].map((r) => mb(r.m.peakMb)).join(' → ')}`);
  say(`  CPU per difusor of 1M lines, 8 at once / one:  ${x(eight.m.cpu / 8, one.m.cpu)}`);
  if (g1 && g3) {
    say(`  lines/s, ours / GoAccess, 1M:                  ${x(g1.m.wall, one.m.wall)} by wall, ${x(g1.m.cpu, one.m.cpu)} by CPU   (target ≥ 3×)`);
    say(`  lines/s, ours / GoAccess, 3M:                  ${x(g3.m.wall, three.m.wall)} by wall, ${x(g3.m.cpu, three.m.cpu)} by CPU`);
    say(`  peak, ours / GoAccess, 1M; 3M:                 ${x(one.m.peakMb, g1.m.peakMb)}; ${x(three.m.peakMb, g3.m.peakMb)}`);
  }
  if (aw1) {
    say(`  lines/s, ours 1M / AWStats ${aw1.log.padEnd(12)}        ${x(MILLION / one.m.wall, aw1.lines / aw1.m.wall)} by wall, ${x(MILLION / one.m.cpu, aw1.lines / aw1.m.cpu)} by CPU`);
    say(`  peak, ours 1M / AWStats ${aw1.log.padEnd(12)}           ${x(one.m.peakMb, aw1.m.peakMb)}`);
  }
  if (aw3) {
    say(`  lines/s, ours / AWStats, 3M:                   ${x(aw3.m.wall, three.m.wall)} by wall, ${x(aw3.m.cpu, three.m.cpu)} by CPU`);
    say(`  peak, ours / AWStats, 3M:                      ${x(three.m.peakMb, aw3.m.peakMb)}`);
  }
  say();
  say('Peak RSS: GNU time %M of the process (node with the CLI, goaccess, perl). Ours includes node and the CLI start-up; 2 shared cores, so read the ratios.');
  await rm(path.join(WORK, 'runs'), { recursive: true, force: true });
  const logsMb = (await Promise.all([log1m, log3m, distinct200k, distinct1m].map((f) => stat(f)))).reduce((t, s) => t + s.size, 0) / 1e6;
  progress(`logs kept in ${path.relative(ROOT, path.join(WORK, 'logs'))} (${logsMb.toFixed(0)} MB); rm -r .bench/report to free them`);
}

await main();
