import { appendFile, mkdtemp, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { startLab, type Lab } from './lab/sshd.js';
import { startVhost } from './lab/vhost.js';
import type { Apache } from './lab/apache.js';
import { writeCut } from '../../bench/prep-cut.js';
import { publish } from './support/publish.js';
import { runCli, show } from './support/cli.js';
import { viewPage, PHONE, DESKTOP } from './support/browser.js';
import { readJournal } from '../../src/core/records/journal.js';
import { wentLiveTimes } from '../../src/core/probe/probe.js';
import { verifyRoundsLog } from '../../src/core/records/probe-history.js';
import type { Board } from '../../src/core/probe/board.js';
import { boardValidator, parsePrometheusText } from '../support/board-check.js';
import { checkBoardDir } from './support/board-dir.js';

interface PromFamily {
  name: string;
  type: string;
  metrics: Array<{ labels?: Record<string, string>; value: string }>;
}
const parsePrometheusTextFormat = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => PromFamily[];

/**
 * A night of probe rounds on the lab (real sshd, rsync and Apache with the project's vhost), six difusores:
 * d1 current (a hostile name), d2 pointed back at the older cut (lagging, then stale), d3 with a file edited
 * in place (altered), d4 with its web server down, d5 suspended showing the notice, d6 suspended but serving
 * results again. One round reaches most of them through dead addresses: the checker's doubt. After each
 * round `probe --roster DIR --metrics FILE` rewrites the board; it is read as data, as metrics, and in chromium.
 */

const T = 300_000;
const SHAPE = { casillas: 30, counted: 10, imageBytes: 4_000, seed: 'board' };
const C1 = '20220605_2015_PREP_DGO';
const C2 = '20220605_2030_PREP_DGO';
const HOSTILE = `Radio "La Voz" <script>alert('x')</script> & Cía`;

let lab: Lab;
let cuts: string;
let registry: string;
let out: string;
let metrics: string;
const apaches: Record<string, Apache & { vhost: string }> = {};
let c2Live: Date;

async function round(secondsAfterC2: number, registryFile = registry): Promise<void> {
  const run = await runCli(['probe', '--registry', registryFile, '--json', '--roster', out, '--metrics', metrics], {
    DIFUSION_NOW: new Date(c2Live.getTime() + secondsAfterC2 * 1000).toISOString(),
  });
  if (run.code !== 6 && run.code !== 0) throw new Error(`probe failed\n${show(run)}`);
}

async function pointCurrent(root: string, target: string): Promise<void> {
  await symlink(target, path.join(root, 'current.admin'));
  await rename(path.join(root, 'current.admin'), path.join(root, 'current'));
}

beforeAll(async () => {
  lab = await startLab({ difusores: 6 });
  cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-board-'));
  out = path.join(lab.dir, 'sitio', 'difusores');
  metrics = path.join(lab.dir, 'textfile', 'difusion.prom');
  await writeCut(path.join(cuts, C1), C1, SHAPE);
  await writeCut(path.join(cuts, C2), C2, { ...SHAPE, counted: 20 }, path.join(cuts, C1));
  expect((await publish(await lab.writeRegistry(), path.join(cuts, C1))).exitCode).toBe(0);
  for (const d of lab.difusores) apaches[d.id] = await startVhost(d);
  registry = await lab.writeRegistry({
    difusores: {
      ...Object.fromEntries(lab.difusores.map((d) => [d.id, { public_url: apaches[d.id]!.url }])),
      d1: { public_url: apaches.d1!.url, name: HOSTILE },
    },
  });
  expect((await publish(registry, path.join(cuts, C2))).exitCode).toBe(0);
  c2Live = wentLiveTimes(await readJournal(lab.stateDir)).get(C2) as Date;
  expect(c2Live).toBeDefined();
  for (const id of ['d5', 'd6']) expect((await runCli(['cutoff', id, '--reason', 'Simulacro de suspensión', '--yes', '--registry', registry])).code).toBe(0);
  await pointCurrent(lab.difusor('d2').path, `releases/${C1}`);
  await appendFile(path.join(lab.difusor('d3').path, 'current', 'datos', 'resumen.json'), ' ');
  await apaches.d4!.stop();
  await pointCurrent(lab.difusor('d6').path, `releases/${C2}`);
}, T);

afterAll(async () => {
  for (const a of Object.values(apaches)) await a.stop().catch(() => undefined);
  await lab?.stop();
  if (cuts) await rm(cuts, { recursive: true, force: true });
}, T);

test('a night of rounds: the board, its data, the chained log and the metrics tell each difusor\'s state and history', async () => {
  await round(30);
  await round(125);
  // The checker loses its way to most of them at once: a round in doubt, counted against nobody.
  const lost = (await readFile(registry, 'utf8')).replace(new RegExp(['d1', 'd2', 'd3', 'd5'].map((id) => apaches[id]!.url.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('|'), 'g'), 'http://127.0.0.1:9/');
  const lostRegistry = path.join(lab.dir, 'lost.yaml');
  await writeFile(lostRegistry, lost);
  await round(185, lostRegistry);
  await round(245);

  const board = JSON.parse(await readFile(path.join(out, 'board.json'), 'utf8')) as Board;
  const validate = boardValidator();
  expect({ valid: validate(board), errors: validate.errors ?? [] }).toEqual({ valid: true, errors: [] });
  expect(board.rounds.map((r) => r.doubt)).toEqual([false, false, true, false]);
  expect(board.checker).toMatchObject({ rounds: 4, doubtRounds: 1, intervalSeconds: 60 });
  const d = (id: string) => board.difusores.find((x) => x.id === id) as Board['difusores'][number];
  expect(d('d1')).toMatchObject({ name: HOSTILE, state: 'current', cut: C2, uptime: 1, url: apaches.d1!.url });
  expect(d('d1').history).toEqual(['current', 'current', 'unreachable', 'current']);
  expect(d('d2')).toMatchObject({ state: 'stale', cut: C1, uptime: 0, failures: { lag: 2 }, lag: { p50: 125, max: 245 } });
  expect(d('d2').history).toEqual(['lagging', 'stale', 'unreachable', 'stale']);
  expect(d('d3')).toMatchObject({ state: 'altered', failures: { differs: 3 }, cut: C2 });
  expect(d('d4')).toMatchObject({ state: 'unreachable', failures: { down: 3 }, cut: null });
  expect(d('d5')).toMatchObject({ state: 'suspended', url: null, registryStatus: 'suspended' });
  expect(d('d6')).toMatchObject({ state: 'notice-missing', url: null, cut: C2 });
  expect(d('d6').wording).toContain('No muestra el aviso de suspensión.');

  // The raw log anyone can check: chained line to line, no error text, address or port of the checker's.
  const log = await readFile(path.join(out, 'rounds.jsonl'), 'utf8');
  expect(verifyRoundsLog(log)).toMatchObject({ ok: true, lines: 4 });
  expect(verifyRoundsLog(log.replace('"state":"stale"', '"state":"current"')).ok).toBe(false);
  for (const published of [log, JSON.stringify(board), await readFile(path.join(out, 'rounds.csv'), 'utf8')]) {
    expect(published).not.toMatch(/ECONNREFUSED|127\.0\.0\.1:9\b|Error|sha256 [0-9a-f]{12}/);
  }
  const csv = (await readFile(path.join(out, 'rounds.csv'), 'utf8')).trim().split('\n');
  expect(csv).toHaveLength(1 + 4 * 6);
  expect(csv.filter((l) => /^2,.*,false,d2,stale,/.test(l))).toHaveLength(1);

  const exposition = await readFile(metrics, 'utf8');
  const { types, samples } = parsePrometheusText(exposition);
  // The same file read by a kept parser (prom2json's shape): the same families, types and samples.
  const families = parsePrometheusTextFormat(exposition);
  expect(new Map(families.map((f) => [f.name, f.type.toLowerCase()]))).toEqual(types);
  const kept = families.flatMap((f) => f.metrics.map((m) => ({ name: f.name, labels: m.labels ?? {}, value: Number(m.value) })));
  const byKey = (x: { name: string; labels: Record<string, string> }): string => `${x.name}${JSON.stringify(Object.entries(x.labels).sort())}`;
  expect(kept.sort((a, b) => byKey(a).localeCompare(byKey(b)))).toEqual([...samples].sort((a, b) => byKey(a).localeCompare(byKey(b))));
  expect(kept.find((s) => s.name === 'difusion_difusor_lag_seconds' && s.labels.difusor === 'd2')?.value).toBe(245);
  expect(types.get('difusion_difusor_lag_seconds')).toBe('gauge');
  expect(samples.find((s) => s.name === 'difusion_difusor_lag_seconds' && s.labels.difusor === 'd2')?.value).toBe(245);
  expect(samples.filter((s) => s.name === 'difusion_difusor_state' && s.value === 1).map((s) => `${s.labels.difusor}=${s.labels.state}`)).toEqual([
    'd1=current',
    'd2=stale',
    'd3=altered',
    'd4=unreachable',
    'd5=suspended',
    'd6=notice-missing',
  ]);
  expect(samples.find((s) => s.name === 'difusion_difusor_failures_total' && s.labels.difusor === 'd4' && s.labels.kind === 'down')?.value).toBe(3);
  expect(samples.find((s) => s.name === 'difusion_probe_last_round_timestamp_seconds')?.value).toBe((c2Live.getTime() + 245_000) / 1000);

  const views = await viewPage(pathToFileURL(path.join(out, 'index.html')).href, 'board', [PHONE, DESKTOP]);
  for (const view of views) {
    expect({ width: view.viewport.name, fits: view.fitsWidth, external: view.externalRequests }).toEqual({ width: view.viewport.name, fits: true, external: [] });
    for (const text of [HOSTILE, 'Al día', 'Desactualizado', 'Alterado', 'Sin respuesta', 'Suspendido', 'Sin aviso', 'Enlace deshabilitado por el instituto electoral.', 'más del 70 %', '4, de ellas 1 en duda']) {
      expect(view.text).toContain(text);
    }
    expect(view.text).not.toMatch(/ECONNREFUSED/);
  }
  // The page links to its own round's data, whole, beside the last rounds'; DIR/board.json is that round's.
  const dir = await checkBoardDir(out);
  expect(dir).toMatchObject({ problems: [], leftovers: [], pageData: 'data/4', pageRounds: 4 });
  expect((await readdir(path.join(out, 'data'))).sort()).toEqual(['2', '3', '4']);
  expect(await readFile(path.join(out, 'data', '4', 'board.json'), 'utf8')).toBe(await readFile(path.join(out, 'board.json'), 'utf8'));
  const html = await readFile(path.join(out, 'index.html'), 'utf8');
  expect(html).not.toContain('<script>');
  expect(html).toContain('<meta http-equiv="refresh"');
  expect(html).not.toContain(`href="${apaches.d5!.url}"`);
}, T);

test('roster --out draws the same board from the history without a round; the log it copies is the one kept', async () => {
  const again = path.join(lab.dir, 'sitio2');
  const run = await runCli(['roster', '--registry', registry, '--out', again, '--json']);
  expect({ code: run.code, out: run.code === 0 ? '' : show(run) }).toEqual({ code: 0, out: '' });
  const board = JSON.parse(await readFile(path.join(again, 'board.json'), 'utf8')) as Board;
  expect(board.checker.rounds).toBe(4);
  expect(board.difusores.map((d) => d.state)).toEqual(['current', 'stale', 'altered', 'unreachable', 'suspended', 'notice-missing']);
  expect(await readFile(path.join(again, 'rounds.jsonl'), 'utf8')).toBe(await readFile(path.join(lab.stateDir, 'rounds', 'rounds.jsonl'), 'utf8'));
  expect(JSON.parse(await readFile(path.join(again, 'roster.json'), 'utf8')).difusores).toHaveLength(6);
  expect(await checkBoardDir(again)).toMatchObject({ problems: [], leftovers: [], pageData: 'data/1', pageRounds: 4 });
}, T);
