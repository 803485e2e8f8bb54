import type { Board } from '../core/probe/board.js';
import { BOARD_STATES } from '../core/probe/board.js';
import type { ProbeFailureKind } from '../core/probe/probe.js';

/**
 * The board for the operators' monitoring: Prometheus' text exposition format, for node_exporter's textfile
 * collector (the command writes it atomically: the collector never reads half a file).
 */

const KINDS: readonly ProbeFailureKind[] = ['lag', 'differs', 'down', 'certificate', 'notice-missing', 'unknown-cut', 'redirect'];

function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

export function boardMetrics(board: Board): string {
  const out: string[] = [];
  const family = (name: string, type: 'gauge' | 'counter', help: string, samples: Array<[Record<string, string>, number]>): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) {
      const text = Object.entries(labels)
        .map(([k, v]) => `${k}="${label(v)}"`)
        .join(',');
      out.push(`${name}${text ? `{${text}}` : ''} ${Number.isFinite(value) ? value : 'NaN'}`);
    }
  };
  const ds = board.difusores;
  family('difusion_difusor_lag_seconds', 'gauge', 'Seconds the difusor stays behind the newest cut that went live (0: current), as of its last counted round.',
    ds.filter((d) => d.lagSeconds !== null).map((d) => [{ difusor: d.id }, d.lagSeconds as number]));
  family('difusion_difusor_state', 'gauge', 'The difusor\'s state, one-hot: 1 for the state it is in.',
    ds.flatMap((d) => BOARD_STATES.map((s): [Record<string, string>, number] => [{ difusor: d.id, state: s }, d.state === s ? 1 : 0])));
  family('difusion_difusor_uptime_ratio', 'gauge', 'Share of counted rounds in which the difusor was current.',
    ds.filter((d) => d.uptime !== null).map((d) => [{ difusor: d.id }, d.uptime as number]));
  family('difusion_difusor_failures_total', 'counter', 'Counted rounds in which the difusor failed, by kind of failure.',
    ds.flatMap((d) => KINDS.map((k): [Record<string, string>, number] => [{ difusor: d.id, kind: k }, d.failures[k] ?? 0])));
  const c = board.checker;
  if (c.lastRoundAt) family('difusion_probe_last_round_timestamp_seconds', 'gauge', 'When the last probe round ran (Unix time).', [[{}, Date.parse(c.lastRoundAt) / 1000]]);
  if (c.lastDurationSeconds !== null) family('difusion_probe_duration_seconds', 'gauge', 'Wall time the last probe round took.', [[{}, c.lastDurationSeconds]]);
  family('difusion_probe_rounds_total', 'counter', 'Probe rounds kept since the history began.', [[{}, c.rounds]]);
  family('difusion_probe_doubt_rounds_total', 'counter', 'Rounds in which most difusores were unreachable at once (the checker\'s doubt).', [[{}, c.doubtRounds]]);
  const last = board.rounds.at(-1);
  family('difusion_probe_last_round_doubt', 'gauge', '1 when the last round is in doubt.', [[{}, last?.doubt ? 1 : 0]]);
  return `${out.join('\n')}\n`;
}
