import { appendFile, mkdtemp, readFile, rm, symlink, rename, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startLab, type Lab } from './lab/sshd.js';
import { type Apache } from './lab/apache.js';
import { startVhost } from './lab/vhost.js';
import { startStaleCache, type StaleCache } from './lab/stale-cache.js';
import { makeLabCertificates, type LabCertificates } from './lab/tls.js';
import { listFiles, writeCut } from '../../bench/prep-cut.js';
import { publish } from './support/publish.js';
import { runCli, show, spawnCli, type CliExit } from './support/cli.js';
import { readJournal } from '../../src/core/records/journal.js';
import { wentLiveTimes, type ProbeReport, type ProbeRow } from '../../src/core/probe/probe.js';

const T = 240_000;
const SHAPE = { casillas: 40, counted: 10, imageBytes: 8_000, seed: 'probe' };
const C1 = '20220605_2015_PREP_DGO';
const C2 = '20220605_2030_PREP_DGO';

let lab: Lab;
let cuts: string;
let registry: string;
const apaches: Record<string, Apache & { vhost: string }> = {};
let cache: StaleCache;
/** When C2 went live, as the journal has it: the probe's clock is set relative to it. */
let c2Live: Date;

const get = (url: string): Promise<number> =>
  new Promise((resolve) => {
    http
      .get(url, { agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
      .on('error', () => resolve(-1));
  });

async function probe(args: string[], opts: { secondsAfterC2?: number; env?: Record<string, string>; registryFile?: string } = {}): Promise<{ run: CliExit; report: ProbeReport; row(id: string): ProbeRow }> {
  const now = new Date(c2Live.getTime() + (opts.secondsAfterC2 ?? 0) * 1000).toISOString();
  const run = await runCli(['probe', '--registry', opts.registryFile ?? registry, '--json', ...args], { DIFUSION_NOW: now, ...opts.env });
  let report: ProbeReport;
  try {
    report = JSON.parse(run.stdout) as ProbeReport;
  } catch {
    throw new Error(`probe printed no JSON\n${show(run)}`);
  }
  return { run, report, row: (id) => report.difusores.find((r) => r.id === id) as ProbeRow };
}

/** What an admin does by hand: point `current` at another release, with a rename as the helper does. */
async function pointCurrent(root: string, target: string): Promise<void> {
  await symlink(target, path.join(root, 'current.admin'));
  await rename(path.join(root, 'current.admin'), path.join(root, 'current'));
}

beforeAll(async () => {
  lab = await startLab({ difusores: 3 });
  cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-probe-'));
  await writeCut(path.join(cuts, C1), C1, SHAPE);
  await writeCut(path.join(cuts, C2), C2, { ...SHAPE, counted: 20 }, path.join(cuts, C1));
  expect((await publish(await lab.writeRegistry(), path.join(cuts, C1))).exitCode).toBe(0);
  for (const d of lab.difusores) apaches[d.id] = await startVhost(d);
  // d3's visitors go through a cache that keeps whatever it saw first: prime it with every file of C1.
  cache = await startStaleCache(apaches.d3!.url);
  for (const file of ['MANIFEST.sha256', ...(await listFiles(path.join(cuts, C1)))]) expect(await get(`${cache.url}${file}`)).toBe(200);
  registry = await lab.writeRegistry({
    difusores: { d1: { public_url: apaches.d1!.url }, d2: { public_url: apaches.d2!.url }, d3: { public_url: cache.url } },
  });
  expect((await publish(registry, path.join(cuts, C2))).exitCode).toBe(0);
  const live = wentLiveTimes(await readJournal(lab.stateDir)).get(C2);
  expect(live).toBeDefined();
  c2Live = live as Date;
}, T);

afterAll(async () => {
  await cache?.close();
  for (const a of Object.values(apaches)) await a.stop();
  await lab?.stop();
  if (cuts) await rm(cuts, { recursive: true, force: true });
}, T);

test('behind a caching proxy that keeps an old cut: that difusor is stale with its lag, the others fresh; journaled, and status shows it', async () => {
  const { run, report, row } = await probe([], { secondsAfterC2: 125 });
  expect(run.code).toBe(6);
  expect(report.newest).toBe(C2);
  for (const id of ['d1', 'd2']) expect(row(id)).toMatchObject({ ok: true, cut: C2, lagSeconds: 0, status: 200, differing: [] });
  expect(row('d1').filesChecked).toBeGreaterThanOrEqual(3 + 8);
  expect(row('d3')).toMatchObject({ ok: false, kinds: ['lag'], cut: C1, lagSeconds: 125, differing: [] });
  expect(row('d3').ttfbMs).toBeGreaterThanOrEqual(0);
  expect(cache.hits).toBeGreaterThan(0);

  const incidents = (await readJournal(lab.stateDir)).filter((e) => e.phase === 'probe');
  expect(incidents.filter((e) => e.result === 'failed')).toEqual([
    expect.objectContaining({ difusor: 'd3', cut: C1, detail: expect.objectContaining({ kinds: ['lag'], lagSeconds: 125 }) }),
  ]);
  expect(incidents.at(-1)).toMatchObject({ result: 'info', detail: expect.objectContaining({ failed: ['d3'] }) });
  expect(JSON.parse(await readFile(path.join(lab.stateDir, 'probe', 'd3.json'), 'utf8'))).toMatchObject({ row: { ok: false, kinds: ['lag'] } });

  // Within the minute the same difusor passes, its lag shown; without --json, plain lines name it.
  const early = await runCli(['probe', '--registry', registry], { DIFUSION_NOW: new Date(c2Live.getTime() + 30_000).toISOString() });
  expect(early.code).toBe(0);
  expect(early.stdout).toMatch(new RegExp(`  d3  ok  cut=${C1} lag=30s files=\\d+ differing=0 status=200`));
  expect(early.stdout).toMatch(new RegExp(`  d1  ok  cut=${C2} lag=0s`));

  const status = await runCli(['status', '--registry', registry, '--json']);
  const rows = (JSON.parse(status.stdout) as { difusores: Array<{ id: string; probe?: { ok: boolean; lagSeconds?: number } }> }).difusores;
  expect(rows.find((r) => r.id === 'd3')?.probe).toMatchObject({ ok: true, lagSeconds: 30, cut: C1 });
}, T);

test('--watch probes again and again, journaling an incident once rather than every round; Ctrl-C ends it with the verdict', async () => {
  const before = (await readJournal(lab.stateDir)).filter((e) => e.phase === 'probe').length;
  const watch = spawnCli(['probe', '--registry', registry, '--only', 'd3', '--watch', '1'], {
    DIFUSION_NOW: new Date(c2Live.getTime() + 125_000).toISOString(),
  });
  try {
    const rounds = (): number => watch.stdout().split('\n').filter((l) => / {2}d3 {2}FAIL lag {2}cut=/.test(l)).length;
    for (let waited = 0; rounds() < 3 && waited < 60_000; waited += 200) await new Promise((r) => setTimeout(r, 200));
    expect(rounds()).toBeGreaterThanOrEqual(3);
  } finally {
    watch.signal('SIGINT');
  }
  const end = await watch.exited;
  expect(end.code).toBe(6);
  const added = (await readJournal(lab.stateDir)).filter((e) => e.phase === 'probe').slice(before);
  expect(added.map((e) => `${e.result} ${e.difusor ?? ''}`)).toEqual(['failed d3', 'info ']);
}, T);

test('pointed back at an old release by its admin, a file edited in place: each fails, named, exit 6', async () => {
  const d1 = lab.difusor('d1');
  const d2 = lab.difusor('d2');
  const aggregate = path.join(d2.path, 'current', 'datos', 'resumen.json');
  const image = path.join(d2.path, 'current', 'actas', '0003-C2_B.jpg');
  const [aggregateBytes, imageBytes] = [await readFile(aggregate), await readFile(image)];
  await pointCurrent(d1.path, `releases/${C1}`);
  await appendFile(aggregate, ' ');
  await writeFile(image, Buffer.concat([imageBytes.subarray(0, 100), Buffer.from('retocada'), imageBytes.subarray(108)]));
  try {
    const { run, row } = await probe([], { secondsAfterC2: 125 });
    expect(run.code).toBe(6);
    expect(row('d1')).toMatchObject({ ok: false, kinds: ['lag'], cut: C1, lagSeconds: 125 });
    expect(row('d2')).toMatchObject({ ok: false, kinds: ['differs'], cut: C2, lagSeconds: 0 });
    expect(row('d2').differing).toContainEqual(expect.stringMatching(/^datos\/resumen\.json: content differs/));
    expect(row('d3').kinds).toEqual(['lag']);

    // Only --full is sure to reach the retouched image: every file, streamed and hashed.
    const full = await probe(['--full', '--only', 'd2']);
    expect(full.run.code).toBe(6);
    expect(full.report.difusores.map((r) => r.id)).toEqual(['d2']);
    expect(full.row('d2').filesChecked).toBe((await listFiles(path.join(cuts, C2))).length);
    expect(full.row('d2').differing).toEqual([
      expect.stringMatching(/^actas\/0003-C2_B\.jpg: content differs/),
      expect.stringMatching(/^datos\/resumen\.json: content differs/),
    ]);
    const journaled = (await readJournal(lab.stateDir)).filter((e) => e.phase === 'probe' && e.result === 'failed' && e.difusor === 'd2');
    expect(journaled.at(-1)?.detail).toMatchObject({ kinds: ['differs'], files: full.row('d2').differing });
  } finally {
    await pointCurrent(d1.path, `releases/${C2}`);
    await writeFile(aggregate, aggregateBytes);
    await writeFile(image, imageBytes);
  }
  expect((await probe(['--only', 'd1', '--only', 'd2'])).run.code).toBe(0);
}, T);

describe('over TLS', () => {
  let certs: LabCertificates;
  let dir: string;
  const tls: Apache[] = [];
  let tlsRegistry: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'difusion-probe-tls-'));
    certs = await makeLabCertificates(dir, { validDays: 10 });
    const [valid, selfSigned, expired] = [
      await startVhost(lab.difusor('d1'), { tls: certs.valid }),
      await startVhost(lab.difusor('d2'), { tls: certs.selfSigned }),
      await startVhost(lab.difusor('d3'), { tls: certs.expired }),
    ];
    tls.push(valid, selfSigned, expired);
    tlsRegistry = await lab.writeRegistry(
      { difusores: { d1: { public_url: valid.url }, d2: { public_url: selfSigned.url }, d3: { public_url: expired.url } } },
      path.join(dir, 'difusores.yaml'),
    );
  }, T);

  afterAll(async () => {
    for (const a of tls) await a.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, T);

  test('a certificate of the trusted lab CA passes with its days left (a warning under 14); self-signed and expired fail, named, exit 6', async () => {
    const { run, row } = await probe([], { registryFile: tlsRegistry, env: { NODE_EXTRA_CA_CERTS: certs.ca } });
    expect(run.code).toBe(6);
    expect(row('d1')).toMatchObject({ ok: true, cut: C2, status: 200 });
    expect(row('d1').certificate?.daysLeft).toBeGreaterThanOrEqual(9);
    expect(row('d1').certificate?.daysLeft).toBeLessThanOrEqual(10);
    expect(row('d1').warnings[0]).toMatch(/certificate expires in (9|10) day/);
    expect(row('d2')).toMatchObject({ ok: false, kinds: ['certificate'] });
    expect(row('d2').error).toMatch(/SELF_SIGNED/);
    expect(row('d3')).toMatchObject({ ok: false, kinds: ['certificate'] });
    expect(row('d3').error).toMatch(/CERT_HAS_EXPIRED/);

    // The lab CA is trusted only through NODE_EXTRA_CA_CERTS: without it, the same certificate is refused.
    const untrusted = await probe(['--only', 'd1'], { registryFile: tlsRegistry });
    expect(untrusted.row('d1')).toMatchObject({ ok: false, kinds: ['certificate'] });
  }, T);
});

