import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { startLab, type Lab } from './lab/sshd.js';
import { startApache, type Apache } from './lab/apache.js';
import { sleep } from './lab/procs.js';
import { writeCut } from '../../bench/prep-cut.js';
import { get, stampOf } from './support/http.js';
import { exec, liveCut, publish } from './support/publish.js';
import { runCli, show, spawnCli } from './support/cli.js';
import { viewPage } from './support/browser.js';
import { fillVhost } from '../../src/core/registry/onboard.js';
import { loadRegistry, parseRegistry } from '../../src/core/registry/registry.js';
import { escapeHtml } from '../../src/core/enforcement/html.js';
import { cutoff, reinstate } from '../../src/core/enforcement/suspension.js';
import { readJournal } from '../../src/core/records/journal.js';
import { registryFileStore } from '../../src/core/registry/registry-edit.js';
import { operationPorts } from '../../src/adapters/operation-ports.js';
import { fixedClock } from '../../src/adapters/clock.js';

/**
 * The suspension drill on the lab: three real sshd difusores, each served by its own real Apache through
 * the vhost `difusion onboard` prints (templates/apache-vhost.conf, filled in for it), the real CLI run
 * as cron or a script would (no terminal, --yes). What a visitor gets is asked over HTTP, and the notice
 * and the roster are opened in chromium at phone and desktop widths.
 */

const T = 180_000;
const NOW = '2022-06-05T21:10:00-05:00';
const SHAPE = { casillas: 30, counted: 5, imageBytes: 4_000, seed: 'suspension' };
const CUTS = ['20220605_2015_PREP_DGO', '20220605_2030_PREP_DGO', '20220605_2045_PREP_DGO'];
const HOSTILE_NAME = `Diario "El <Mezquital>" & Cía — l'édition`;
const HOSTILE_REASON = `Alteró <script>alert("x")</script> las cifras & publicó 'antes'; ¿acentos? sí`;
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=', 'base64');

let lab: Lab;
let cuts: string;
let registry: string;
const apaches = new Map<string, Apache>();

const url = (id: string, p = ''): string => `${(apaches.get(id) as Apache).url}${p.replace(/^\//, '')}`;

/** `/` and a deep link both serve the cut (200, its stamp), and /aviso.json is not there. */
async function expectCut(id: string, cut: string): Promise<void> {
  for (const p of ['/', '/casillas/0001-B.html']) {
    const r = await get(url(id, p));
    expect({ id, p, status: r.status, stamp: stampOf(r.body) }).toEqual({ id, p, status: 200, stamp: cut.slice(0, 13) });
  }
  expect((await get(url(id, '/aviso.json'))).status).toBe(404);
}

/** Every path answers the notice with 503 and no-store; /aviso.json and /MANIFEST.sha256 answer 200. */
async function expectNotice(id: string, name: string, reason: string): Promise<void> {
  for (const p of ['/', '/index.html', '/casillas/0001-B.html', '/datos/resumen.json', '/actas/0001-B_A.jpg', '/no/existe?x=1']) {
    const r = await get(url(id, p));
    expect({ id, p, status: r.status, cacheControl: r.cacheControl }).toEqual({ id, p, status: 503, cacheControl: 'no-store' });
    expect(r.body).toContain('Se interrumpió la publicación de los resultados preliminares en este sitio');
    expect(r.body).toContain(escapeHtml(name));
    expect(r.body).toContain(escapeHtml(reason));
  }
  const aviso = await get(url(id, '/aviso.json?t=1'));
  expect({ status: aviso.status, cacheControl: aviso.cacheControl }).toEqual({ status: 200, cacheControl: 'no-store' });
  expect(JSON.parse(aviso.body)).toMatchObject({ aviso: 'suspension', difusor: id, name, reason, at: NOW, timezone: 'America/Mexico_City' });
  expect(aviso.body).not.toMatch(/[<>]/);
  const manifest = await get(url(id, '/MANIFEST.sha256'));
  expect(manifest.status).toBe(200);
  expect(manifest.body).toMatch(/^[0-9a-f]{64} {2}aviso\.json\n[0-9a-f]{64} {2}index\.html\n$/);
}

async function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = await runCli([...args, '--registry', registry], { DIFUSION_NOW: NOW });
  return { code: run.code, stdout: run.stdout, stderr: run.stderr };
}

