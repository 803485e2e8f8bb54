import type { DifusorReport, Incident, MemoriaReport } from '../core/memoria/report.js';
import type { Figures, TrafficFigures } from '../core/memoria/traffic.js';
import { formatBytes } from './render.js';

/**
 * The memoria técnica as one self-contained page (no external asset: CSS inline, charts as inline SVG),
 * in Spanish, readable on a phone and printable on A4. Every value from logs or the journal is escaped.
 */

const number = new Intl.NumberFormat('es-MX');
const fmt = (n: number): string => number.format(n);

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

const dmy = (date: string): string => `${date.slice(8, 10)}/${date.slice(5, 7)}/${date.slice(0, 4)}`;

interface Series {
  name: string;
  values: number[];
  colour: string;
}

/** Grouped bars with a labelled maximum; scales to its container's width. */
export function barChart(title: string, labels: string[], series: Series[], opts: { labelEvery?: number; limit?: number } = {}): string {
  const width = 720;
  const height = 220;
  const left = 56;
  const bottom = 36;
  const top = 12;
  const plotW = width - left - 8;
  const plotH = height - top - bottom;
  const max = Math.max(1, opts.limit ?? 0, ...series.flatMap((s) => s.values));
  const group = plotW / Math.max(1, labels.length);
  const bar = Math.max(1, (group * 0.8) / series.length);
  const every = opts.labelEvery ?? Math.max(1, Math.ceil(labels.length / 16));
  const y = (v: number): number => top + plotH - (v / max) * plotH;
  const bars = series
    .map((s, si) =>
      s.values
        .map((v, i) => {
          const x = left + i * group + group * 0.1 + si * bar;
          return `<rect x="${x.toFixed(1)}" y="${y(v).toFixed(1)}" width="${bar.toFixed(1)}" height="${(top + plotH - y(v)).toFixed(1)}" fill="${s.colour}"><title>${escapeHtml(`${labels[i]}: ${s.name} ${fmt(v)}`)}</title></rect>`;
        })
        .join(''),
    )
    .join('');
  const xLabels = labels
    .map((label, i) =>
      i % every === 0
        ? `<text x="${(left + i * group + group / 2).toFixed(1)}" y="${height - bottom + 16}" text-anchor="middle">${escapeHtml(label)}</text>`
        : '',
    )
    .join('');
  const limit =
    opts.limit !== undefined
      ? `<line x1="${left}" x2="${width - 8}" y1="${y(opts.limit).toFixed(1)}" y2="${y(opts.limit).toFixed(1)}" class="limit"/><text x="${width - 10}" y="${(y(opts.limit) - 4).toFixed(1)}" text-anchor="end" class="limit-label">límite ${fmt(opts.limit)}</text>`
      : '';
  const legend = series.map((s) => `<span class="key"><i style="background:${s.colour}"></i>${escapeHtml(s.name)}</span>`).join(' ');
  return `<figure><figcaption>${escapeHtml(title)} ${legend}</figcaption>
<svg viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeHtml(title)}" xmlns="http://www.w3.org/2000/svg">
<line x1="${left}" x2="${width - 8}" y1="${top + plotH}" y2="${top + plotH}" class="axis"/>
<line x1="${left}" x2="${width - 8}" y1="${top}" y2="${top}" class="grid"/>
<text x="${left - 6}" y="${top + 4}" text-anchor="end">${fmt(max)}</text><text x="${left - 6}" y="${top + plotH}" text-anchor="end">0</text>
${bars}${limit}${xLabels}</svg></figure>`;
}

const HITS = '#1f5fa8';
const PAGES = '#e07b00';

function ratioText(r: number | null | undefined): string {
  if (r === null || r === undefined) return '—';
  return `${r.toLocaleString('es-MX', { maximumFractionDigits: 2 })}×`;
}

const RESULT: Record<DifusorReport['result'], string> = { ok: 'analizado', failed: 'sin datos: falló', 'no-logs': 'sin bitácora de accesos' };

