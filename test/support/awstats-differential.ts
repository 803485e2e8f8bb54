/**
 * One seed of the differential comparison against AWStats 7.8: a log from apache-log-generator.ts (rotated,
 * gzipped, out of order), read by our counter and by AWStats itself through its own merge tool
 * (logresolvemerge.pl, as its documentation reads several rotated files). Every figure per day and per hour
 * must be AWStats' own, but for the differences the README lists, each accounted for line by line here:
 *   - Apache's `OPTIONS *` internal dummy connections: isbot calls their agent a robot; AWStats counts each as
 *     a hit and a page, and their loopback addresses as visitors with visits;
 *   - a 206 of a download (AWStats' mime type 'd'): AWStats adds its bytes to the day and hour, twice for a
 *     browser and once for a robot (then a robot hit), and no hit; SPEC tallies it as status 206;
 *   - a method AWStats does not know (FOO): AWStats drops it; SPEC tallies it by its status (Apache's 501).
 * Those lines are written the instant they begin (Apache answers them at once), so neither side ever judges
 * them out of order and the accounting needs no model of AWStats' ordering rule.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { countMerged } from '../../src/core/memoria/log-merge.js';
import { TrafficCounter, type TrafficFigures } from '../../src/core/memoria/traffic.js';
import { logFileSource } from '../../src/adapters/log-files.js';
import { AWSTATS_DOWNLOAD, generateApacheLogs, type GeneratedLogs } from './apache-log-generator.js';

const run = promisify(execFile);
export const AWSTATS = '/usr/lib/cgi-bin/awstats.pl';
export const LOGRESOLVEMERGE = '/usr/share/awstats/tools/logresolvemerge.pl';
const TZ = 'America/Mexico_City';

interface Slot {
  pages: number;
  hits: number;
  bytes: number;
  visits: number;
}

export interface AwstatsMonth {
  visits: number;
  unique: number;
  days: Map<string, Slot>;
  hours: Array<Omit<Slot, 'visits'>>;
  robots: { hits: number; bytes: number };
  errors: Record<string, number>;
  corrupted: number;
}

function section(text: string, name: string): string[][] {
  const match = new RegExp(`^BEGIN_${name} \\d+\\n([\\s\\S]*?)^END_${name}$`, 'm').exec(text);
  if (!match) return [];
  return (match[1] as string).split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/));
}

export function readAwstatsData(text: string, stdout: string): AwstatsMonth {
  const general = new Map(section(text, 'GENERAL').map((f) => [f[0], f[1]]));
  const days = new Map(
    section(text, 'DAY').map(([date, pages, hits, bytes, visits]) => [
      `${date!.slice(0, 4)}-${date!.slice(4, 6)}-${date!.slice(6, 8)}`,
      { pages: Number(pages), hits: Number(hits), bytes: Number(bytes), visits: Number(visits) },
    ]),
  );
  const hours = Array.from({ length: 24 }, () => ({ pages: 0, hits: 0, bytes: 0 }));
  for (const [hour, pages, hits, bytes] of section(text, 'TIME')) hours[Number(hour)] = { pages: Number(pages), hits: Number(hits), bytes: Number(bytes) };
  const robots = { hits: 0, bytes: 0 };
  for (const f of section(text, 'ROBOT')) {
    robots.hits += Number(f[1]);
    robots.bytes += Number(f[2]);
  }
  const errors = Object.fromEntries(section(text, 'ERRORS').map((f) => [f[0] as string, Number(f[1])]));
  const corrupted = Number(/Found (\d+) corrupted records/.exec(stdout)?.[1] ?? NaN);
  return { visits: Number(general.get('TotalVisits') ?? 0), unique: Number(general.get('TotalUnique') ?? 0), days, hours, robots, errors, corrupted };
}

const isoDay = (wallS: number): string => new Date(wallS * 1000).toISOString().slice(0, 10);
const hourOf = (wallS: number): number => new Date(wallS * 1000).getUTCHours();

/** What AWStats must show, from our figures and the listed differences, line by line. */
export function expectedAwstats(ours: TrafficFigures, logs: GeneratedLogs): Omit<AwstatsMonth, 'corrupted'> {
  const days = new Map<string, Slot>();
  for (const d of ours.days) days.set(d.date, { pages: d.pages, hits: d.hits, bytes: d.bytes, visits: d.visits });
  const hours = ours.hours.map(({ pages, hits, bytes }) => ({ pages, hits, bytes }));
  const robots = { hits: ours.robots.hits, bytes: ours.robots.bytes };
  const errors: Record<string, number> = { ...ours.errors };
  const less = (code: string): void => {
    errors[code] = (errors[code] ?? 0) - 1;
    if (errors[code] === 0) delete errors[code];
  };
  const dummyLast = new Map<string, number>();
  for (const line of [...logs.lines].sort((a, b) => a.startS - b.startS)) {
    const day = days.get(isoDay(line.startS)) as Slot;
    const hour = hours[hourOf(line.startS)]!;
    if (line.family === 'dummy') {
      robots.hits--;
      day.hits++;
      day.pages++;
      hour.hits++;
      hour.pages++;
      const last = dummyLast.get(line.host);
      if (last === undefined || isoDay(last) !== isoDay(line.startS) || line.startS - last > 3600) {
        day.visits++;
      }
      dummyLast.set(line.host, line.startS);
    } else if (line.family === 'range' && AWSTATS_DOWNLOAD.test(line.url)) {
      less('206');
      const times = line.agentKind === 'browser' ? 2 : 1;
      day.bytes += times * line.size;
      hour.bytes += times * line.size;
      if (line.agentKind !== 'browser') {
        robots.hits++;
        robots.bytes += line.size;
      }
    } else if (line.family === 'unknown-method') {
      less('501');
    }
  }
  const visits = [...days.values()].reduce((t, d) => t + d.visits, 0);
  return { visits, unique: ours.visitors + dummyLast.size, days, hours, robots, errors };
}

