import type { ListrTaskWrapper } from 'listr2';
import type { Difusor } from '../core/registry/types.js';
import type { Phase, PublishObserver } from '../core/publish/publish.js';
import type { PublishRunResult } from '../core/publish/publish-run.js';
import { formatBytes, localStamp, renderTable, terminalText, type RendererKind } from './render.js';
import type { RunProgress } from './state-failure.js';

const TERMINAL: ReadonlySet<Phase> = new Set(['live', 'up-to-date', 'planned', 'failed']);

export interface PublishView {
  observer: PublishObserver;
  start(targets: Difusor[]): void;
  /** Waits for the live display to settle before the summary is printed. */
  finish(): Promise<void>;
}

/**
 * Without a terminal: one timestamped line per phase change, readable in a cron log. No transfer
 * progress: nobody watches it there, and rsync's progress lines cost CPU on both ends of the pipe.
 */
export function plainView(write: (line: string) => void, timeZone: string, now: () => Date): PublishView {
  return {
    start: () => undefined,
    finish: async () => undefined,
    observer: {
      phase(id, phase, detail) {
        if (phase === 'waiting') return;
        write(terminalText(`${localStamp(now(), timeZone)}  ${id}  ${phase}${detail ? `  ${detail}` : ''}`));
      },
    },
  };
}

export function silentView(): PublishView {
  return { start: () => undefined, finish: async () => undefined, observer: { phase: () => undefined } };
}

type Row = { task?: ListrTaskWrapper<unknown, never, never>; settle?: (error?: Error) => void; pending: Array<() => void> };

/** On a terminal: one listr2 row per difusor, its phase in the title and transfer progress below. */
export function liveView(): PublishView {
  const rows = new Map<string, Row>();
  let running: Promise<unknown> = Promise.resolve();
  const row = (id: string): Row => {
    let r = rows.get(id);
    if (!r) {
      r = { pending: [] };
      rows.set(id, r);
    }
    return r;
  };
  const apply = (id: string, fn: (r: Row) => void): void => {
    const r = row(id);
    if (r.task) fn(r);
    else r.pending.push(() => fn(r));
  };
  return {
    start(targets) {
      // listr2 loads only for a terminal; rows fill in as it arrives (apply() keeps what comes before).
      running = import('listr2').then(({ Listr }) => new Listr(
        targets.map((d) => ({
          title: terminalText(`${d.id}  waiting`),
          task: (_ctx: unknown, task: ListrTaskWrapper<unknown, never, never>) =>
            new Promise<void>((resolve, reject) => {
              const r = row(d.id);
              r.task = task;
              r.settle = (error) => (error ? reject(error) : resolve());
              for (const fn of r.pending.splice(0)) fn();
            }),
        })),
        {
          concurrent: true,
          exitOnError: false,
          collectErrors: 'minimal',
        },
      ).run()).catch(() => undefined);
    },
    finish: async () => {
      await running;
    },
    observer: {
      phase(id, phase, detail) {
        apply(id, (r) => {
          if (!r.task) return;
          if (phase === 'failed') {
            r.settle?.(new Error(terminalText(`${id}  failed: ${detail ?? ''}`)));
            return;
          }
          r.task.title = terminalText(`${id}  ${phase}${detail ? `  ${detail}` : ''}`);
          if (TERMINAL.has(phase)) r.settle?.();
        });
      },
      progress(id, bytes, percent) {
        apply(id, (r) => {
          if (r.task) r.task.output = terminalText(`${percent}%  ${formatBytes(bytes)}`);
        });
      },
    },
  };
}

/** `now` is the run's clock: under DIFUSION_NOW the progress lines show the time the run was told, like everything else it prints. */
export function viewFor(kind: RendererKind, write: (line: string) => void, timeZone: string, now: () => Date): PublishView {
  if (kind === 'live') return liveView();
  if (kind === 'plain') return plainView(write, timeZone, now);
  return silentView();
}

/** Follows what each difusor reached, so a run that dies midway (a full state directory) can say what it had done. */
export function progressTracker(observer: PublishObserver): { observer: PublishObserver; progress(cut?: string): RunProgress } {
  const reached = new Map<string, Phase>();
  return {
    observer: {
      phase(id, phase, detail) {
        reached.set(id, phase);
        observer.phase(id, phase, detail);
      },
      ...(observer.progress ? { progress: observer.progress.bind(observer) } : {}),
    },
    progress(cut) {
      const live = [...reached].filter(([, p]) => p === 'live' || p === 'up-to-date').map(([id]) => id);
      const notLive = [...reached].filter(([, p]) => p !== 'live' && p !== 'up-to-date').map(([id]) => id);
      // A failed difusor keeps its previous cut: it counts as unchanged here.
      const nothingSent = [...reached.values()].every((p) => p === 'waiting' || p === 'connecting' || p === 'planned' || p === 'failed');
      return { ...(cut ? { cut } : {}), live, notLive, nothingSent };
    },
  };
}

function note(o: PublishRunResult['outcomes'][number]): string {
  if (o.error) return `${o.failedPhase ?? ''}: ${o.error}`;
  if (o.result === 'planned') return `${o.plan}; link ${o.filesLinked}`;
  if (o.lateSeconds) return `late: live ${o.lateSeconds.toFixed(1)} s after the others`;
  return '';
}

export function renderPublishSummary(result: PublishRunResult, deadlineS?: number): string {
  const rows = result.outcomes.map((o) => [
    o.id,
    o.result,
    o.result === 'failed' ? (o.previous ?? '-') : o.cut,
    String(o.filesSent || (o.result === 'planned' ? o.filesToSend : 0)),
    formatBytes(o.result === 'planned' ? o.bytesToSend : o.bytesSent),
    o.seconds.toFixed(1),
    note(o),
  ]);
  for (const s of result.skipped) rows.push([s.id, 'skipped', '-', '0', '0 B', '0.0', s.reason]);
  const header = ['difusor', 'result', 'cut', 'files', result.dryRun ? 'would send' : 'sent', 'seconds', result.dryRun ? 'plan' : 'error'];
  const live = result.outcomes.filter((o) => o.result === 'live' || o.result === 'up-to-date').length;
  const failed = result.outcomes.filter((o) => o.result === 'failed').length;
  const late = result.outcomes.filter((o) => o.result === 'live' && (o.lateSeconds ?? 0) > 0);
  const lines = [renderTable(header, rows), ''];
  if (result.dryRun) {
    lines.push(`dry run of ${result.cut}: nothing was changed on any difusor.${result.wouldRefuse ? ` A real run would be refused: ${result.wouldRefuse}` : ''}`);
  } else {
    const spread = result.switchSpreadMs !== undefined ? `; switches within ${result.switchSpreadMs} ms of each other` : '';
    lines.push(`${result.cut}: ${live} of ${result.outcomes.length} difusores live${failed ? `, ${failed} failed (they keep their previous cut)` : ''}${spread}.`);
    if (result.deadlinePassed) {
      const within = deadlineS !== undefined ? ` within the ${deadlineS} s deadline` : ' by the deadline';
      const lateText = late.map((o) => `${o.id} ${(o.lateSeconds as number).toFixed(1)} s`).join(', ');
      lines.push(`Not everyone was ready${within}: the ready ones switched together${lateText ? `; late, each on its own: ${lateText}` : ''}.`);
    }
  }
  if (result.clock) lines.push(`note: the clock was set by ${result.clock}`);
  return terminalText(lines.join('\n'));
}
