import type { ProbeFailureKind, ProbeRow } from '../records/probe-row.js';
import { publicProbeState } from './probe.js';
import { BOARD_STATES, type BoardState, type NewRound, type RoundEntry, type RoundRecord } from '../records/probe-history.js';

export { BOARD_STATES, type BoardState } from '../records/probe-history.js';

/**
 * The public transparency board: each official difusor's freshness, history and integrity, from the probe
 * rounds. Pure: rounds in, a summary and the board's data out.
 *
 * 1. A probe report becomes a round (`roundOf`): each difusor's state by the published codes, its cut, its
 *    lag and the kinds of failure — public data only, never an address or an error text.
 * 2. A round where more than DOUBT_SHARE of the difusores checked (at least DOUBT_MINIMUM) could not be
 *    reached at once is the checker's doubt (its own network, like Debian's mirror checker ignoring a run
 *    where over 70 % failed): drawn, marked, never counted against them.
 * 3. The history store folds each round into a small summary (`foldRound`): per difusor its state and since
 *    when, counts for the uptime and the failures, the lags as counts per second, and the last
 *    ROUND_WINDOW states; so the board costs the same after five hundred rounds as after five.
 * 4. `buildBoard` draws board.json's data from the summary and the registry's list (names, links: a
 *    suspended difusor has none).
 */

export const DOUBT_SHARE = 0.7;
export const DOUBT_MINIMUM = 3;
/** Rounds kept in the summary's strips: a day at one round a minute. */
export const ROUND_WINDOW = 1440;

/** The page's words for each state, and what each one means. */
export const STATE_LABELS: Readonly<Record<BoardState, { label: string; meaning: string }>> = {
  current: { label: 'Al día', meaning: 'Muestra el corte más reciente publicado por el instituto, sin alteraciones.' },
  lagging: { label: 'Con retraso', meaning: 'Muestra un corte anterior, dentro del retraso permitido.' },
  stale: { label: 'Desactualizado', meaning: 'Muestra un corte anterior, más allá del retraso permitido.' },
  altered: { label: 'Alterado', meaning: 'Algún archivo no coincide con lo publicado, o muestra contenido que el instituto no publicó.' },
  unreachable: { label: 'Sin respuesta', meaning: 'No responde o su certificado de seguridad no es válido.' },
  suspended: { label: 'Suspendido', meaning: 'Suspendido por el instituto; muestra el aviso de suspensión.' },
  'notice-missing': { label: 'Sin aviso', meaning: 'Suspendido por el instituto, pero no muestra el aviso de suspensión.' },
  unchecked: { label: 'Sin revisar', meaning: 'La ronda de revisión no lo alcanzó.' },
};

export interface DifusorSummary {
  state: BoardState;
  cut: string | null;
  since: string | null;
  lagSeconds: number | null;
  kinds: ProbeFailureKind[];
  /** Rounds that reached it and were not in doubt. */
  checked: number;
  current: number;
  failures: Partial<Record<ProbeFailureKind, number>>;
  /** Lag seconds → rounds with that lag, over the counted rounds that saw a cut. */
  lags: Record<string, number>;
  /** State per round of `BoardSummary.rounds`, oldest first, same length. */
  history: BoardState[];
}

export interface SummaryRound {
  at: string;
  doubt: boolean;
  tookMs: number;
  maxLagSeconds: number;
}

export interface BoardSummary {
  rounds: SummaryRound[];
  totalRounds: number;
  doubtRounds: number;
  firstAt: string;
  difusores: Record<string, DifusorSummary>;
}

/** The state a probe row shows the public; the worst first: no answer, altered, no notice, stale, behind. */
export function boardState(row: Pick<ProbeRow, 'ok' | 'kinds' | 'registryStatus' | 'lagSeconds'>): BoardState {
  const has = (...kinds: ProbeFailureKind[]): boolean => kinds.some((k) => row.kinds.includes(k));
  if (has('down', 'certificate')) return 'unreachable';
  if (has('differs', 'unknown-cut', 'redirect')) return 'altered';
  if (row.registryStatus === 'suspended') return has('notice-missing') || !row.ok ? 'notice-missing' : 'suspended';
  if (has('lag')) return 'stale';
  if (!row.ok) return 'altered';
  return (row.lagSeconds ?? 0) > 0 ? 'lagging' : 'current';
}