function totalsRow(d: DifusorReport): string {
  return `<tr><th scope="row"><a href="#d-${escapeHtml(d.id)}">${escapeHtml(d.name)}</a><br><small>${escapeHtml(d.id)}</small></th>
<td>${fmt(d.visits)}</td><td>${fmt(d.visitors)}</td><td>${fmt(d.pages)}</td><td>${fmt(d.hits)}</td><td>${escapeHtml(formatBytes(d.bytes))}</td>
<td>${ratioText(d.ratio?.visits)}</td><td class="${d.result}">${escapeHtml(RESULT[d.result])}${d.error ? `<br><small>${escapeHtml(d.error)}</small>` : ''}</td></tr>`;
}

function apart(d: TrafficFigures): string {
  const errors = Object.entries(d.errors)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([code, n]) => `${escapeHtml(code)}: ${fmt(n)}`)
    .join(', ');
  const methods = Object.entries(d.methods)
    .map(([m, n]) => `${escapeHtml(m)}: ${fmt(n)}`)
    .join(', ');
  return `<table class="apart"><caption>Contado aparte (no son visitas, páginas ni hits)</caption><tbody>
<tr><th>Robots</th><td>${fmt(d.robots.hits)} hits, ${escapeHtml(formatBytes(d.robots.bytes))} (robots.txt: ${fmt(d.robots.robotsTxt)})</td></tr>
<tr><th>Otros estados HTTP</th><td>${errors || 'ninguno'}</td></tr>
<tr><th>Métodos no contados</th><td>${methods || 'ninguno'}</td></tr>
<tr><th>/favicon.ico</th><td>${fmt(d.favicon)}</td></tr>
<tr><th>Líneas mal formadas</th><td>${fmt(d.malformed)}</td></tr>
<tr><th>Líneas fuera del periodo</th><td>${fmt(d.outside)}</td></tr>
<tr><th>Líneas fuera de orden (descartadas como AWStats: más de 20000 AAAAMMDDhhmmss antes de la más reciente)</th><td>${fmt(d.outOfOrder)}</td></tr>
<tr><th>Líneas leídas</th><td>${fmt(d.lines)}</td></tr>
</tbody></table>`;
}

