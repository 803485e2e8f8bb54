import { instantToWall } from '../core/registry/window.js';
import { terminalText } from '../core/shared/printable.js';

export { terminalText };

/** How a run shows itself: decided once from the terminal and the flags, never inside the core. */
export type RendererKind = 'live' | 'plain' | 'silent';

export function chooseRenderer(env: { isTTY: boolean; json: boolean; noColor: boolean; ci: boolean }): RendererKind {
  if (env.json) return 'silent';
  if (!env.isTTY || env.noColor || env.ci) return 'plain';
  return 'live';
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** A plain table: columns padded to their widest cell, no escape codes, so it reads the same in a log file. */
export function renderTable(header: string[], cells: string[][]): string {
  // A cell may hold a difusor's words: escaped before measuring, so the columns line up with what is shown.
  const rows = cells.map((r) => r.map((c) => terminalText(c).replace(/\n/g, ' ')));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] as number)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** Local wall time with seconds, for plain log lines. */
export function localStamp(date: Date, timeZone: string): string {
  return instantToWall(date, timeZone).replace('T', ' ');
}