export interface SeedResult {
  seed: number;
  lines: number;
  files: number;
  outOfOrder: number;
  malformed: number;
  /** Every figure that differs beyond the listed differences, as 'what: ours-derived vs AWStats'. */
  mismatches: string[];
}

export async function compareSeed(seed: number, workDir: string, opts: { requests?: number } = {}): Promise<SeedResult> {
  const dir = join(workDir, `seed-${seed}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'data'), { recursive: true });
  const logs = generateApacheLogs(seed, opts);
  const paths: string[] = [];
  for (const f of logs.files) {
    const body = Buffer.from(f.lines.map((l) => l.text + '\n').join(''), 'latin1');
    const file = join(dir, f.name);
    await writeFile(file, f.gzip ? gzipSync(body) : body);
    paths.push(file);
  }

  const counter = new TrafficCounter({ from: '2022-06-01', to: '2022-06-30' }, TZ);
  await countMerged(await Promise.all(paths.map((p) => logFileSource(p))), counter);
  const ours = counter.result();

  const include = existsSync('/etc/awstats/awstats.conf') ? 'Include "/etc/awstats/awstats.conf"\n' : '';
  await writeFile(
    join(dir, 'awstats.diff.conf'),
    `${include}LogFile="${LOGRESOLVEMERGE} ${paths.join(' ')} |"\nLogFormat=1\nLogType=W\nDirData="${join(dir, 'data')}"\nSiteDomain="prep.example.mx"\nDNSLookup=0\n`,
  );
  const out = await run('perl', [AWSTATS, '-config=diff', `-configdir=${dir}`, '-update'], { maxBuffer: 1 << 24 });
  const aw = readAwstatsData(await readFile(join(dir, 'data', 'awstats062022.diff.txt'), 'utf8'), out.stdout);
  const want = expectedAwstats(ours, logs);

  const mismatches: string[] = [];
  const check = (what: string, expected: unknown, actual: unknown): void => {
    if (JSON.stringify(expected) !== JSON.stringify(actual)) mismatches.push(`${what}: expected ${JSON.stringify(expected)} from ours and the listed differences, AWStats has ${JSON.stringify(actual)}`);
  };
  check('visits', want.visits, aw.visits);
  check('visitors', want.unique, aw.unique);
  for (const [date, slot] of want.days) check(`day ${date}`, slot, aw.days.get(date) ?? { pages: 0, hits: 0, bytes: 0, visits: 0 });
  for (const date of aw.days.keys()) if (!want.days.has(date)) mismatches.push(`day ${date}: AWStats has a day we do not`);
  want.hours.forEach((slot, hour) => check(`hour ${hour}`, slot, aw.hours[hour]));
  check('robots', want.robots, aw.robots);
  check('errors', sorted(want.errors), sorted(aw.errors));
  await rm(dir, { recursive: true, force: true });
  return { seed, lines: logs.lines.length, files: logs.files.length, outOfOrder: ours.outOfOrder, malformed: ours.malformed, mismatches };
}

function sorted(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}
