/**
 * SPEC: a difusor's admin who runs AWStats 7.8 with its default configuration on the same logs gets the
 * same figures. Here AWStats itself (Debian's package) reads a generated log written in the publication
 * timezone, and its data file is compared with ours figure by figure.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { countMerged } from '../../src/core/memoria/log-merge.js';
import { TrafficCounter } from '../../src/core/memoria/traffic.js';
import { logFileSource } from '../../src/adapters/log-files.js';
import { GOOGLEBOT, generateLog, lines } from '../support/logs.js';

const run = promisify(execFile);
const AWSTATS = '/usr/lib/cgi-bin/awstats.pl';
const TZ = 'America/Mexico_City';

interface AwstatsData {
  visits: number;
  unique: number;
  days: Map<string, { pages: number; hits: number; bytes: number; visits: number }>;
  hours: Array<{ pages: number; hits: number; bytes: number }>;
  robots: { hits: number; bytes: number };
  errors: Record<string, number>;
}

function section(text: string, name: string): string[][] {
  const match = new RegExp(`^BEGIN_${name} \\d+\\n([\\s\\S]*?)^END_${name}$`, 'm').exec(text);
  if (!match) throw new Error(`no ${name} section in AWStats' data file`);
  return (match[1] as string).split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/));
}

function readAwstats(text: string): AwstatsData {
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
  return { visits: Number(general.get('TotalVisits')), unique: Number(general.get('TotalUnique')), days, hours, robots, errors };
}

const awstatsInstalled = existsSync(AWSTATS);
// A skip would let CI pass without ever comparing: there, a missing AWStats is a failure.
if (!awstatsInstalled && process.env.CI) {
  test('AWStats is installed (scripts/ensure-tools.sh --lab)', () => {
    throw new Error(`${AWSTATS} is missing: run scripts/ensure-tools.sh --lab (it installs Debian's awstats) so the figures are compared`);
  });
}
(awstatsInstalled ? describe : describe.skip)('AWStats 7.8 on the same log', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'difusion-awstats-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('hits, pages, visits, visitors and bytes are AWStats\' own, per day and per hour', async () => {
    const log = join(dir, 'access_log');
    // Every rule SPEC names, within what AWStats and SPEC agree on, then a day and a half of ordinary traffic.
    const rules = lines([
      { at: '2022-06-04 23:00:00', url: '/', host: '192.0.2.50' },
      { at: '2022-06-04 23:10:00', url: '/favicon.ico', size: 1150 },
      { at: '2022-06-04 23:10:01', url: '/robots.txt', size: 25 },
      { at: '2022-06-04 23:10:02', url: '/datos/PREP.csv', status: 304, size: '-' },
      { at: '2022-06-04 23:10:03', url: '/nada', status: 404, size: 196 },
      { at: '2022-06-04 23:10:04', url: '/cgi', status: 500, size: 500 },
      { at: '2022-06-04 23:10:05', url: '/', method: 'PATCH' },
      { at: '2022-06-04 23:10:06', url: '/datos/resultados.json', host: '2001:db8::7' },
      { at: '2022-06-04 23:10:07', url: '/', agent: GOOGLEBOT },
      { at: '2022-06-04 23:10:08', url: '/', agent: '-' },
      { at: '2022-06-04 23:10:09', url: '/', agent: '' },
      { at: '2022-06-04 23:59:59', url: '/', host: '192.0.2.50' },
      // Midnight: a new visit for the same address, 1 s later.
      { at: '2022-06-05 00:00:00', url: '/', host: '192.0.2.50' },
      // 3,600 s: the same visit; then 3,601 s: a new one.
      { at: '2022-06-05 01:00:00', url: '/', host: '192.0.2.50' },
      { at: '2022-06-05 02:00:01', url: '/', host: '192.0.2.50' },
    ]);
    await writeFile(log, rules + [...generateLog(30_000, { stepMs: 5000, start: '2022-06-05 03:00:00', noise: true })].join('\n') + '\n');
    const { aw, ours, stdout } = await both(log, 'prep');
    expect(stdout).toMatch(/Found 0 corrupted records/);

    const sum = (key: 'pages' | 'hits' | 'bytes' | 'visits'): number => [...aw.days.values()].reduce((t, d) => t + d[key], 0);
    expect({ hits: ours.hits, pages: ours.pages, bytes: ours.bytes, visits: ours.visits, visitors: ours.visitors }).toEqual({
      hits: sum('hits'),
      pages: sum('pages'),
      bytes: sum('bytes'),
      visits: aw.visits,
      visitors: aw.unique,
    });
    expect(sum('visits')).toBe(aw.visits);
    for (const day of ours.days.filter((d) => d.hits > 0)) {
      expect({ date: day.date, pages: day.pages, hits: day.hits, bytes: day.bytes, visits: day.visits }).toEqual({
        date: day.date,
        ...aw.days.get(day.date),
      });
    }
    expect(ours.hours.map(({ pages, hits, bytes }) => ({ pages, hits, bytes }))).toEqual(aw.hours);
    expect(ours.robots).toMatchObject(aw.robots);
    expect(ours.errors).toEqual(aw.errors);
    // The figures are not trivially equal: the log exercises every rule.
    expect(ours.hits).toBeGreaterThan(20_000);
    expect(ours.visits).toBeGreaterThan(ours.visitors);
    expect(ours.robots.hits).toBeGreaterThan(1000);
    expect(ours.methods.PATCH).toBeGreaterThan(100);
    expect(ours.methods.TRACE).toBeGreaterThan(100);
    expect(ours.favicon).toBeGreaterThan(100);
    expect(ours.robots.robotsTxt).toBeGreaterThan(100);
  }, 120_000);

  test('the one divergence the noise avoids: AWStats adds a download\'s 206 bytes (and robots), SPEC tallies a 206 apart', async () => {
    const log = join(dir, 'access_log.206');
    await writeFile(
      log,
      lines([
        { at: '2022-06-05 20:00:00', url: '/datos/PREP.csv', status: 200, size: 1000 },
        { at: '2022-06-05 20:00:01', url: '/datos/PREP.csv', status: 206, size: 777 },
      ]),
    );
    const { aw, ours } = await both(log, 'p206');
    expect(ours).toMatchObject({ hits: 1, bytes: 1000, errors: { '206': 1 } });
    // AWStats adds a 206's bytes in its 206 branch and again where it adds every hit's: twice.
    expect(aw.days.get('2022-06-05')).toMatchObject({ hits: 1, bytes: 1000 + 2 * 777 });
  }, 120_000);

  async function both(log: string, name: string) {
    const dataDir = join(dir, `data-${name}`);
    await mkdir(dataDir);
    // The Debian package's default configuration, with only where the log and data are, and no DNS lookups.
    const include = existsSync('/etc/awstats/awstats.conf') ? 'Include "/etc/awstats/awstats.conf"\n' : '';
    await writeFile(
      join(dir, `awstats.${name}.conf`),
      `${include}LogFile="${log}"\nLogFormat=1\nLogType=W\nDirData="${dataDir}"\nSiteDomain="prep.example.mx"\nDNSLookup=0\n` +
        (include ? '' : 'NotPageList="css js class gif jpg jpeg png bmp ico rss xml swf eot woff woff2"\n'),
    );
    const out = await run('perl', [AWSTATS, `-config=${name}`, `-configdir=${dir}`, '-update'], { maxBuffer: 1 << 24 });
    const aw = readAwstats(await readFile(join(dataDir, `awstats062022.${name}.txt`), 'utf8'));
    // The whole month in one period, as AWStats' monthly file holds it.
    const counter = new TrafficCounter({ from: '2022-06-01', to: '2022-06-30' }, TZ);
    await countMerged([await logFileSource(log)], counter);
    return { aw, ours: counter.result(), stdout: out.stdout };
  }
});
