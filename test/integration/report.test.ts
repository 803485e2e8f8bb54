/**
 * `difusion report` end to end on the lab: logs pulled over real SSH (a shell account behind a proxy that
 * drops the link mid-file, a restricted account whose log name has a space), a local difusor read in place,
 * an unreachable one, incidents from a real journal, and the page opened in chromium.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { openJournal } from '../../src/core/records/journal.js';
import { countMerged } from '../../src/core/memoria/log-merge.js';
import type { MemoriaReport } from '../../src/core/memoria/report.js';
import { TrafficCounter } from '../../src/core/memoria/traffic.js';
import { logFileSource } from '../../src/adapters/log-files.js';
import { startLab, type Lab } from './lab/sshd.js';
import { startProxy, type Proxy } from './lab/proxy.js';
import { runCli, show } from './support/cli.js';
import { viewPage } from './support/browser.js';
import { GOOGLEBOT, generateLog, lines } from '../support/logs.js';

const T = 180_000;
const TZ = 'America/Mexico_City';
const HELPER = path.resolve('templates/difusion-helper.sh');
const PERIOD = ['--from', '2022-06-05', '--to', '2022-06-07'];
const BASELINE = ['--baseline-from', '2022-05-29', '--baseline-to', '2022-05-29'];

let lab: Lab;
let proxy: Proxy;
let registry: string;
let out: string;
const logDir = (id: string): string => path.join(lab.difusor(id).dir, 'logs');

const sha = async (file: string): Promise<string> => createHash('sha256').update(await readFile(file)).digest('hex');

async function expected(files: string[], period = { from: '2022-06-05', to: '2022-06-07' }) {
  const counter = new TrafficCounter(period, TZ);
  await countMerged(await Promise.all(files.map((f) => logFileSource(f))), counter);
  return counter.result();
}

async function report(extra: string[] = []): Promise<{ code: number | null; json: MemoriaReport; text: string }> {
  const run = await runCli(['report', '--registry', registry, ...PERIOD, ...BASELINE, '--out', out, '--json', ...extra]);
  let json: MemoriaReport;
  try {
    json = JSON.parse(run.stdout) as MemoriaReport;
  } catch {
    throw new Error(show(run));
  }
  return { code: run.code, json, text: show(run) };
}

const byId = (r: MemoriaReport, id: string) => r.difusores.find((d) => d.id === id)!;

beforeAll(async () => {
  lab = await startLab({ difusores: 3 });
  const d1 = lab.difusor('d1');
  const d2 = lab.difusor('d2');
  proxy = await startProxy({ host: d1.host, port: d1.port });
  out = path.join(lab.dir, 'memoria');

  // d1: yesterday's log rotated and compressed, and a big live log for the night.
  await mkdir(logDir('d1'), { recursive: true });
  await writeFile(
    path.join(logDir('d1'), 'access_log.1.gz'),
    gzipSync(
      lines([
        { at: '2022-05-29 12:00:00', host: '192.0.2.1' },
        { at: '2022-05-29 12:00:05', host: '192.0.2.2', url: '/datos/PREP.csv' },
        { at: '2022-06-05 20:00:00', host: '192.0.2.1' },
        { at: '2022-06-05 20:00:01', host: '192.0.2.1', url: '/favicon.ico' },
        { at: '2022-06-05 20:00:02', host: '2001:db8::1', url: '/datos/resultados.json', status: 304, size: '-' },
        { at: '2022-06-05 20:00:03', host: '192.0.2.9', agent: GOOGLEBOT },
        { at: '2022-06-05 20:00:04', host: '192.0.2.9', status: 500 },
      ]),
    ),
  );
  await writeFile(path.join(logDir('d1'), 'access_log'), [...generateLog(80_000, { start: '2022-06-05 21:00:00', stepMs: 2000 })].join('\n') + '\n');

  // d2: a restricted account pinning its log glob, and a log whose name has a space (it travels as plain tokens).
  await writeFile(d2.authorizedKeysFile, `restrict,command="DIFUSION_ACCESS_LOG='${logDir('d2')}/prep access_log*' sh ${HELPER} ${d2.path}" ${lab.clientPublicKey}\n`, { mode: 0o600 });
  await mkdir(logDir('d2'), { recursive: true });
  await writeFile(path.join(logDir('d2'), 'prep access_log'), [...generateLog(3000, { seed: 2, start: '2022-06-06 08:00:00' })].join('\n') + '\n');

  const local = path.join(lab.dir, 'espejo');
  await mkdir(path.join(local, 'logs'), { recursive: true });
  await writeFile(path.join(local, 'logs', 'access_log'), lines([{ at: '2022-06-05 20:15:00' }, { at: '2022-06-05 20:16:00', url: '/img/a.png' }]));

  registry = await lab.writeRegistry({
    difusores: {
      d1: { host: proxy.host, port: proxy.port, access_log: `${logDir('d1')}/access_log*` },
      d2: { access: 'restricted', access_log: `${logDir('d2')}/prep access_log*` },
      d3: { access_log: '/var/log/httpd/access_log*' },
    },
    extra: [{ id: 'espejo', name: 'Espejo local', transport: 'local', path: local, public_url: 'http://localhost/prep/', access_log: `${local}/logs/access_log*` }],
  });

  // The bitácora of election night: two cuts, d2 a minute and a half late on the second, d3 failing, a probe, a cut-off.
  const at = (iso: string) => ({ now: () => new Date(iso), fromEnv: false });
  const ctx = { run: 'r1', operator: 'prep@host', command: 'publish --latest /srv/cortes' };
  let journal = await openJournal(lab.stateDir, { ...ctx, clock: at('2022-06-06T01:15:05Z') });
  for (const id of ['d1', 'd2']) {
    await journal.append({ difusor: id, cut: '20220605_2015', phase: 'switch', result: 'ok', detail: { switched: true, switchedAt: '2022-06-06T01:15:04Z', lateSeconds: 0 } });
  }
  await journal.append({ difusor: 'd3', cut: '20220605_2015', phase: 'staging', result: 'failed', error: 'connection refused' });
  journal = await openJournal(lab.stateDir, { ...ctx, run: 'r2', clock: at('2022-06-06T01:32:00Z') });
  await journal.append({ difusor: 'd1', cut: '20220605_2030', phase: 'switch', result: 'ok', detail: { switched: true, switchedAt: '2022-06-06T01:30:10Z', lateSeconds: 0 } });
  await journal.append({ difusor: 'd2', cut: '20220605_2030', phase: 'switch', result: 'ok', detail: { switched: true, switchedAt: '2022-06-06T01:31:40Z', lateSeconds: 90 } });
  journal = await openJournal(lab.stateDir, { run: 'r3', operator: 'prep@host', command: 'probe', clock: at('2022-06-06T03:00:00Z') });
  await journal.append({ difusor: 'd2', cut: '20220605_2030', phase: 'probe', result: 'failed', detail: { kinds: ['differs'], files: ['index.html'] } });
  journal = await openJournal(lab.stateDir, { run: 'r4', operator: 'prep@host', command: 'cutoff d3', clock: at('2022-06-06T04:00:00Z') });
  await journal.append({ difusor: 'd3', phase: 'cutoff', result: 'ok', detail: { reason: 'alteró los resultados <script>' } });
  // Outside the period: not an incident of this memoria.
  await journal.append({ difusor: 'd3', cut: '20220601_1000', phase: 'staging', result: 'failed', error: 'simulacro' });

  await lab.difusor('d3').stop();
}, T);

afterAll(async () => {
  await proxy?.close();
  await lab?.stop();
}, T);

describe('difusion report on the lab', () => {
  let partial = 0;
  const copyOf = async (id: string, name: string): Promise<string> => {
    const dir = path.join(lab.stateDir, 'logs', id);
    const file = (await readdir(dir)).find((f) => f.endsWith(name));
    if (!file) throw new Error(`no local copy of ${name} in ${dir}`);
    return path.join(dir, file);
  };

  test('a link dropped mid-pull and an unreachable difusor are named; the others are reported (exit 3)', async () => {
    proxy.cutAfterDown(2 * 1024 * 1024);
    const r = await report();
    expect(r.code).toBe(3);
    expect(byId(r.json, 'd1')).toMatchObject({ result: 'failed' });
    expect(byId(r.json, 'd3')).toMatchObject({ result: 'failed' });
    expect(byId(r.json, 'd3').error).toMatch(/d3|127\.0\.0\.13|refused/);
    expect(byId(r.json, 'd2')).toMatchObject({ result: 'ok' });
    expect(byId(r.json, 'espejo')).toMatchObject({ result: 'ok', hits: 2, pages: 1, visits: 1 });
    partial = (await stat(await copyOf('d1', 'access_log'))).size;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan((await stat(path.join(logDir('d1'), 'access_log'))).size);
  }, T);

  test('the next run resumes from where the copy stopped, and counts as if read in place', async () => {
    const live = path.join(logDir('d1'), 'access_log');
    const rotated = path.join(logDir('d1'), 'access_log.1.gz');
    const r = await report();
    expect(r.code).toBe(3); // d3 is still down
    const d1 = byId(r.json, 'd1');
    expect(d1.result).toBe('ok');
    expect(d1.logs.bytesPulled).toBe((await stat(live)).size - partial + (await stat(rotated)).size);
    expect(await sha(await copyOf('d1', 'access_log'))).toBe(await sha(live));
    expect(await sha(await copyOf('d1', 'access_log.1.gz'))).toBe(await sha(rotated));

    const want = await expected([live, rotated]);
    expect(d1).toMatchObject({ hits: want.hits, pages: want.pages, visits: want.visits, visitors: want.visitors, bytes: want.bytes });
    expect(d1.days).toEqual(want.days);
    expect(d1.errors['500']).toBe(1);
    expect(d1.favicon).toBe(1);
    expect(d1.robots.hits).toBeGreaterThan(0);
    // The baseline day (29 May) holds one page and one download: its ratio is the election's daily average over it.
    expect(d1.baseline).toMatchObject({ hits: 2, pages: 1, visits: 1, visitors: 1 });
    expect(d1.ratio?.visits).toBeCloseTo(want.visits / 3 / 1, 1);

    const d2 = byId(r.json, 'd2');
    const want2 = await expected([path.join(logDir('d2'), 'prep access_log')]);
    expect(d2).toMatchObject({ result: 'ok', hits: want2.hits, visits: want2.visits, visitors: want2.visitors });
  }, T);

  test('nothing already here is pulled again; a rotation pulls only the new file', async () => {
    let r = await report();
    expect(byId(r.json, 'd1').logs.bytesPulled).toBe(0);
    expect(byId(r.json, 'd2').logs.bytesPulled).toBe(0);

    // logrotate: access_log becomes access_log.2 (same inode), a new access_log starts.
    await rename(path.join(logDir('d1'), 'access_log'), path.join(logDir('d1'), 'access_log.2'));
    const fresh = lines([{ at: '2022-06-07 10:00:00', host: '192.0.2.77' }]);
    await writeFile(path.join(logDir('d1'), 'access_log'), fresh);
    r = await report();
    const d1 = byId(r.json, 'd1');
    expect(d1.logs.bytesPulled).toBe(Buffer.byteLength(fresh));
    const want = await expected(['access_log', 'access_log.1.gz', 'access_log.2'].map((f) => path.join(logDir('d1'), f)));
    expect(d1).toMatchObject({ hits: want.hits, visits: want.visits, visitors: want.visitors });
  }, T);

  test('incidents come from the journal, in the period and the publication timezone', async () => {
    const r = await report(['--only', 'd2', '--only', 'espejo']);
    expect(r.code).toBe(0);
    expect(r.json.incidents.map((i) => [i.kind, i.difusor, i.local.slice(0, 16)])).toEqual([
      ['publish-failed', 'd3', '2022-06-05 20:15'],
      ['lag', 'd2', '2022-06-05 20:31'],
      ['probe-failed', 'd2', '2022-06-05 22:00'],
      ['cutoff', 'd3', '2022-06-05 23:00'],
    ]);
    expect(r.json.cuts.map((c) => [c.cut, c.local])).toEqual([
      ['20220605_2015', '2022-06-05 20:15:04 (UTC-5)'],
      ['20220605_2030', '2022-06-05 20:30:10 (UTC-5)'],
    ]);
    expect(byId(r.json, 'd2').lags.map((l) => l.lateSeconds)).toEqual([0, 90]);
  }, T);

  test('the page: self-contained, in Spanish, with every difusor, its figures and the incidents', async () => {
    const r = await report();
    const d1 = byId(r.json, 'd1');
    const html = await readFile(path.join(out, 'index.html'), 'utf8');
    expect(html).not.toMatch(/<script|<link|src="http|url\(http/);
    expect(html).toContain('alteró los resultados &lt;script&gt;');
    const csv = await readFile(path.join(out, 'd1.csv'), 'utf8');
    expect(csv.split('\r\n')[1]).toBe(`total,,${d1.visits},${d1.visitors},${d1.pages},${d1.hits},${d1.bytes}`);

    const [phone, desktop] = await viewPage(`file://${path.join(out, 'index.html')}`, 'report');
    for (const view of [phone!, desktop!]) {
      expect(view.externalRequests).toEqual([]);
      expect(view.title).toBe('Memoria técnica de los difusores oficiales del PREP');
      expect(view.text).toMatch(/Resumen por difusor/);
      expect(view.text).toMatch(/Incidentes/);
      expect(view.text).toMatch(/Difusor de prueba 1 \(d1\)/);
      expect(view.text).toMatch(/Retraso mayor a un minuto/);
      expect(view.text).toContain(new Intl.NumberFormat('es-MX').format(d1.hits));
      expect(view.text).toContain(new Intl.NumberFormat('es-MX').format(d1.visits));
      expect(view.text).toMatch(/sin datos: falló/);
    }
    expect(phone!.fitsWidth).toBe(true);
    await rm(path.join(out, 'report.json'));
  }, T);
});