/** Most of the difusores checked unreachable at once: the checker is in doubt, not they. */
export function isDoubtRound(states: BoardState[]): boolean {
  const checked = states.filter((s) => s !== 'unchecked');
  if (checked.length < DOUBT_MINIMUM) return false;
  return checked.filter((s) => s === 'unreachable').length / checked.length > DOUBT_SHARE;
}

export function roundOf(report: { at: string; newest?: string; maxLagSeconds: number; difusores: ProbeRow[] }, tookMs: number): NewRound {
  const difusores: RoundEntry[] = report.difusores.map((r) => ({
    id: r.id,
    state: boardState(r),
    kinds: [...r.kinds],
    cut: r.cut ?? null,
    lagSeconds: r.lagSeconds ?? null,
    files: r.filesChecked,
    differing: r.differing.length,
    status: r.status ?? null,
    ttfbMs: r.ttfbMs === undefined ? null : Math.round(r.ttfbMs),
    totalMs: r.totalMs,
  }));
  return {
    at: report.at,
    maxLagSeconds: report.maxLagSeconds,
    newest: report.newest ?? null,
    doubt: isDoubtRound(difusores.map((d) => d.state)),
    tookMs: Math.round(tookMs),
    difusores,
  };
}

function emptyDifusor(rounds: number): DifusorSummary {
  return { state: 'unchecked', cut: null, since: null, lagSeconds: null, kinds: [], checked: 0, current: 0, failures: {}, lags: {}, history: Array<BoardState>(rounds).fill('unchecked') };
}

/** The summary after one more round; the input is not changed. */
export function foldRound(previous: BoardSummary | undefined, round: RoundRecord): BoardSummary {
  const summary: BoardSummary = previous
    ? { ...previous, rounds: [...previous.rounds], difusores: { ...previous.difusores } }
    : { rounds: [], totalRounds: 0, doubtRounds: 0, firstAt: round.at, difusores: {} };
  const before = summary.rounds.length;
  summary.rounds.push({ at: round.at, doubt: round.doubt, tookMs: round.tookMs, maxLagSeconds: round.maxLagSeconds });
  summary.totalRounds += 1;
  if (round.doubt) summary.doubtRounds += 1;
  const seen = new Map(round.difusores.map((d) => [d.id, d]));
  for (const id of new Set([...Object.keys(summary.difusores), ...seen.keys()])) {
    const old = summary.difusores[id] ?? emptyDifusor(before);
    const d: DifusorSummary = { ...old, failures: { ...old.failures }, lags: { ...old.lags }, history: [...old.history] };
    const entry = seen.get(id);
    d.history.push(entry?.state ?? 'unchecked');
    if (entry && !round.doubt) {
      d.checked += 1;
      if (entry.state === 'current') d.current += 1;
      for (const kind of entry.kinds) d.failures[kind] = (d.failures[kind] ?? 0) + 1;
      if (entry.lagSeconds !== null) d.lags[entry.lagSeconds] = (d.lags[entry.lagSeconds] ?? 0) + 1;
      if (entry.state !== d.state || d.since === null) d.since = round.at;
      d.state = entry.state;
      d.cut = entry.cut;
      d.lagSeconds = entry.lagSeconds;
      d.kinds = [...entry.kinds];
    }
    summary.difusores[id] = d;
  }
  if (summary.rounds.length > ROUND_WINDOW) {
    const drop = summary.rounds.length - ROUND_WINDOW;
    summary.rounds = summary.rounds.slice(drop);
    for (const d of Object.values(summary.difusores)) d.history = d.history.slice(drop);
  }
  return summary;
}

/** Nearest-rank percentile of a histogram of whole seconds; null without samples. */
export function lagPercentile(lags: Record<string, number>, q: number): number | null {
  const values = Object.entries(lags)
    .map(([s, n]) => [Number(s), n] as const)
    .sort((a, b) => a[0] - b[0]);
  const total = values.reduce((sum, [, n]) => sum + n, 0);
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (const [seconds, n] of values) {
    seen += n;
    if (seen >= rank) return seconds;
  }
  return values.at(-1)?.[0] ?? null;
}