function baselineTable(d: DifusorReport, report: MemoriaReport): string {
  if (!d.baseline || !report.baseline) return '';
  const keys: Array<[keyof Figures, string]> = [
    ['visits', 'Visitas'],
    ['visitors', 'Visitantes'],
    ['pages', 'Páginas'],
    ['hits', 'Hits'],
    ['bytes', 'Bytes'],
  ];
  const avg = (f: Figures, key: keyof Figures, days: number): string => {
    const v = f[key] / days;
    return key === 'bytes' ? formatBytes(Math.round(v)) : fmt(Math.round(v * 10) / 10);
  };
  const rows = keys
    .map(
      ([key, label]) =>
        `<tr><th scope="row">${label}</th><td>${escapeHtml(avg(d, key, report.period.days))}</td><td>${escapeHtml(avg(d.baseline as Figures, key, report.baseline!.days))}</td><td>${ratioText(d.ratio?.[key])}</td></tr>`,
    )
    .join('');
  const daily = (f: Figures, days: number): number[] => [f.visits / days, f.pages / days, f.hits / days].map((v) => Math.round(v * 10) / 10);
  const chart = barChart(
    'Promedio diario: elección frente a línea base',
    ['Visitas', 'Páginas', 'Hits'],
    [
      { name: 'elección', values: daily(d, report.period.days), colour: HITS },
      { name: 'línea base', values: daily(d.baseline, report.baseline.days), colour: '#888' },
    ],
    { labelEvery: 1 },
  );
  return `${chart}<table><caption>Elección frente a la línea base (promedios diarios; línea base del ${dmy(report.baseline.from)} al ${dmy(report.baseline.to)})</caption>
<thead><tr><th></th><th>Elección</th><th>Línea base</th><th>Razón</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function difusorSection(d: DifusorReport, report: MemoriaReport): string {
  const head = `<section class="difusor" id="d-${escapeHtml(d.id)}"><h2>${escapeHtml(d.name)} <small>(${escapeHtml(d.id)})</small></h2>`;
  if (d.result !== 'ok') return `${head}<p class="failed">${escapeHtml(RESULT[d.result])}: ${escapeHtml(d.error ?? '')}</p></section>`;
  const totals = `<dl class="totals"><div><dt>Visitas</dt><dd>${fmt(d.visits)}</dd></div><div><dt>Visitantes distintos</dt><dd>${fmt(d.visitors)}</dd></div>
<div><dt>Páginas</dt><dd>${fmt(d.pages)}</dd></div><div><dt>Hits</dt><dd>${fmt(d.hits)}</dd></div><div><dt>Bytes</dt><dd>${escapeHtml(formatBytes(d.bytes))}</dd></div></dl>`;
  const byDay = barChart(
    'Hits y páginas por día',
    d.days.map((x) => dmy(x.date).slice(0, 5)),
    [
      { name: 'hits', values: d.days.map((x) => x.hits), colour: HITS },
      { name: 'páginas', values: d.days.map((x) => x.pages), colour: PAGES },
    ],
    { labelEvery: 1 },
  );
  const byHour = barChart(
    'Hits y páginas por hora del día',
    d.hours.map((x) => String(x.hour).padStart(2, '0')),
    [
      { name: 'hits', values: d.hours.map((x) => x.hits), colour: HITS },
      { name: 'páginas', values: d.hours.map((x) => x.pages), colour: PAGES },
    ],
    { labelEvery: 2 },
  );
  const lag =
    d.lags.length === 0
      ? '<p>Sin publicaciones registradas en la bitácora durante el periodo.</p>'
      : barChart(
          'Retraso de publicación por corte (segundos después del primer difusor)',
          d.lags.map((l) => l.cut.slice(9, 13)),
          [{ name: 'retraso', values: d.lags.map((l) => l.lateSeconds), colour: '#8a1c7c' }],
          { limit: 60 },
        );
  const days = d.days
    .map((x) => `<tr><td>${dmy(x.date)}</td><td>${fmt(x.visits)}</td><td>${fmt(x.visitors)}</td><td>${fmt(x.pages)}</td><td>${fmt(x.hits)}</td><td>${escapeHtml(formatBytes(x.bytes))}</td></tr>`)
    .join('');
  return `${head}${totals}${byDay}${byHour}
<table><caption>Por día</caption><thead><tr><th>Fecha</th><th>Visitas</th><th>Visitantes</th><th>Páginas</th><th>Hits</th><th>Bytes</th></tr></thead><tbody>${days}</tbody></table>
${baselineTable(d, report)}<h3>Retraso por corte</h3>${lag}${apart(d)}</section>`;
}

const KIND: Record<Incident['kind'], string> = {
  'publish-failed': 'Publicación fallida',
  cutoff: 'Interrupción',
  reinstate: 'Restablecimiento',
  'probe-failed': 'Sondeo fallido',
  lag: 'Retraso mayor a un minuto',
};

/** Which journals the account comes from, when more than this host's (the alternate site). */
function journalsNote(report: MemoriaReport): string {
  if (!report.journals || report.journals.length < 2) return '';
  const each = report.journals.map((j) => `${escapeHtml(j.host)} (${j.entries} entradas${j.own ? ', este sitio' : ''})`).join(', ');
  // A copy without its head: the chain cannot show that its last lines were removed, and the memoria must say so.
  const unseen = report.journals
    .filter((j) => j.head === 'none')
    .map(
      (j) =>
        ` La bitácora de ${escapeHtml(j.host)} (${escapeHtml(j.file)}) se verificó sin su cabeza (journal.head): sus últimas líneas` +
        `${j.seenBefore ? ` posteriores a la entrada ${j.seenBefore}, que este sitio ya había verificado,` : ''} pudieron haberse quitado sin que se note.`,
    )
    .join('');
  return `<p class="meta">Bitácoras verificadas y unidas en orden de tiempo: ${each}.${unseen}</p>\n`;
}

function timeline(report: MemoriaReport): string {
  if (report.incidents.length === 0) return '<p>No hubo incidentes registrados en la bitácora durante el periodo.</p>';
  const start = Date.parse(`${report.period.from}T00:00:00Z`);
  const span = report.period.days * 86_400_000;
  const width = 720;
  const left = 10;
  const plot = width - 2 * left;
  const x = (local: string): number => left + ((Date.parse(`${local.slice(0, 19).replace(' ', 'T')}Z`) - start) / span) * plot;
  const ticks = Array.from({ length: report.period.days + 1 }, (_, i) => {
    const tx = left + (i / report.period.days) * plot;
    const label = i < report.period.days ? new Date(start + i * 86_400_000).toISOString().slice(5, 10).split('-').reverse().join('/') : '';
    return `<line x1="${tx.toFixed(1)}" x2="${tx.toFixed(1)}" y1="30" y2="40" class="axis"/><text x="${(tx + 3).toFixed(1)}" y="54">${label}</text>`;
  }).join('');
  const marks = report.incidents
    .map(
      (i) =>
        `<circle cx="${x(i.local).toFixed(1)}" cy="35" r="5" class="inc ${i.kind}"><title>${escapeHtml(`${i.local} ${KIND[i.kind]} ${i.difusor ?? ''}: ${i.description}`)}</title></circle>`,
    )
    .join('');
  // The alternate site: each incident names the publication host whose journal recorded it.
  const hosts = report.incidents.some((i) => i.host);
  const rows = report.incidents
    .map(
      (i) =>
        `<tr><td>${escapeHtml(i.local)}</td>${hosts ? `<td>${escapeHtml(i.host ?? '')}</td>` : ''}<td>${escapeHtml(i.difusor ?? '')}</td><td>${escapeHtml(KIND[i.kind])}</td><td>${escapeHtml(i.cut ?? '')}</td><td>${escapeHtml(i.description)}</td></tr>`,
    )
    .join('');
  return `<figure><figcaption>Incidentes en el periodo</figcaption><svg viewBox="0 0 ${width} 60" role="img" aria-label="Línea de tiempo de incidentes" xmlns="http://www.w3.org/2000/svg"><line x1="${left}" x2="${width - left}" y1="35" y2="35" class="axis"/>${ticks}${marks}</svg></figure>
<table><thead><tr><th>Fecha y hora</th>${hosts ? '<th>Sitio</th>' : ''}<th>Difusor</th><th>Tipo</th><th>Corte</th><th>Detalle</th></tr></thead><tbody>${rows}</tbody></table>`;
}

const CSS = `
*{box-sizing:border-box}body{font-family:"DejaVu Sans",Arial,sans-serif;margin:0 auto;max-width:60rem;padding:1rem;color:#1a1a1a;line-height:1.4}
h1{font-size:1.6rem;margin:.2rem 0}h2{font-size:1.3rem;border-bottom:2px solid #1f5fa8;padding-bottom:.2rem;margin-top:2rem}h3{font-size:1.05rem}
small{color:#555;font-weight:normal}table{border-collapse:collapse;width:100%;margin:.8rem 0;font-size:.9rem}
caption{text-align:left;font-weight:bold;padding:.3rem 0}th,td{border:1px solid #ccc;padding:.25rem .4rem;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left}.apart th{text-align:left;width:40%}.scroll{overflow-x:auto}
figure{margin:1rem 0}figcaption{font-weight:bold;margin-bottom:.3rem}svg{width:100%;height:auto;font-size:11px;fill:#333}
.axis{stroke:#333}.grid{stroke:#ddd;stroke-dasharray:3 3}.limit{stroke:#c00;stroke-dasharray:6 3}.limit-label{fill:#c00}
.key{font-weight:normal;font-size:.85rem;margin-left:.6rem}.key i{display:inline-block;width:.8rem;height:.8rem;margin-right:.25rem;vertical-align:middle}
.inc{fill:#c00}.inc.lag{fill:#8a1c7c}.inc.probe-failed{fill:#e07b00}.inc.reinstate{fill:#2a8a2a}
.totals{display:flex;flex-wrap:wrap;gap:.6rem;margin:0}.totals div{border:1px solid #ccc;border-radius:4px;padding:.4rem .7rem;min-width:8rem}
.totals dt{font-size:.8rem;color:#555}.totals dd{margin:0;font-size:1.3rem;font-weight:bold}.failed,.no-logs{color:#a00}
.meta{color:#444;font-size:.9rem}
@media print{body{max-width:none;padding:0;font-size:10pt}a{color:inherit;text-decoration:none}
section.difusor{break-before:page}figure,table{break-inside:avoid}.scroll{overflow:visible}}
@page{size:A4;margin:15mm}
`;

export function renderReportHtml(report: MemoriaReport, opts: { title?: string; generatedLocal: string }): string {
  const title = opts.title ?? 'Memoria técnica de los difusores oficiales del PREP';
  const base = report.baseline ? `; línea base del ${dmy(report.baseline.from)} al ${dmy(report.baseline.to)}` : '';
  const summary = report.difusores.map(totalsRow).join('');
  const page = `<!DOCTYPE html>
<html lang="es"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><style>${CSS}</style></head>
<body>
<header><h1>${escapeHtml(title)}</h1>
<p class="meta">Periodo: del ${dmy(report.period.from)} al ${dmy(report.period.to)} (${report.period.days} días), hora de ${escapeHtml(report.timezone)}${base}. Generado el ${escapeHtml(opts.generatedLocal)}.</p>
<p class="meta">Visitas, páginas y hits se cuentan como AWStats 7.8 con su configuración predeterminada: solo respuestas 200 y 304, sin robots, sin /favicon.ico ni /robots.txt; una visita termina tras 3,600 s sin páginas o a medianoche.</p></header>
<h2>Resumen por difusor</h2>
<table><thead><tr><th>Difusor</th><th>Visitas</th><th>Visitantes</th><th>Páginas</th><th>Hits</th><th>Bytes</th><th>Visitas frente a línea base</th><th>Estado</th></tr></thead>
<tbody>${summary}</tbody></table>
<h2>Incidentes</h2>
${journalsNote(report)}${timeline(report)}
${report.difusores.map((d) => difusorSection(d, report)).join('\n')}
</body></html>
`;
  // Wide tables scroll sideways inside their box on a phone, never the page.
  return page.replace(/<table/g, '<div class="scroll"><table').replace(/<\/table>/g, '</table></div>');
}

/** One table per difusor for spreadsheets: the totals, each day, each hour of the day, and the baseline. */
export function renderDifusorCsv(d: DifusorReport): string {
  const rows: string[] = ['tipo,clave,visitas,visitantes,paginas,hits,bytes'];
  const row = (kind: string, key: string, f: Partial<Figures>): void => {
    rows.push([kind, key, f.visits ?? '', f.visitors ?? '', f.pages ?? '', f.hits ?? '', f.bytes ?? ''].join(','));
  };
  row('total', '', d);
  for (const day of d.days) row('dia', day.date, day);
  for (const hour of d.hours) row('hora', String(hour.hour).padStart(2, '0'), hour);
  if (d.baseline) {
    row('linea_base_total', '', d.baseline);
    for (const day of d.baseline.days) row('linea_base_dia', day.date, day);
  }
  return rows.join('\r\n') + '\r\n';
}
