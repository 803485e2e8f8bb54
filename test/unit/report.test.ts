import type { JournalEntry } from '../../src/core/records/journal.js';
import type { LogSource } from '../../src/core/memoria/log-merge.js';
import { buildReport, journalFacts } from '../../src/core/memoria/report.js';
import { mergeJournals } from '../../src/core/records/merged-journal.js';
import type { Difusor } from '../../src/core/registry/types.js';
import { lines } from '../support/logs.js';

const TZ = 'America/Mexico_City';
const PERIOD = { from: '2022-06-05', to: '2022-06-06' };

let seq = 0;
function entry(fields: Partial<JournalEntry> & Pick<JournalEntry, 'phase' | 'result' | 'at'>): JournalEntry {
  return { seq: ++seq, run: 'r', operator: 'op@host', command: 'publish --latest x', prev: '0'.repeat(64), ...fields };
}

describe('facts from the journal', () => {
  test('lag per cut is measured from the first difusor live on it, with or without lateSeconds', () => {
    const journal = [
      entry({ at: '2022-06-06T01:15:03Z', difusor: 'a', cut: 'c1', phase: 'switch', result: 'ok', detail: { switched: true } }),
      entry({ at: '2022-06-06T01:15:04Z', difusor: 'b', cut: 'c1', phase: 'switch', result: 'ok', detail: { switched: true } }),
      // A catch-up in a later run: lateSeconds 0 within that run, yet 20 minutes after the others.
      entry({ at: '2022-06-06T01:35:00Z', difusor: 'c', cut: 'c1', phase: 'switch', result: 'ok', detail: { switched: true, lateSeconds: 0 } }),
      // Already live: no switch happened, no lag to measure.
      entry({ at: '2022-06-06T01:50:00Z', difusor: 'a', cut: 'c1', phase: 'switch', result: 'ok', detail: { switched: false } }),
      entry({ at: '2022-06-06T01:31:00Z', difusor: 'a', cut: 'c2', phase: 'switch', result: 'ok', detail: { switchedAt: '2022-06-06T01:30:00Z', lateSeconds: 0 } }),
      entry({ at: '2022-06-06T01:31:00Z', difusor: 'b', cut: 'c2', phase: 'switch', result: 'ok', detail: { switchedAt: '2022-06-06T01:30:30Z', lateSeconds: 75 } }),
    ];
    const { lags, incidents, cuts } = journalFacts(journal, PERIOD, TZ);
    expect(lags.get('a')!.map((l) => [l.cut, l.lateSeconds])).toEqual([['c1', 0], ['c2', 0]]);
    expect(lags.get('b')!.map((l) => [l.cut, l.lateSeconds])).toEqual([['c1', 1], ['c2', 75]]);
    expect(lags.get('c')!.map((l) => [l.cut, l.lateSeconds])).toEqual([['c1', 1197]]);
    expect(incidents.map((i) => [i.kind, i.difusor, i.cut])).toEqual([
      ['lag', 'b', 'c2'],
      ['lag', 'c', 'c1'],
    ]);
    expect(cuts.map((c) => [c.cut, c.local])).toEqual([
      ['c1', '2022-06-05 20:15:03 (UTC-5)'],
      ['c2', '2022-06-05 20:30:00 (UTC-5)'],
    ]);
  });

  test('only incidents whose local day is in the period', () => {
    const journal = [
      // 04:59 UTC on 5 June is 23:59 on 4 June in Mexico City: before the period.
      entry({ at: '2022-06-05T04:59:00Z', difusor: 'a', cut: 'x', phase: 'staging', result: 'failed', error: 'early' }),
      entry({ at: '2022-06-05T05:00:00Z', difusor: 'a', cut: 'x', phase: 'staging', result: 'failed', error: 'first' }),
      entry({ at: '2022-06-07T04:59:59Z', difusor: 'a', phase: 'probe', result: 'failed', command: 'probe', detail: { kinds: ['down'], lagSeconds: 30 } }),
      entry({ at: '2022-06-07T05:00:00Z', difusor: 'a', phase: 'probe', result: 'failed', command: 'probe', detail: { kinds: ['down'] } }),
      entry({ at: '2022-06-06T02:00:00Z', phase: 'probe', result: 'info', command: 'probe' }),
      entry({ at: '2022-06-06T02:00:00Z', difusor: 'a', phase: 'stage', result: 'ok' }),
    ];
    const { incidents } = journalFacts(journal, PERIOD, TZ);
    expect(incidents.map((i) => [i.kind, i.local.slice(0, 19)])).toEqual([
      ['publish-failed', '2022-06-05 00:00:00'],
      ['probe-failed', '2022-06-06 23:59:59'],
    ]);
    expect(incidents[1]!.description).toBe('sondeo fallido: down, retraso 30 s');
  });
});

