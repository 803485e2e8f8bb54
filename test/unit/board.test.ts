import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  boardState,
  buildBoard,
  DOUBT_SHARE,
  foldRound,
  isDoubtRound,
  lagPercentile,
  ROUND_WINDOW,
  roundOf,
  type BoardListing,
  type BoardSummary,
  type BoardState,
} from '../../src/core/probe/board.js';
import { PUBLIC_WORDING, type ProbeRow } from '../../src/core/probe/probe.js';
import { GENESIS_HASH, ProbeHistory, verifyRoundsLog, type NewRound, type RoundRecord } from '../../src/core/records/probe-history.js';
import { renderBoardHtml, STRIP_ROUNDS } from '../../src/ui/board-html.js';
import { boardMetrics } from '../../src/ui/board-metrics.js';
import { boardValidator, parsePrometheusText } from '../support/board-check.js';

const C1 = '20220605_2015_PREP_DGO';
const C2 = '20220605_2030_PREP_DGO';
const T0 = Date.parse('2022-06-06T02:00:00Z');
const at = (i: number): string => new Date(T0 + i * 60_000).toISOString();

function row(id: string, over: Partial<ProbeRow> = {}): ProbeRow {
  return { id, name: id, registryStatus: 'active', ok: true, kinds: [], cut: C2, lagSeconds: 0, filesChecked: 11, differing: [], bytes: 1, status: 200, ttfbMs: 3.2, totalMs: 20, warnings: [], ...over };
}

let n = 0;
function record(round: NewRound): RoundRecord {
  n += 1;
  return { n, prev: GENESIS_HASH, ...round };
}

function night(rounds: Array<ProbeRow[]>): BoardSummary {
  let summary: BoardSummary | undefined;
  rounds.forEach((rows, i) => {
    summary = foldRound(summary, record(roundOf({ at: at(i), newest: C2, maxLagSeconds: 60, difusores: rows }, 1500)));
  });
  return summary as BoardSummary;
}

const LISTING: BoardListing[] = ['a', 'b', 'c', 'd'].map((id) => ({ id, name: `Difusor ${id}`, public_url: `https://${id}.example/`, status: 'active' }));

describe('the state a round shows the public', () => {
  it.each<[string, Partial<ProbeRow>, BoardState]>([
    ['serving the newest cut', {}, 'current'],
    ['behind within the limit', { lagSeconds: 30 }, 'lagging'],
    ['behind beyond it', { ok: false, kinds: ['lag'], lagSeconds: 125, cut: C1 }, 'stale'],
    ['a file differs', { ok: false, kinds: ['differs'] }, 'altered'],
    ['an unknown manifest', { ok: false, kinds: ['unknown-cut'], cut: undefined }, 'altered'],
    ['a redirect elsewhere', { ok: false, kinds: ['redirect'] }, 'altered'],
    ['stale and altered: altered', { ok: false, kinds: ['lag', 'differs'] }, 'altered'],
    ['down', { ok: false, kinds: ['down'], cut: undefined }, 'unreachable'],
    ['certificate refused', { ok: false, kinds: ['certificate'], cut: undefined }, 'unreachable'],
    ['suspended with the notice', { registryStatus: 'suspended', cut: undefined }, 'suspended'],
    ['suspended serving results', { registryStatus: 'suspended', ok: false, kinds: ['notice-missing'] }, 'notice-missing'],
    ['suspended and down', { registryStatus: 'suspended', ok: false, kinds: ['down', 'notice-missing'] }, 'unreachable'],
  ])('%s', (_, over, state) => {
    expect(boardState(row('x', over))).toBe(state);
  });

  it('a round where most of those checked (at least 3) are unreachable is the checker\'s doubt', () => {
    expect(DOUBT_SHARE).toBe(0.7);
    expect(isDoubtRound(['unreachable', 'unreachable', 'unreachable', 'current'])).toBe(true);
    expect(isDoubtRound(['unreachable', 'unreachable', 'current', 'current'])).toBe(false);
    expect(isDoubtRound(['stale', 'stale', 'stale', 'stale'])).toBe(false);
    expect(isDoubtRound(['unreachable', 'unreachable'])).toBe(false);
    expect(isDoubtRound(['unreachable', 'unreachable', 'unreachable', 'unchecked', 'unchecked'])).toBe(true);
  });
});