test('a suspended difusor showing the notice passes; once its admin removes the notice, it fails, named, exit 6', async () => {
  const cutoff = await runCli(['cutoff', 'd2', '--reason', 'Alteró los resultados publicados', '--yes', '--registry', registry]);
  expect(cutoff.code).toBe(0);
  const shown = await probe(['--only', 'd1', '--only', 'd2']);
  expect(shown.run.code).toBe(0);
  expect(shown.row('d2')).toMatchObject({ ok: true, kinds: [], registryStatus: 'suspended', notice: { reason: 'Alteró los resultados publicados' } });
  expect(shown.row('d2').cut).toBeUndefined();
  // The vhost's own headers, as a cache in front would read them: the notice is never stored.
  const page = await fetch(`${apaches.d2!.url}datos/`);
  expect(page.status).toBe(503);
  expect(page.headers.get('cache-control')).toBe('no-store');
  await page.arrayBuffer();

  // The admin takes the notice rule out of the vhost: the notice's page answers 200 at /, and nothing else.
  const port = apaches.d2!.port;
  await apaches.d2!.stop();
  apaches.d2 = await startVhost(lab.difusor('d2'), { port, edit: (v) => v.replace(/^\s*RewriteEngine On[\s\S]*?<\/If>\n/m, '') });
  expect(apaches.d2.vhost).not.toMatch(/RewriteRule/);
  const noRule = await probe(['--only', 'd2']);
  expect(noRule.run.code).toBe(6);
  expect(noRule.row('d2')).toMatchObject({ ok: false, kinds: ['notice-missing'] });
  expect(noRule.row('d2').differing).toEqual(expect.arrayContaining([expect.stringMatching(/^\/index\.html: HTTP 200, not the notice's 503/), expect.stringMatching(/^\/datos\/: HTTP 404/)]));

  // With the rule back, the admin points current at the results again.
  await apaches.d2!.stop();
  apaches.d2 = await startVhost(lab.difusor('d2'), { port });
  const notice = await readFile(path.join(lab.difusor('d2').path, 'current', 'aviso.json'), 'utf8');
  expect(JSON.parse(notice)).toMatchObject({ aviso: 'suspension', difusor: 'd2' });
  await pointCurrent(lab.difusor('d2').path, `releases/${C2}`);
  const results = await probe(['--only', 'd2']);
  expect(results.run.code).toBe(6);
  expect(results.row('d2')).toMatchObject({ ok: false, kinds: ['notice-missing'], cut: C2 });
  const journaled = (await readJournal(lab.stateDir)).filter((e) => e.phase === 'probe' && e.result === 'failed' && e.difusor === 'd2');
  expect(journaled.slice(-2).map((e) => e.detail?.kinds)).toEqual([['notice-missing'], ['notice-missing']]);
}, T);

test('a web server down fails as down, named, exit 6 (the others still probed)', async () => {
  await apaches.d1!.stop();
  const { run, row } = await probe(['--only', 'd1', '--only', 'd3']);
  expect(run.code).toBe(6);
  expect(row('d3').ok).toBe(true);
  expect(row('d1')).toMatchObject({ ok: false, kinds: ['down'] });
  expect(row('d1').error).toMatch(/ECONNREFUSED/);
}, T);
