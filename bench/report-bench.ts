/**
 * `npm run bench:report`: lines per second of the memoria técnica's log reading (parse, classify, visits)
 * against GoAccess and AWStats on the same generated 1,000,000-line combined log, side by side in one run.
 * Prints ratios; never a timed test. LINES=200000 for a shorter run.
 */
import { execFile } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { countMerged } from '../src/core/log-merge.js';
import { TrafficCounter } from '../src/core/traffic.js';
import { logFileSource } from '../src/ports/log-files.js';
import { generateLog } from '../test/support/logs.js';

const run = promisify(execFile);
const LINES = Number(process.env.LINES ?? 1_000_000);
const AWSTATS = '/usr/lib/cgi-bin/awstats.pl';

async function writeLog(file: string): Promise<void> {
  const out = createWriteStream(file);
  let batch: string[] = [];
  // A week of traffic, a few lines a second, 20,000 clients.
  for (const line of generateLog(LINES, { stepMs: (7 * 86_400_000) / LINES, start: '2022-06-05 00:00:00', clients: 20_000 })) {
    batch.push(line);
    if (batch.length === 10_000) {
      if (!out.write(batch.join('\n') + '\n')) await new Promise<void>((r) => out.once('drain', () => r()));
      batch = [];
    }
  }
  out.end(batch.length ? batch.join('\n') + '\n' : '');
  await new Promise<void>((r) => out.once('finish', () => r()));
}

async function timed<T>(fn: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const start = process.hrtime.bigint();
  const value = await fn();
  return { seconds: Number(process.hrtime.bigint() - start) / 1e9, value };
}

async function ours(log: string) {
  const counter = new TrafficCounter({ from: '2022-06-05', to: '2022-06-12' }, 'America/Mexico_City');
  await countMerged([await logFileSource(log)], counter);
  return counter.result();
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'difusion-report-bench-'));
  try {
    const log = path.join(dir, 'access_log');
    process.stdout.write(`generating ${LINES.toLocaleString('en')} lines... `);
    await writeLog(log);
    console.log(`${((await stat(log)).size / 1e6).toFixed(0)} MB`);

    const rows: Array<[string, number, string]> = [];
    // Warm the JIT and the page cache once, then measure.
    await ours(log);
    const mine = await timed(() => ours(log));
    rows.push(['difusion report (parse + AWStats rules + visits)', mine.seconds, `process RSS after: ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB, ${mine.value.hits} hits`]);

    if (existsSync('/usr/bin/goaccess')) {
      const g = await timed(() => run('goaccess', [log, '--log-format=COMBINED', '--no-global-config', '-o', path.join(dir, 'goaccess.json')], { maxBuffer: 1 << 26 }));
      rows.push(['GoAccess (goaccess --log-format=COMBINED -o x.json)', g.seconds, '']);
    } else {
      console.log('goaccess is not installed: skipped (scripts/ensure-tools.sh --lab installs it)');
    }
    if (existsSync(AWSTATS)) {
      const data = path.join(dir, 'awstats');
      await mkdir(data);
      const include = existsSync('/etc/awstats/awstats.conf') ? 'Include "/etc/awstats/awstats.conf"\n' : '';
      await writeFile(path.join(dir, 'awstats.bench.conf'), `${include}LogFile="${log}"\nLogFormat=1\nDirData="${data}"\nSiteDomain="prep.example.mx"\nDNSLookup=0\n`);
      const a = await timed(() => run('perl', [AWSTATS, '-config=bench', `-configdir=${dir}`, '-update'], { maxBuffer: 1 << 26 }));
      rows.push(['AWStats 7.8 (awstats.pl -update)', a.seconds, '']);
    } else {
      console.log('awstats is not installed: skipped');
    }

    const base = rows[0]![1];
    console.log('\n' + ['tool'.padEnd(52), 'seconds'.padStart(8), 'lines/s'.padStart(11), 'ours ×'.padStart(8), '  notes'].join(''));
    for (const [name, seconds, notes] of rows) {
      console.log(
        [name.padEnd(52), seconds.toFixed(2).padStart(8), Math.round(LINES / seconds).toLocaleString('en').padStart(11), (seconds / base).toFixed(2).padStart(8), `  ${notes}`].join(''),
      );
    }
    console.log('\n"ours ×": how many times faster than that tool difusion reads the same log (its time / ours), one run, 2 shared cores.');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