describe('the summary and the board', () => {
  const down = (id: string): ProbeRow => row(id, { ok: false, kinds: ['down'], cut: undefined, lagSeconds: undefined });
  const summary = night([
    [row('a'), row('b', { lagSeconds: 30 }), row('c'), row('d')],
    [row('a'), row('b', { ok: false, kinds: ['lag'], lagSeconds: 90, cut: C1 }), row('c', { ok: false, kinds: ['differs'] }), row('d')],
    // The checker's own outage: not counted against anyone.
    [down('a'), down('b'), down('c'), down('d')],
    [row('a'), row('b', { ok: false, kinds: ['lag'], lagSeconds: 150, cut: C1 }), row('c')],
    [row('a'), row('b'), row('c'), down('d')],
  ]);
  const board = buildBoard({ summary, difusores: LISTING, generatedAt: at(5), timezone: 'America/Monterrey' });
  const d = (id: string) => board.difusores.find((x) => x.id === id) as (typeof board.difusores)[number];

  it('marks the doubt round and keeps every round, oldest first', () => {
    expect(board.rounds.map((r) => r.doubt)).toEqual([false, false, true, false, false]);
    expect(board.checker).toMatchObject({ rounds: 5, doubtRounds: 1, lastRoundAt: at(4), firstRoundAt: at(0), intervalSeconds: 60, lastDurationSeconds: 1.5 });
  });

  it('per difusor: state and since when, uptime over counted rounds, lag percentiles, failures by kind, history', () => {
    expect(d('a')).toMatchObject({ state: 'current', since: at(0), uptime: 1, checkedRounds: 4, failures: {}, lag: { p50: 0, p95: 0, max: 0 } });
    expect(d('a').history).toEqual(['current', 'current', 'unreachable', 'current', 'current']);
    expect(d('b')).toMatchObject({ state: 'current', since: at(4), uptime: 0.25, failures: { lag: 2 }, lag: { p50: 30, p95: 150, max: 150 }, cut: C2 });
    expect(d('b').history).toEqual(['lagging', 'stale', 'unreachable', 'stale', 'current']);
    expect(d('c')).toMatchObject({ state: 'current', failures: { differs: 1 }, uptime: 0.75 });
    // d was not reached in round 4, then went down: since the last round.
    expect(d('d')).toMatchObject({ state: 'unreachable', since: at(4), failures: { down: 1 }, uptime: 0.6667, kinds: ['down'], wording: [PUBLIC_WORDING.down] });
    expect(d('d').history).toEqual(['current', 'current', 'unreachable', 'unchecked', 'unreachable']);
  });

  it('a difusor with no round yet is unchecked, with a history as long as the rounds', () => {
    const board2 = buildBoard({ summary, difusores: [...LISTING, { id: 'nuevo', name: 'Nuevo', public_url: 'https://n.example/', status: 'suspended' }], generatedAt: at(5), timezone: 'UTC' });
    const nuevo = board2.difusores.at(-1);
    expect(nuevo).toMatchObject({ state: 'unchecked', url: null, uptime: null, lag: { p50: null, p95: null, max: null } });
    expect(nuevo?.history).toEqual(Array(5).fill('unchecked'));
  });

  it('board.json follows schema/board.schema.json', () => {
    const validate = boardValidator();
    expect(validate(JSON.parse(JSON.stringify(board)))).toBe(true);
    expect(validate.errors ?? []).toEqual([]);
    expect(validate({ ...board, difusores: [{ ...board.difusores[0], state: 'fine' }] })).toBe(false);
  });

  it('nearest-rank percentiles from the lag histogram', () => {
    expect(lagPercentile({}, 0.5)).toBeNull();
    expect(lagPercentile({ 0: 18, 100: 1, 300: 1 }, 0.5)).toBe(0);
    expect(lagPercentile({ 0: 18, 100: 1, 300: 1 }, 0.95)).toBe(100);
    expect(lagPercentile({ 0: 18, 100: 1, 300: 1 }, 1)).toBe(300);
  });

  it('the summary stays bounded: the last ROUND_WINDOW rounds, every history as long', () => {
    let s: BoardSummary | undefined;
    for (let i = 0; i < ROUND_WINDOW + 25; i++) s = foldRound(s, record(roundOf({ at: at(i), maxLagSeconds: 60, difusores: [row('a', { lagSeconds: i % 7 })] }, 10)));
    expect(s?.rounds).toHaveLength(ROUND_WINDOW);
    expect(s?.rounds[0]?.at).toBe(at(25));
    expect(s?.difusores.a?.history).toHaveLength(ROUND_WINDOW);
    expect(s?.totalRounds).toBe(ROUND_WINDOW + 25);
    expect(Object.keys(s?.difusores.a?.lags ?? {})).toHaveLength(7);
  });
});