/** cutoff or reinstate with the real ports, in this process: the CLI itself is exercised by the tests above. */
async function inProcess(action: 'cutoff' | 'reinstate', id: string): Promise<unknown> {
  const loaded = await loadRegistry(registry);
  if (!loaded.ok) throw new Error(`registry invalid: ${JSON.stringify(loaded.problems)}`);
  const ports = { ...operationPorts(fixedClock(new Date(NOW))), registry: registryFileStore(registry), confirm: async () => true };
  if (action === 'reinstate') return reinstate({ registry: loaded.registry, id }, ports);
  const noticeTemplate = await readFile(new URL('../../templates/aviso.html', import.meta.url), 'utf8');
  return cutoff({ registry: loaded.registry, id, reason: 'simulacro de corte' }, { ...ports, noticeTemplate });
}

beforeAll(async () => {
  lab = await startLab({ difusores: 3 });
  await mkdir(path.join(lab.dir, 'logos'));
  await writeFile(path.join(lab.dir, 'logos', 'd1.png'), PNG);
  registry = await lab.writeRegistry({
    publication: { official_url: 'https://prep.example.mx/?fuente=aviso&x="1"' },
    difusores: { d1: { name: HOSTILE_NAME, logo: 'logos/d1.png' }, d2: { logo: 'logos/d1.png' } },
  });
  cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-suspension-'));
  let previous: string | undefined;
  for (const [i, cut] of CUTS.entries()) {
    await writeCut(path.join(cuts, cut), cut, { ...SHAPE, counted: SHAPE.counted + 5 * i }, previous);
    previous = path.join(cuts, cut);
  }
  for (const cut of CUTS.slice(0, 2)) expect((await publish(registry, path.join(cuts, cut))).exitCode).toBe(0);

  const template = await readFile(new URL('../../templates/apache-vhost.conf', import.meta.url), 'utf8');
  const loaded = await loadRegistry(registry);
  if (!loaded.ok) throw new Error('lab registry invalid');
  for (const d of loaded.registry.difusores) {
    // The vhost exactly as onboard prints it, on the lab's port and with its logs in the lab.
    const vhost = (where: { port: number; dir: string }): string =>
      fillVhost(template, d).replace('<VirtualHost *:80>', `<VirtualHost *:${where.port}>`).replaceAll('/var/log/httpd/', `${where.dir}/`);
    apaches.set(d.id, await startApache({ docRoot: path.join(d.path, 'current'), modules: ['rewrite'], extraConfig: vhost }));
  }
}, T);

afterAll(async () => {
  await Promise.all([...apaches.values()].map((a) => a.stop()));
  await lab?.stop();
  if (cuts) await rm(cuts, { recursive: true, force: true });
}, T);

test('cutoff: every path of that difusor answers the notice (503, no-store), the others are untouched', async () => {
  await expectCut('d1', CUTS[1]!);
  const before = await readFile(registry, 'utf8');
  const run = await cli('cutoff', 'd1', '--reason', HOSTILE_REASON, '--yes');
  expect({ code: run.code, out: run.code === 0 ? '' : show({ ...run, signal: null }) }).toEqual({ code: 0, out: '' });
  await expectNotice('d1', HOSTILE_NAME, HOSTILE_REASON);
  await expectCut('d2', CUTS[1]!);
  await expectCut('d3', CUTS[1]!);

  // The registry: the same text but for d1's status lines, and still valid.
  const after = await readFile(registry, 'utf8');
  const parsed = parseRegistry(after, registry);
  expect(parsed.ok && parsed.registry.difusores.find((d) => d.id === 'd1')).toMatchObject({ status: 'suspended', suspension_reason: HOSTILE_REASON, suspended_at: NOW });
  expect(after.split('\n').filter((l) => !before.includes(l)).map((l) => l.trim().split(':')[0])).toEqual(['status', 'suspended_at', 'suspension_reason']);
}, T);

test('publish afterwards skips the suspended difusor, which keeps its notice', async () => {
  const run = await cli('publish', path.join(cuts, CUTS[2]!));
  expect({ code: run.code, out: run.code === 0 ? '' : show({ ...run, signal: null }) }).toEqual({ code: 0, out: '' });
  expect(run.stdout).toMatch(/^d1 +skipped .*suspended/m);
  await expectNotice('d1', HOSTILE_NAME, HOSTILE_REASON);
  await expectCut('d2', CUTS[2]!);
  await expectCut('d3', CUTS[2]!);
  // Even asked directly, the difusor's helper will not switch a notice away for a publish.
  const d1 = lab.difusor('d1');
  await expect(exec('sh', ['-c', readFileSync('templates/difusion-helper.sh', 'utf8'), 'difusion-helper', d1.path, 'switch', CUTS[1]!])).rejects.toMatchObject({
    stderr: expect.stringContaining('only difusion reinstate replaces it'),
  });
}, T);