describe('facts from two hosts\' journals merged', () => {
  test('lag, cuts, incidents and runs over both journals, each with the host it came from', () => {
    const primario = [
      entry({ at: '2022-06-06T01:15:00Z', run: 'ra', host: 'primario', cut: 'c1', phase: 'start', result: 'info' }),
      entry({ at: '2022-06-06T01:15:03Z', run: 'ra', host: 'primario', difusor: 'a', cut: 'c1', phase: 'switch', result: 'ok', detail: { switched: true } }),
      entry({ at: '2022-06-06T01:15:09Z', run: 'ra', host: 'primario', difusor: 'b', cut: 'c1', phase: 'stage', result: 'failed', error: 'held by alterno' }),
      entry({ at: '2022-06-06T01:15:10Z', run: 'ra', host: 'primario', cut: 'c1', phase: 'end', result: 'failed' }),
    ];
    const alterno = [
      entry({ at: '2022-06-06T01:15:01Z', run: 'rb', host: 'alterno', cut: 'c1', phase: 'start', result: 'info' }),
      // The alternate host switched b 90 s after the primary switched a: the lag spans both journals.
      entry({ at: '2022-06-06T01:16:33Z', run: 'rb', host: 'alterno', difusor: 'b', cut: 'c1', phase: 'switch', result: 'ok', detail: { switched: true } }),
      entry({ at: '2022-06-06T01:16:34Z', run: 'rb', host: 'alterno', cut: 'c1', phase: 'end', result: 'ok' }),
    ];
    const merged = mergeJournals([
      { label: 'primario', entries: primario },
      { label: 'alterno', entries: alterno },
    ]);
    const { lags, incidents, cuts, runs } = journalFacts(merged, PERIOD, TZ);
    expect(lags.get('b')).toEqual([{ cut: 'c1', liveAt: '2022-06-06T01:16:33.000Z', lateSeconds: 90, host: 'alterno' }]);
    expect(cuts).toEqual([{ cut: 'c1', liveAt: '2022-06-06T01:15:03.000Z', local: '2022-06-05 20:15:03 (UTC-5)', host: 'primario' }]);
    expect(incidents.map((i) => [i.kind, i.host, i.difusor])).toEqual([
      ['publish-failed', 'primario', 'b'],
      ['lag', 'alterno', 'b'],
    ]);
    expect(runs.map((r) => [r.host, r.run, r.result, r.entries])).toEqual([
      ['primario', 'ra', 'failed', 4],
      ['alterno', 'rb', 'ok', 3],
    ]);
  });
});

describe('the report over fake ports', () => {
  const difusor = (id: string, access_log?: string): Difusor =>
    ({ id, name: `Difusor ${id}`, transport: 'ssh', port: 22, path: '/p', public_url: 'https://x/', status: 'active', access: 'shell', access_log }) as Difusor;
  const source = (text: string): LogSource => ({
    name: 'mem',
    size: text.length,
    async *chunks() {
      yield { lines: text.split('\n'), bytes: text.length };
    },
  });
  const ports = (failing: string[]) => ({
    logs: async (d: Difusor) => {
      if (failing.includes(d.id)) throw new Error(`${d.id}: connection refused`);
      // In time order, as Apache writes: a line days older than the one before it is dropped as AWStats drops it.
      return { sources: [source(lines([{ at: '2022-05-29 12:00:00' }, { at: '2022-05-30 12:00:00' }, { at: '2022-06-05 20:00:00' }]))] };
    },
    journal: async () => [],
    now: () => new Date('2022-06-13T12:00:00Z'),
  });

  test('one failing difusor is named and the others reported: exit 3; the baseline ratio of daily averages', async () => {
    const r = await buildReport(
      { targets: [difusor('a', '/l*'), difusor('b', '/l*'), difusor('c')], timeZone: TZ, period: PERIOD, baseline: { from: '2022-05-29', to: '2022-05-30' }, concurrency: 2 },
      ports(['b']),
    );
    expect(r.exitCode).toBe(3);
    expect(r.difusores.map((d) => [d.id, d.result])).toEqual([['a', 'ok'], ['b', 'failed'], ['c', 'no-logs']]);
    expect(r.difusores[1]!.error).toMatch(/b: connection refused/);
    // 1 visit over 2 days against 2 visits over 2 days.
    expect(r.difusores[0]!.ratio).toEqual({ hits: 0.5, pages: 0.5, visits: 0.5, visitors: 1, bytes: 0.5 });
    expect(r.difusores[0]!.baseline).toMatchObject({ hits: 2, visits: 2, visitors: 1 });
  });

  test('a log that breaks mid-read fails its difusor with no figures, never the half counted before', async () => {
    const broken: LogSource = {
      name: 'access_log.1.gz',
      size: 100,
      async *chunks() {
        yield { lines: lines([{ at: '2022-06-05 20:00:00' }, { at: '2022-06-05 20:00:01' }]).split('\n'), bytes: 50 };
        throw new Error('access_log.1.gz: unexpected end of file');
      },
    };
    const r = await buildReport(
      { targets: [difusor('a', '/l*')], timeZone: TZ, period: PERIOD, concurrency: 1 },
      { ...ports([]), logs: async () => ({ sources: [broken] }) },
    );
    expect(r.difusores[0]).toMatchObject({ result: 'failed', hits: 0, pages: 0, visits: 0, visitors: 0, bytes: 0, lines: 0 });
    expect(r.difusores[0]!.error).toMatch(/unexpected end of file/);
  });

  test('every difusor failing is exit 1', async () => {
    const r = await buildReport({ targets: [difusor('a', '/l*')], timeZone: TZ, period: PERIOD, concurrency: 1 }, ports(['a']));
    expect(r.exitCode).toBe(1);
  });
});