describe('the page and the metrics', () => {
  const hostile = `Radio "Ñ" <script>alert(1)</script> & Cía`;
  const listing: BoardListing[] = [
    { id: 'a', name: hostile, public_url: 'https://a.example/?x="><img src=x onerror=alert(1)>', status: 'active' },
    { id: 'b', name: 'Suspendido B', public_url: 'https://b.example/', status: 'suspended' },
  ];
  const rounds = Array.from({ length: STRIP_ROUNDS + 10 }, () => [row('a'), row('b', { registryStatus: 'suspended', cut: undefined })]);
  const board = buildBoard({ summary: night(rounds), difusores: listing, generatedAt: at(0), timezone: 'America/Monterrey' });

  it('escapes names and links, leaves a suspended difusor unlinked, draws the last STRIP_ROUNDS cells, refreshes itself', () => {
    const page = renderBoardHtml(board, { logos: new Map() });
    expect(page).not.toContain('<script>');
    expect(page).not.toContain('<img src=x');
    expect(page).toContain('Radio &quot;Ñ&quot; &lt;script&gt;alert(1)&lt;/script&gt; &amp; Cía');
    expect(page).not.toContain('href="https://b.example/"');
    expect(page).toContain('Enlace deshabilitado por el instituto electoral.');
    expect(page).toMatch(/<meta http-equiv="refresh" content="\d+">/);
    const strips = page.match(/<div class="tira"[^>]*>(.*?)<\/div>/g) ?? [];
    expect(strips).toHaveLength(2);
    expect(strips[0]?.match(/class="c/g)).toHaveLength(STRIP_ROUNDS);
    expect(page).toContain('Al día');
    expect(page).toContain('más del 70 %');
    expect(page).not.toMatch(/ECONNREFUSED|127\.0\.0\./);
  });

  it('the Prometheus textfile parses, one state per difusor, failures as counters with a difusor label', () => {
    const text = boardMetrics(board);
    const { types, samples } = parsePrometheusText(text);
    expect(types.get('difusion_difusor_failures_total')).toBe('counter');
    expect(types.get('difusion_difusor_lag_seconds')).toBe('gauge');
    const states = samples.filter((s) => s.name === 'difusion_difusor_state' && s.value === 1);
    expect(states.map((s) => [s.labels.difusor, s.labels.state])).toEqual([
      ['a', 'current'],
      ['b', 'suspended'],
    ]);
    expect(samples.find((s) => s.name === 'difusion_probe_last_round_timestamp_seconds')?.value).toBe((T0 + (rounds.length - 1) * 60_000) / 1000);
    expect(samples.filter((s) => s.name === 'difusion_difusor_failures_total' && s.labels.difusor === 'a').every((s) => s.value === 0)).toBe(true);
  });

  it('the parser refuses what Prometheus would (the test of the test)', () => {
    expect(() => parsePrometheusText('x 1\n')).toThrow(/before its # TYPE/);
    expect(() => parsePrometheusText('# TYPE x gauge\nx{a="b} 1\n')).toThrow(/bad labels/);
    expect(() => parsePrometheusText('# TYPE x gauge\nx 1')).toThrow(/newline/);
  });
});

describe('the history store', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'difusion-history-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const newRound = (i: number, rows: ProbeRow[] = [row('a'), row('b')]): NewRound => roundOf({ at: at(i), maxLagSeconds: 60, difusores: rows }, 5);

  it('appends chained lines and a CSV; the summary is the fold of every round; an edited line is found', async () => {
    const history = new ProbeHistory(dir, foldRound);
    for (let i = 0; i < 5; i++) await history.append(newRound(i, i === 2 ? [row('a', { ok: false, kinds: ['lag'], lagSeconds: 99 }), row('b')] : undefined));
    const log = await readFile(history.logFile, 'utf8');
    expect(verifyRoundsLog(log)).toMatchObject({ ok: true, lines: 5 });
    expect((await history.summary())?.difusores.a?.failures).toEqual({ lag: 1 });
    const csv = (await readFile(history.csvFile, 'utf8')).trim().split('\n');
    expect(csv).toHaveLength(1 + 10);
    expect(csv[5]).toMatch(/^3,2022-06-06T02:02:00.000Z,false,a,stale,20220605_2030_PREP_DGO,99,lag,/);
    const edited = log.replace('"lagSeconds":99', '"lagSeconds":9');
    expect(verifyRoundsLog(edited)).toMatchObject({ ok: false, broken: { line: 4 } });
    const removed = log.split('\n').filter((_, i) => i !== 1).join('\n');
    expect(verifyRoundsLog(removed)).toMatchObject({ ok: false, broken: { line: 2 } });
  });

  it('after a crash between the append and the summary, the summary is rebuilt once and a torn line cut off', async () => {
    const history = new ProbeHistory(dir, foldRound);
    for (let i = 0; i < 3; i++) await history.append(newRound(i));
    await appendFile(history.logFile, '{"n":4,"prev":"');
    const again = new ProbeHistory(dir, foldRound);
    expect((await again.summary())?.totalRounds).toBe(3);
    await again.append(newRound(3));
    expect(verifyRoundsLog(await readFile(history.logFile, 'utf8'))).toMatchObject({ ok: true, lines: 4 });
    // A summary that does not parse is rebuilt from the log as well.
    await writeFile(path.join(dir, 'rounds', 'summary.json'), '{');
    expect((await new ProbeHistory(dir, foldRound).summary())?.totalRounds).toBe(4);
  });
});