test('the notice in chromium: readable at phone and desktop widths, self-contained, values escaped', async () => {
  const views = await viewPage(url('d1', '/casillas/0001-B.html'), 'aviso');
  for (const view of views) {
    expect({ width: view.viewport.name, status: view.status, fits: view.fitsWidth, external: view.externalRequests }).toEqual({
      width: view.viewport.name,
      status: 503,
      fits: true,
      external: [],
    });
    expect(view.text).toContain('Se interrumpió la publicación de los resultados preliminares en este sitio');
    expect(view.text).toContain(HOSTILE_NAME);
    expect(view.text).toContain(HOSTILE_REASON);
    expect(view.text).toContain('5 de junio de 2022, 21:10 h (UTC-5, America/Mexico_City)');
    expect(view.text).toContain('https://prep.example.mx/?fuente=aviso&x="1"');
    expect(view.title).toBe('Aviso: publicación del PREP interrumpida en este sitio');
    expect(existsSync(view.screenshot)).toBe(true);
  }
}, T);

test('the roster in chromium: every difusor with its logo, the suspended one marked and unlinked', async () => {
  const out = path.join(lab.dir, 'sitio');
  const run = await cli('roster', '--out', out);
  expect(run.code).toBe(0);
  const views = await viewPage(pathToFileURL(path.join(out, 'index.html')).href, 'roster');
  for (const view of views) {
    expect({ width: view.viewport.name, fits: view.fitsWidth, external: view.externalRequests }).toEqual({ width: view.viewport.name, fits: true, external: [] });
    expect(view.text).toContain('Difusores oficiales del PREP');
    expect(view.text).toContain(HOSTILE_NAME);
    expect(view.text).toContain('Difusor de prueba 2');
    expect(view.text).toMatch(/Suspendido/i);
    expect(view.text).toContain('Enlace deshabilitado por el instituto electoral.');
    expect(view.text).toContain('2 difusores activos, 1 suspendido.');
    expect(existsSync(view.screenshot)).toBe(true);
  }
  const html = await readFile(path.join(out, 'index.html'), 'utf8');
  expect(html).not.toContain(`href="${lab.difusor('d1').publicUrl}"`);
  expect(html).toContain(`href="${lab.difusor('d2').publicUrl}"`);
  expect(html).toContain(escapeHtml(HOSTILE_NAME));
  expect(html.match(/src="data:image\/png;base64,/g)).toHaveLength(2);
  const json = JSON.parse(await readFile(path.join(out, 'roster.json'), 'utf8'));
  expect(json.difusores.map((d: { id: string; url: string | null }) => [d.id, d.url])).toEqual([
    ['d1', null],
    ['d2', lab.difusor('d2').publicUrl],
    ['d3', lab.difusor('d3').publicUrl],
  ]);
  expect(json.difusores[0].name).toBe(HOSTILE_NAME);
}, T);

test('reinstate brings the newest cut back on every path', async () => {
  const run = await cli('reinstate', 'd1', '--yes');
  expect({ code: run.code, out: run.code === 0 ? '' : show({ ...run, signal: null }) }).toEqual({ code: 0, out: '' });
  await expectCut('d1', CUTS[2]!);
  expect(await liveCut(lab.difusor('d1').path)).toBe(`releases/${CUTS[2]}`);
  // The notice has nothing to share: the files unchanged since the newest release kept there were linked, not sent.
  const staged = (await readJournal(lab.stateDir)).filter((e) => e.difusor === 'd1' && e.cut === CUTS[2] && e.phase === 'stage');
  expect(staged.at(-1)?.detail).toMatchObject({ base: CUTS[1], filesLinked: expect.any(Number) });
  expect(Number(staged.at(-1)?.detail?.filesLinked)).toBeGreaterThan(0);
  const parsed = parseRegistry(await readFile(registry, 'utf8'), registry);
  expect(parsed.ok && parsed.registry.difusores.find((d) => d.id === 'd1')).toMatchObject({ status: 'active' });
  expect(parsed.ok && parsed.registry.difusores.find((d) => d.id === 'd1')?.suspension_reason).toBeUndefined();
}, T);

test('rollback everywhere, and publish --latest stays on it', async () => {
  const run = await cli('rollback', '--yes');
  expect({ code: run.code, out: run.code === 0 ? '' : show({ ...run, signal: null }) }).toEqual({ code: 0, out: '' });
  for (const id of ['d1', 'd2', 'd3']) await expectCut(id, CUTS[1]!);
  const cron = await publish(registry, cuts, { latest: true });
  expect({ code: cron.exitCode, cut: cron.cut, held: cron.held?.cut }).toEqual({ code: 0, cut: CUTS[1], held: CUTS[1] });
  for (const id of ['d1', 'd2', 'd3']) await expectCut(id, CUTS[1]!);
}, T);

test('kill -9 during cutoff: the difusor serves its cut or the notice, whole; the registry stays valid', async () => {
  const d2 = lab.difusor('d2');
  const before = await readFile(registry, 'utf8');
  const seen = new Set<string>();
  for (const delayMs of [0, 150]) {
    const run = spawnCli(['cutoff', 'd2', '--reason', 'simulacro de corte', '--yes', '--registry', registry], { DIFUSION_NOW: NOW });
    // The plan line is printed once d2 has answered; the changes start right after it.
    await run.line(/^cutoff d2 /).catch(() => undefined);
    await sleep(delayMs);
    run.signal('SIGKILL');
    await run.exited;
    await sleep(300);
    const target = await liveCut(d2.path);
    const r = await get(url('d2', '/'));
    if (target.startsWith('notices/')) {
      seen.add('notice');
      await exec('sha256sum', ['-c', '--strict', '--quiet', 'MANIFEST.sha256'], { cwd: path.join(d2.path, 'current') });
      expect({ status: r.status, cc: r.cacheControl }).toEqual({ status: 503, cc: 'no-store' });
      expect(r.body).toContain('simulacro de corte');
    } else {
      seen.add('cut');
      expect(target).toBe(`releases/${CUTS[1]}`);
      await exec('sha256sum', ['-c', '--strict', '--quiet', 'MANIFEST.sha256'], { cwd: path.join(d2.path, 'current') });
      expect({ status: r.status, stamp: stampOf(r.body) }).toEqual({ status: 200, stamp: CUTS[1]!.slice(0, 13) });
    }
    expect(parseRegistry(await readFile(registry, 'utf8'), registry).ok).toBe(true);
    // Put d2 back for the next round: reinstate is the way back in either case once the registry says suspended.
    if (target.startsWith('notices/') || (await readFile(registry, 'utf8')) !== before) {
      expect(await inProcess('reinstate', 'd2')).toMatchObject({ exitCode: 0 });
    }
  }
  // A cutoff run to the end after all that puts the notice up.
  expect(await inProcess('cutoff', 'd2')).toMatchObject({ exitCode: 0 });
  expect((await get(url('d2', '/casillas/0001-B.html'))).status).toBe(503);
  expect(seen.size).toBeGreaterThanOrEqual(1);
}, T);

test('a difusor down at cutoff gets its notice from the next cron run once it is back; the cut is never sent to it', async () => {
  const d3 = lab.difusor('d3');
  await d3.stop();
  let up = false;
  try {
    const failed = await cli('cutoff', 'd3', '--reason', 'simulacro: servidor caído', '--yes');
    expect(failed.code).toBe(1);
    const loaded = await loadRegistry(registry);
    if (!loaded.ok) throw new Error('registry invalid');
    expect(loaded.registry.difusores.find((d) => d.id === 'd3')).toMatchObject({ status: 'suspended', suspended_at: NOW });
    expect(await liveCut(d3.path)).toBe(`releases/${CUTS[1]}`);
    const releases = (await readdir(path.join(d3.path, 'releases'))).sort();

    // Still down: cron publishes the others and says the notice is still missing.
    const stillDown = await cli('publish', '--latest', cuts);
    expect(stillDown.code).toBe(0);
    expect(stillDown.stdout).toMatch(/^d3 +skipped .*NOT in place \(tried again: .*\): run difusion cutoff d3 again/m);

    await d3.start();
    up = true;
    const back = await cli('publish', '--latest', cuts);
    expect({ code: back.code, out: back.code === 0 ? '' : show({ ...back, signal: null }) }).toEqual({ code: 0, out: '' });
    expect(back.stdout).toMatch(/^d3 +skipped .*its missing notice is now in place \(notices\/\d{8}_\d{6}\)/m);
    const name = loaded.registry.difusores.find((d) => d.id === 'd3')?.name as string;
    await expectNotice('d3', name, 'simulacro: servidor caído');
    // Only the notice went there: no release of a newer cut.
    expect((await readdir(path.join(d3.path, 'releases'))).sort()).toEqual(releases);
    expect((await cli('publish', '--latest', cuts)).stdout).not.toMatch(/now in place|NOT in place/);
  } finally {
    if (!up) await d3.start();
  }
}, T);
