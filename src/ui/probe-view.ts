import type { ProbeReport, ProbeRow } from '../core/probe/probe.js';
import { localStamp, renderTable, terminalText } from './render.js';

function seen(r: ProbeRow): string {
  if (r.cut) return r.cut;
  if (r.notice) return 'aviso';
  return '-';
}

function lag(r: ProbeRow): string {
  return r.lagSeconds === undefined ? '-' : `${r.lagSeconds} s`;
}

function certificate(r: ProbeRow): string {
  if (!r.certificate) return '-';
  return `${r.certificate.daysLeft} d${r.certificate.daysLeft < 14 ? ' (!)' : ''}`;
}

function result(r: ProbeRow): string {
  return r.ok ? (r.warnings.length > 0 ? 'ok (warn)' : 'ok') : `FAIL ${r.kinds.join(',')}`;
}

/** What follows a row: every differing file named, the error, the warnings. */
function details(r: ProbeRow): string[] {
  return [...r.differing.map((f) => `${r.id}: differs: ${f}`), ...(r.error ? [`${r.id}: ${r.error}`] : []), ...r.warnings.map((w) => `${r.id}: warning: ${w}`)];
}

/** On a terminal: one table, then what needs reading. */
export function probeTable(report: ProbeReport, timeZone: string): string {
  const header = `probe at ${localStamp(new Date(report.at), timeZone)} · newest live cut ${report.newest ?? '(none yet)'} · max lag ${report.maxLagSeconds} s${report.full ? ' · full' : ''}`;
  const table = renderTable(
    ['difusor', 'result', 'cut seen', 'lag', 'files', 'differing', 'status', 'ttfb', 'total', 'cert'],
    report.difusores.map((r) => [
      r.id,
      result(r),
      seen(r),
      lag(r),
      String(r.filesChecked),
      String(r.differing.length),
      r.status === undefined ? '-' : String(r.status),
      r.ttfbMs === undefined ? '-' : `${r.ttfbMs} ms`,
      `${r.totalMs} ms`,
      certificate(r),
    ]),
  );
  return terminalText([header, table, ...report.difusores.flatMap(details)].join('\n'));
}

/** Without a terminal (cron): one timestamped line per difusor, then the named differences. */
export function probeLines(report: ProbeReport, timeZone: string): string[] {
  const stamp = localStamp(new Date(report.at), timeZone);
  return report.difusores.flatMap((r) => [
    `${stamp}  ${r.id}  ${result(r)}  cut=${seen(r)} lag=${lag(r).replace(' ', '')} files=${r.filesChecked} differing=${r.differing.length} ` +
      `status=${r.status ?? '-'} ttfb=${r.ttfbMs ?? '-'}ms total=${r.totalMs}ms cert=${r.certificate ? `${r.certificate.daysLeft}d` : '-'}`,
    ...details(r).map((line) => `${stamp}  ${line}`),
  ]).map(terminalText);
}