export interface BoardDifusor {
  id: string;
  name: string;
  /** The link the public follows; null while suspended. */
  url: string | null;
  registryStatus: 'active' | 'suspended';
  state: BoardState;
  label: string;
  /** The failures of its last counted round, and the fixed public sentence of each (PUBLIC_WORDING). */
  kinds: ProbeFailureKind[];
  wording: string[];
  cut: string | null;
  since: string | null;
  lagSeconds: number | null;
  uptime: number | null;
  lag: { p50: number | null; p95: number | null; max: number | null };
  failures: Partial<Record<ProbeFailureKind, number>>;
  checkedRounds: number;
  history: BoardState[];
}

export interface Board {
  generatedAt: string;
  timezone: string;
  thresholds: { maxLagSeconds: number; doubtShare: number; doubtMinimum: number };
  states: Array<{ code: BoardState; label: string; meaning: string }>;
  checker: {
    lastRoundAt: string | null;
    firstRoundAt: string | null;
    rounds: number;
    doubtRounds: number;
    /** Median seconds between the rounds kept; null with fewer than two. */
    intervalSeconds: number | null;
    lastDurationSeconds: number | null;
  };
  rounds: Array<{ at: string; doubt: boolean }>;
  difusores: BoardDifusor[];
}

export interface BoardListing {
  id: string;
  name: string;
  public_url: string;
  status: 'active' | 'suspended';
}

function medianInterval(rounds: SummaryRound[]): number | null {
  const gaps: number[] = [];
  for (let i = 1; i < rounds.length; i++) gaps.push((Date.parse((rounds[i] as SummaryRound).at) - Date.parse((rounds[i - 1] as SummaryRound).at)) / 1000);
  if (gaps.length === 0) return null;
  gaps.sort((a, b) => a - b);
  return Math.round(gaps[Math.floor(gaps.length / 2)] as number);
}

export function buildBoard(input: { summary: BoardSummary | undefined; difusores: BoardListing[]; generatedAt: string; timezone: string; maxLagSeconds?: number }): Board {
  const summary = input.summary;
  const rounds = summary?.rounds ?? [];
  const last = rounds.at(-1);
  const difusores = input.difusores.map((listing): BoardDifusor => {
    const d = summary?.difusores[listing.id] ?? emptyDifusor(rounds.length);
    const lagMax = Object.keys(d.lags).length > 0 ? Math.max(...Object.keys(d.lags).map(Number)) : null;
    return {
      id: listing.id,
      name: listing.name,
      url: listing.status === 'suspended' ? null : listing.public_url,
      registryStatus: listing.status,
      state: d.state,
      label: STATE_LABELS[d.state].label,
      kinds: d.kinds,
      wording: publicProbeState({ id: listing.id, ok: d.kinds.length === 0, kinds: d.kinds }, d.since ?? '').wording,
      cut: d.cut,
      since: d.since,
      lagSeconds: d.lagSeconds,
      uptime: d.checked > 0 ? Math.round((d.current / d.checked) * 10_000) / 10_000 : null,
      lag: { p50: lagPercentile(d.lags, 0.5), p95: lagPercentile(d.lags, 0.95), max: lagMax },
      failures: d.failures,
      checkedRounds: d.checked,
      history: d.history,
    };
  });
  return {
    generatedAt: input.generatedAt,
    timezone: input.timezone,
    thresholds: { maxLagSeconds: input.maxLagSeconds ?? last?.maxLagSeconds ?? 60, doubtShare: DOUBT_SHARE, doubtMinimum: DOUBT_MINIMUM },
    states: BOARD_STATES.map((code) => ({ code, ...STATE_LABELS[code] })),
    checker: {
      lastRoundAt: last?.at ?? null,
      firstRoundAt: summary?.firstAt ?? null,
      rounds: summary?.totalRounds ?? 0,
      doubtRounds: summary?.doubtRounds ?? 0,
      intervalSeconds: medianInterval(rounds),
      lastDurationSeconds: last ? Math.round(last.tookMs) / 1000 : null,
    },
    rounds: rounds.map((r) => ({ at: r.at, doubt: r.doubt })),
    difusores,
  };
}
