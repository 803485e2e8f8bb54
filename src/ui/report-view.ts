import type { ReportPorts } from '../core/memoria/report.js';
import { terminalText } from './render.js';

/**
 * The report's progress on a terminal: one line redrawn in place with each difusor's phase and a bar
 * for the bytes of logs read. Without a terminal (cron, --json, NO_COLOR) it draws nothing.
 */
export function reportProgress(
  stream: NodeJS.WriteStream,
  opts: { enabled: boolean },
): { update: NonNullable<ReportPorts['onProgress']>; done(): void } {
  const state = new Map<string, string>();
  let last = 0;
  const draw = (force = false): void => {
    const now = Date.now();
    if (!force && now - last < 100) return;
    last = now;
    const text = terminalText([...state.entries()].map(([id, s]) => `${id} ${s}`).join('  ')).replace(/\n/g, ' ');
    const width = stream.columns ?? 100;
    stream.write(`\r\x1b[K${text.slice(0, width - 1)}`);
  };
  return {
    update(id, event) {
      if (!opts.enabled) return;
      if (event.phase === 'counting' && event.total) {
        const share = Math.min(1, (event.done ?? 0) / event.total);
        const filled = Math.round(share * 12);
        state.set(id, `[${'#'.repeat(filled)}${'.'.repeat(12 - filled)}] ${Math.round(share * 100)}%`);
      } else {
        state.set(id, event.phase === 'pulling' ? 'pulling logs' : event.phase);
      }
      draw(event.phase !== 'counting');
    },
    done() {
      if (opts.enabled && state.size > 0) stream.write('\r\x1b[K');
    },
  };
}
