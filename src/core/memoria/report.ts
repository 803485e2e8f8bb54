import type { JournalEntry } from '../records/journal.js';
import type { MergedSource } from '../records/merged-journal.js';
import type { LogSource } from './log-merge.js';
import { countMerged } from './log-merge.js';
import { runPool } from '../publish/publish.js';
import { TrafficCounter, periodDays, type Figures, type Period, type TrafficFigures } from './traffic.js';
import type { Difusor } from '../registry/types.js';
import { formatLocal, instantToWall, wallToInstant } from '../registry/window.js';

/**
 * The memoria técnica (SPEC, "Memoria técnica figures"), for every targeted difusor at once:
 *   1. its access logs, pulled read-only into the state dir (or read in place for a local difusor);
 *      a difusor whose logs cannot be had is named, the others are reported (exit 3);
 *   2. one pass over them, merged in time order, counting the period and the baseline together;
 *   3. per difusor the ratio election/baseline of daily averages (the convocatoria's comparison);
 *   4. from the journal, in the period: failed publishes, cut-offs, probe failures, and every
 *      difusor's lag per cut, an incident where it went live more than a minute after the first.
 * Everything is in the publication timezone; nothing here prints or renders.
 */

export interface ReportRequest {
  targets: Difusor[];
  timeZone: string;
  period: Period;
  baseline?: Period;
  concurrency: number;
}

export interface ReportPorts {
  /** The difusor's log files, pulled or in place; throws when they cannot be had. */
  logs(difusor: Difusor, since: Date): Promise<{ sources: LogSource[]; pulled?: { bytes: number; files: number; older: number } }>;
  /** The journal's entries; with the alternate site, both hosts' merged in time order (records/merged-journal.ts). */
  journal(): Promise<JournalEntry[]>;
  now(): Date;
  onProgress?(id: string, event: { phase: 'pulling' | 'counting' | 'done' | 'failed'; done?: number; total?: number; error?: string }): void;
}

export type Ratios = Record<keyof Figures, number | null>;

export interface DifusorReport extends TrafficFigures {
  id: string;
  name: string;
  result: 'ok' | 'failed' | 'no-logs';
  error?: string;
  logs: { files: number; bytesPulled?: number; older?: number };
  baseline?: TrafficFigures;
  /** Election/baseline ratio of daily averages; null where the baseline is 0. */
  ratio?: Ratios;
  /** host: the publication host whose run switched it (absent for entries written before entries named it). */
  lags: Array<{ cut: string; liveAt: string; lateSeconds: number; host?: string }>;
}

export type IncidentKind = 'publish-failed' | 'cutoff' | 'reinstate' | 'probe-failed' | 'lag';

export interface Incident {
  at: string;
  /** 'YYYY-MM-DD HH:MM:SS (UTC-5)' */
  local: string;
  kind: IncidentKind;
  /** The publication host whose journal recorded it. */
  host?: string;
  difusor?: string;
  cut?: string;
  description: string;
}

export interface MemoriaReport {
  generatedAt: string;
  timezone: string;
  period: Period & { days: number };
  baseline?: Period & { days: number };
  difusores: DifusorReport[];
  /** Every cut that went live in the period: when the first difusor switched to it, and the host that switched it. */
  cuts: Array<{ cut: string; liveAt: string; local: string; host?: string }>;
  incidents: Incident[];
  /** Every run in the period, in time order: the night as the journals tell it, each run with its host. */
  runs: RunSummary[];
  /** The journals the report was built from, when more than this host's (the alternate site's `--journal`). */
  journals?: MergedSource[];
  exitCode: 0 | 1 | 3;
}

/** One run of the journal: when it began, on which host, what it did and how it ended. */
export interface RunSummary {
  at: string;
  local: string;
  host?: string;
  run: string;
  command: string;
  cut?: string;
  /** The run's `end` entry result; absent for runs that journal no end (probe, cutoff) or never reached it. */
  result?: JournalEntry['result'];
  entries: number;
}

const LAG_LIMIT_S = 60;

function dailyRatio(election: Figures, electionDays: number, baseline: Figures, baselineDays: number): Ratios {
  const ratio = (key: keyof Figures): number | null => {
    const base = baseline[key] / baselineDays;
    return base === 0 ? null : Math.round(((election[key] / electionDays) / base) * 100) / 100;
  };
  return { hits: ratio('hits'), pages: ratio('pages'), visits: ratio('visits'), visitors: ratio('visitors'), bytes: ratio('bytes') };
}

/** The first local instant of the period and the last, as instants. */
export function periodBounds(period: Period, timeZone: string): { start: Date; end: Date } {
  return { start: wallToInstant(`${period.from}T00:00:00`, timeZone), end: wallToInstant(`${period.to}T23:59:59`, timeZone) };
}

export async function buildReport(req: ReportRequest, ports: ReportPorts): Promise<MemoriaReport> {
  const { timeZone, period, baseline } = req;
  const days = periodDays(period);
  const baselineDays = baseline ? periodDays(baseline) : 0;
  const since = [period, ...(baseline ? [baseline] : [])]
    .map((p) => periodBounds(p, timeZone).start)
    // A day of margin: a rotated file's mtime is its last line, and lines may carry another offset.
    .reduce((a, b) => (a < b ? a : b));
  since.setTime(since.getTime() - 86_400_000);

  const journal = await ports.journal();
  const { cuts, lags, incidents, runs } = journalFacts(journal, period, timeZone);

  const reports = new Map<string, DifusorReport>();
  // Logs are pulled side by side (the network waits), but counted one difusor at a time: counting is CPU on
  // one thread either way, and one difusor's addresses in memory at a time keeps eight difusores' peak at one's.
  let counting: Promise<unknown> = Promise.resolve();
  const oneAtATime = <T>(work: () => Promise<T>): Promise<T> => {
    const turn = counting.then(work, work);
    counting = turn.catch(() => undefined);
    return turn;
  };
  await runPool(req.targets, req.concurrency, async (d) => {
    const counter = new TrafficCounter(period, timeZone);
    const baseCounter = baseline ? new TrafficCounter(baseline, timeZone) : undefined;
    const base: Omit<DifusorReport, keyof TrafficFigures> = { id: d.id, name: d.name, result: 'ok', logs: { files: 0 }, lags: lags.get(d.id) ?? [] };
    if (!d.access_log) {
      reports.set(d.id, { ...counter.result(), ...base, result: 'no-logs', error: 'the registry gives no access_log for this difusor; add access_log (a path or glob on its server) to count its traffic' });
      return;
    }
    try {
      ports.onProgress?.(d.id, { phase: 'pulling' });
      const { sources, pulled } = await ports.logs(d, since);
      await oneAtATime(async () => {
        ports.onProgress?.(d.id, { phase: 'counting', done: 0, total: sources.reduce((t, s) => t + s.size, 0) });
        await countMerged(sources, baseCounter ? [counter, baseCounter] : counter, (done, total) =>
          ports.onProgress?.(d.id, { phase: 'counting', done, total }),
        );
      });
      const figures = counter.result();
      const baseFigures = baseCounter?.result();
      reports.set(d.id, {
        ...figures,
        ...base,
        logs: { files: sources.length, ...(pulled ? { bytesPulled: pulled.bytes, older: pulled.older } : {}) },
        ...(baseFigures ? { baseline: baseFigures, ratio: dailyRatio(figures, days, baseFigures, baselineDays) } : {}),
      });
      ports.onProgress?.(d.id, { phase: 'done' });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      // Never the figures counted before the failure: a memoria must not show half a log as the difusor's traffic.
      reports.set(d.id, { ...new TrafficCounter(period, timeZone).result(), ...base, result: 'failed', error: message });
      ports.onProgress?.(d.id, { phase: 'failed', error: message });
    }
  });

  const difusores = req.targets.map((d) => reports.get(d.id) as DifusorReport);
  const failed = difusores.filter((r) => r.result === 'failed').length;
  return {
    generatedAt: ports.now().toISOString(),
    timezone: timeZone,
    period: { ...period, days },
    ...(baseline ? { baseline: { ...baseline, days: baselineDays } } : {}),
    difusores,
    cuts,
    incidents,
    runs,
    exitCode: failed === 0 ? 0 : failed === difusores.length ? 1 : 3,
  };
}

function inPeriod(at: string, period: Period, timeZone: string): boolean {
  const day = instantToWall(new Date(at), timeZone).slice(0, 10);
  return day >= period.from && day <= period.to;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** Cuts, lags and incidents from the journal, for the period. */
export function journalFacts(
  journal: JournalEntry[],
  period: Period,
  timeZone: string,
): { cuts: MemoriaReport['cuts']; lags: Map<string, DifusorReport['lags']>; incidents: Incident[]; runs: RunSummary[] } {
  const incidents: Incident[] = [];
  const incident = (entry: JournalEntry, kind: IncidentKind, description: string, at = entry.at): void => {
    incidents.push({
      at,
      local: formatLocal(new Date(at), timeZone),
      kind,
      ...(entry.host ? { host: entry.host } : {}),
      ...(entry.difusor ? { difusor: entry.difusor } : {}),
      ...(entry.cut ? { cut: entry.cut } : {}),
      description,
    });
  };

  // When each difusor went live on each cut: a switch that happened (not "already live").
  const switches = journal.filter(
    (e) => e.phase === 'switch' && e.result === 'ok' && e.difusor && e.cut && e.detail?.switched !== false,
  );
  const wentLive = (e: JournalEntry): number => Date.parse(text(e.detail?.switchedAt) ?? e.at);
  const firstLive = new Map<string, number>();
  const firstHost = new Map<string, string | undefined>();
  for (const e of switches) {
    const t = wentLive(e);
    if (t < (firstLive.get(e.cut as string) ?? Infinity)) {
      firstLive.set(e.cut as string, t);
      firstHost.set(e.cut as string, e.host);
    }
  }
  const lags = new Map<string, DifusorReport['lags']>();
  for (const e of switches) {
    const t = wentLive(e);
    if (!inPeriod(new Date(t).toISOString(), period, timeZone)) continue;
    const measured = (t - (firstLive.get(e.cut as string) as number)) / 1000;
    const late = typeof e.detail?.lateSeconds === 'number' ? e.detail.lateSeconds : 0;
    const lateSeconds = Math.round(Math.max(measured, late) * 10) / 10;
    const list = lags.get(e.difusor as string) ?? [];
    list.push({ cut: e.cut as string, liveAt: new Date(t).toISOString(), lateSeconds, ...(e.host ? { host: e.host } : {}) });
    lags.set(e.difusor as string, list);
    if (lateSeconds > LAG_LIMIT_S) {
      incident(e, 'lag', `publicó el corte ${e.cut} ${lateSeconds} s después del primer difusor (más de un minuto)`, new Date(t).toISOString());
    }
  }
  const cuts = [...firstLive.entries()]
    .filter(([, t]) => inPeriod(new Date(t).toISOString(), period, timeZone))
    .sort((a, b) => a[1] - b[1])
    .map(([cut, t]) => {
      const host = firstHost.get(cut);
      return { cut, liveAt: new Date(t).toISOString(), local: formatLocal(new Date(t), timeZone), ...(host ? { host } : {}) };
    });

  for (const e of journal) {
    if (!inPeriod(e.at, period, timeZone)) continue;
    if (e.command.startsWith('publish') && e.result === 'failed' && e.difusor) {
      incident(e, 'publish-failed', `falló la publicación del corte ${e.cut ?? '(sin corte)'} en la fase ${e.phase}: ${e.error ?? 'sin mensaje'}`);
    } else if (e.phase === 'cutoff' && e.difusor) {
      const reason = text(e.detail?.reason);
      incident(e, 'cutoff', `${e.result === 'ok' ? 'interrumpido por el instituto' : 'falló la interrupción'}${reason ? `: ${reason}` : ''}${e.error ? ` (${e.error})` : ''}`);
    } else if (e.phase === 'reinstate' && e.difusor) {
      incident(e, 'reinstate', `${e.result === 'ok' ? 'restablecido' : 'falló el restablecimiento'}${e.error ? `: ${e.error}` : ''}`);
    } else if (e.phase === 'probe' && e.result === 'failed' && e.difusor) {
      const kinds = Array.isArray(e.detail?.kinds) ? (e.detail.kinds as unknown[]).map(String).join(', ') : 'failed';
      const lag = typeof e.detail?.lagSeconds === 'number' ? `, retraso ${e.detail.lagSeconds} s` : '';
      incident(e, 'probe-failed', `sondeo fallido: ${kinds}${lag}${text(e.detail?.error) ? ` (${String(e.detail?.error)})` : ''}`);
    }
  }
  incidents.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  return { cuts, lags, incidents, runs: runsOf(journal, period, timeZone) };
}

/** The runs whose first entry is in the period, in the order of their first entry (the journal's order). */
function runsOf(journal: JournalEntry[], period: Period, timeZone: string): RunSummary[] {
  const runs = new Map<string, RunSummary>();
  for (const e of journal) {
    // Two hosts never share a run id (it carries a random suffix); the host keeps two copies of one apart anyway.
    const key = `${e.host ?? ''}\u0000${e.run}`;
    let run = runs.get(key);
    if (!run) {
      run = { at: e.at, local: formatLocal(new Date(e.at), timeZone), ...(e.host ? { host: e.host } : {}), run: e.run, command: e.command, entries: 0 };
      runs.set(key, run);
    }
    run.entries++;
    if (e.cut && !run.cut) run.cut = e.cut;
    if (e.phase === 'end') run.result = e.result;
  }
  return [...runs.values()].filter((r) => inPeriod(r.at, period, timeZone)).sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
}
