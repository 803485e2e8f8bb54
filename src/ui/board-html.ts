import { buildBoard, type Board, type BoardDifusor, type BoardState, type BoardSummary } from '../core/probe/board.js';
import type { BoardFiles } from '../core/probe/board-files.js';
import { buildRoster, logoType } from '../core/enforcement/roster.js';
import { escapeHtml, safeJson, spanishDate } from '../core/enforcement/html.js';
import type { Registry } from '../core/registry/types.js';
import { parseCutId } from '../core/shared/cut-id.js';
import { instantToWall } from '../core/registry/window.js';

/**
 * The public board as one self-contained page (index.html): Spanish, CSS inline, logos as data: URIs, no
 * script and no outside request; one column that fits 390 px; refreshes itself. Every value from the
 * registry or the rounds is escaped; colour is never the only signal (each state is also a word and a sign,
 * each strip has a spoken summary).
 */

/** Cells of the strip drawn per difusor; board.json keeps every round of the window. */
export const STRIP_ROUNDS = 60;
export const REFRESH_SECONDS = 60;

export const BOARD_FILES = { page: 'index.html', data: 'board.json', csv: 'rounds.csv', log: 'rounds.jsonl', roster: 'roster.json' } as const;

const COLORS: Record<BoardState, string> = {
  current: '#1b6e3a',
  lagging: '#855300',
  stale: '#b03a00',
  altered: '#a1122b',
  unreachable: '#3d3d3d',
  suspended: '#6d2233',
  'notice-missing': '#6a1b9a',
  unchecked: '#6b6b6b',
};

const SIGNS: Record<BoardState, string> = {
  current: '✔',
  lagging: '◔',
  stale: '✖',
  altered: '⚠',
  unreachable: '✖',
  suspended: '⏸',
  'notice-missing': '⚠',
  unchecked: '?',
};

export interface BoardPageExtras {
  /** id → data: URI of its logo. */
  logos: Map<string, string>;
  officialUrl?: string;
  /** Where this round's open data lies, relative to the page (e.g. "data/12"); the page's own directory when absent. */
  dataDir?: string;
}

function when(iso: string | null, tz: string): string {
  if (!iso) return 'sin dato';
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? 'sin dato' : spanishDate(instantToWall(at, tz));
}

function cutLabel(cut: string | null): string {
  if (!cut) return 'ninguno';
  const parsed = parseCutId(cut);
  return parsed ? `${spanishDate(`${parsed.wall}:00`)} (${cut})` : cut;
}

function seconds(value: number | null): string {
  if (value === null) return '—';
  if (value < 120) return `${value} s`;
  if (value < 7200) return `${Math.round(value / 60)} min`;
  return `${Math.round(value / 360) / 10} h`;
}

function initials(name: string): string {
  return (
    name
      .split(/\s+/)
      .filter((w) => /^\p{Lu}/u.test(w))
      .slice(0, 2)
      .map((w) => w[0])
      .join('') || name.slice(0, 1).toUpperCase()
  );
}

function badge(state: BoardState, label: string): string {
  return `<span class="estado" style="background:${COLORS[state]}"><span aria-hidden="true">${SIGNS[state]}</span> ${escapeHtml(label)}</span>`;
}

function strip(board: Board, d: BoardDifusor): string {
  const start = Math.max(0, d.history.length - STRIP_ROUNDS);
  const shown = d.history.slice(start);
  if (shown.length === 0) return '<p class="nota">Aún no hay rondas de revisión.</p>';
  const counts = new Map<BoardState, number>();
  for (const s of shown) counts.set(s, (counts.get(s) ?? 0) + 1);
  const label = board.states
    .filter((s) => counts.has(s.code))
    .map((s) => `${counts.get(s.code)} ${s.label.toLowerCase()}`)
    .join(', ');
  const cells = shown
    .map((state, i) => {
      const round = board.rounds[start + i];
      const doubt = round?.doubt ? ' duda' : '';
      const title = `${when(round?.at ?? null, board.timezone)}: ${board.states.find((s) => s.code === state)?.label ?? state}${round?.doubt ? ' (ronda en duda)' : ''}`;
      return `<span class="c${doubt}" style="background:${COLORS[state]}" title="${escapeHtml(title)}"></span>`;
    })
    .join('');
  return `<div class="tira" role="img" aria-label="${escapeHtml(`Últimas ${shown.length} rondas, de la más antigua a la más reciente: ${label}`)}">${cells}</div>`;
}

function failures(d: BoardDifusor): string {
  const entries = Object.entries(d.failures).filter(([, n]) => (n ?? 0) > 0);
  if (entries.length === 0) return 'ninguna';
  const names: Record<string, string> = {
    lag: 'retraso',
    differs: 'archivos distintos',
    down: 'sin respuesta',
    certificate: 'certificado',
    'notice-missing': 'sin aviso',
    'unknown-cut': 'contenido no publicado',
    redirect: 'redirección',
  };
  return entries.map(([kind, n]) => `${escapeHtml(names[kind] ?? kind)}: ${n}`).join(', ');
}

function difusorItem(board: Board, d: BoardDifusor, extras: BoardPageExtras): string {
  const logo = extras.logos.get(d.id);
  const logoMarkup = logo
    ? `<img class="logo" alt="Logotipo de ${escapeHtml(d.name)}" src="${escapeHtml(logo)}">`
    : `<span class="sin-logo" aria-hidden="true">${escapeHtml(initials(d.name))}</span>`;
  const link = d.url
    ? `<a href="${escapeHtml(d.url)}" rel="noopener">${escapeHtml(d.url.replace(/^https?:\/\//, '').replace(/\/$/, ''))}</a>`
    : '<span class="marca">Suspendido</span> <span class="nota">Enlace deshabilitado por el instituto electoral.</span>';
  const wording = d.wording.map((w) => `<li>${escapeHtml(w)}</li>`).join('');
  return `<li class="difusor${d.url ? '' : ' suspendido'}" id="d-${escapeHtml(d.id)}">
  <div class="cabeza">${logoMarkup}<div class="datos"><h3 class="nombre">${escapeHtml(d.name)}</h3>${link}</div></div>
  <p>${badge(d.state, d.label)} <span class="nota">desde ${escapeHtml(when(d.since, board.timezone))}</span></p>
  ${wording ? `<ul class="motivos">${wording}</ul>` : ''}
  <dl>
    <dt>Corte que muestra</dt><dd>${escapeHtml(cutLabel(d.cut))}</dd>
    <dt>Retraso actual</dt><dd>${seconds(d.lagSeconds)}</dd>
    <dt>Rondas al día</dt><dd>${d.uptime === null ? '—' : `${(d.uptime * 100).toFixed(1)} %`} <span class="nota">(de ${d.checkedRounds})</span></dd>
    <dt>Retraso p50 / p95 / máx.</dt><dd>${seconds(d.lag.p50)} / ${seconds(d.lag.p95)} / ${seconds(d.lag.max)}</dd>
    <dt>Fallas</dt><dd>${failures(d)}</dd>
  </dl>
  ${strip(board, d)}
</li>`;
}

function rosterCount(board: Board): string {
  const active = board.difusores.filter((d) => d.registryStatus === 'active').length;
  const suspended = board.difusores.length - active;
  return `${active} ${active === 1 ? 'difusor activo' : 'difusores activos'}${suspended > 0 ? `, ${suspended} ${suspended === 1 ? 'suspendido' : 'suspendidos'}` : ''}.`;
}

// One column at 390 px (grid with min(100%, 20rem)), colours never the only signal, printable.
const BOARD_CSS = `  html { -webkit-text-size-adjust: 100%; }
  *, *::before, *::after { box-sizing: border-box; }
  body { margin: 0; background: #f3f2ef; color: #1f1f1f; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
  main { max-width: 64rem; margin: 0 auto; padding: 1.25rem .75rem 3rem; }
  h1 { margin: 0 0 .5rem; font-size: 1.5rem; line-height: 1.25; }
  h2 { font-size: 1.2rem; margin: 1.75rem 0 .5rem; }
  h3 { font-size: 1.05rem; margin: 0 0 .2rem; }
  p { margin: .4rem 0; }
  a { color: #1d4f91; overflow-wrap: anywhere; }
  .nota { color: #4a4a4a; font-size: .9rem; }
  .revision { background: #fff; border-radius: 6px; padding: .75rem 1rem; box-shadow: 0 1px 3px rgba(0,0,0,.12); }
  ul.lista { list-style: none; margin: 0; padding: 0; display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 20rem), 1fr)); gap: 1rem; }
  li.difusor { background: #fff; border-radius: 6px; padding: .9rem; box-shadow: 0 1px 3px rgba(0,0,0,.12); min-width: 0; }
  li.suspendido { border-left: 5px solid #6d2233; }
  .cabeza { display: flex; gap: .75rem; align-items: center; min-width: 0; }
  .logo, .sin-logo { flex: 0 0 3.5rem; width: 3.5rem; height: 3.5rem; }
  .logo { object-fit: contain; }
  .sin-logo { border-radius: 50%; background: #e6e3de; color: #444; display: flex; align-items: center; justify-content: center; font-weight: 700; }
  .datos { min-width: 0; }
  .nombre { overflow-wrap: anywhere; }
  .estado { display: inline-block; white-space: nowrap; padding: .1rem .55rem; border-radius: 3px; color: #fff; font-weight: 700; font-size: .9rem; }
  .marca { display: inline-block; padding: .05rem .45rem; border-radius: 3px; background: #6d2233; color: #fff; font-size: .78rem; font-weight: 700; text-transform: uppercase; }
  .motivos { margin: .3rem 0; padding-left: 1.2rem; }
  dl { display: grid; grid-template-columns: minmax(0, 11rem) minmax(0, 1fr); gap: .15rem .75rem; margin: .5rem 0; font-size: .95rem; }
  dt { color: #4a4a4a; }
  dd { margin: 0; overflow-wrap: anywhere; }
  .tira { display: flex; gap: 1px; height: 1.4rem; margin-top: .5rem; max-width: 100%; }
  .tira .c { flex: 1 1 0; min-width: 0; border-radius: 1px; }
  .tira .c.duda { background-image: repeating-linear-gradient(45deg, rgba(255,255,255,.75) 0 2px, transparent 2px 4px) !important; }
  table { border-collapse: collapse; width: 100%; background: #fff; }
  th, td { text-align: left; vertical-align: top; padding: .4rem .5rem; border-bottom: 1px solid #ddd; overflow-wrap: anywhere; }
  footer { margin-top: 1.5rem; font-size: .85rem; color: #4a4a4a; }
  @media print { body { background: #fff; } li.difusor, .revision { box-shadow: none; border: 1px solid #999; break-inside: avoid; } .tira .c { print-color-adjust: exact; -webkit-print-color-adjust: exact; } }
`;

export function renderBoardHtml(board: Board, extras: BoardPageExtras): string {
  const tz = board.timezone;
  const counts = new Map<BoardState, number>();
  for (const d of board.difusores) counts.set(d.state, (counts.get(d.state) ?? 0) + 1);
  const summary = board.states
    .filter((s) => counts.has(s.code))
    .map((s) => `${counts.get(s.code)} ${s.label.toLowerCase()}`)
    .join(', ');
  const max = board.thresholds.maxLagSeconds;
  const thresholds: Partial<Record<BoardState, string>> = {
    current: 'retraso 0 s',
    lagging: `retraso de 1 a ${max} s`,
    stale: `retraso mayor de ${max} s`,
  };
  const legend = board.states
    .map((s) => `<tr><th scope="row">${badge(s.code, s.label)}</th><td>${escapeHtml(s.meaning)}${thresholds[s.code] ? ` <span class="nota">(${escapeHtml(thresholds[s.code] as string)})</span>` : ''}</td></tr>`)
    .join('\n');
  const c = board.checker;
  const data = (name: string): string => escapeHtml(extras.dataDir ? `${extras.dataDir}/${name}` : name);
  const official = extras.officialUrl
    ? ` Los resultados también se consultan en el sitio del instituto: <a href="${escapeHtml(extras.officialUrl)}">${escapeHtml(extras.officialUrl)}</a>.`
    : '';
  const doubtShare = Math.round(board.thresholds.doubtShare * 100);
  return `<!doctype html>
<html lang="es">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="${REFRESH_SECONDS}">
<title>Difusores oficiales del PREP: estado en línea</title>
<style>
${BOARD_CSS}</style>
</head>
<body>
<main>
  <h1>Difusores oficiales del PREP: estado en línea</h1>
  <p>Sitios autorizados por el instituto electoral para difundir el Programa de Resultados Electorales Preliminares. El instituto revisa cada sitio como lo ve el público: qué corte muestra y si sus archivos coinciden, uno por uno, con los publicados.${official}</p>
  <section class="revision" aria-labelledby="revision">
    <h2 id="revision">La revisión</h2>
    <p>Última ronda: <strong>${escapeHtml(when(c.lastRoundAt, tz))}</strong>. Intervalo entre rondas: ${c.intervalSeconds === null ? '—' : seconds(c.intervalSeconds)}. Duración de la última: ${c.lastDurationSeconds === null ? '—' : `${c.lastDurationSeconds} s`}.</p>
    <p>Rondas desde ${escapeHtml(when(c.firstRoundAt, tz))}: ${c.rounds}, de ellas ${c.doubtRounds} en duda. Una ronda en la que más del ${doubtShare} % de los difusores revisados (al menos ${board.thresholds.doubtMinimum}) no responde a la vez se marca <em>en duda</em> (rayada en las tiras): es un problema de la revisión, no de los difusores, y no cuenta en sus cifras.</p>
    <p>Ahora: ${escapeHtml(summary || 'sin difusores')}.</p>
  </section>
  <h2>Difusores</h2>
  <p>${escapeHtml(rosterCount(board))}</p>
  <ul class="lista">
${board.difusores.map((d) => difusorItem(board, d, extras)).join('\n')}
  </ul>
  <h2 id="estados">Qué significa cada estado</h2>
  <table>
    <thead><tr><th scope="col">Estado</th><th scope="col">Significado</th></tr></thead>
    <tbody>
${legend}
    </tbody>
  </table>
  <p class="nota">«Rondas al día»: parte de las rondas (sin contar las que están en duda) en que el difusor mostraba el corte más reciente. El retraso se mide desde que el instituto puso en línea un corte más nuevo. Cada tira muestra las últimas ${STRIP_ROUNDS} rondas, de la más antigua (izquierda) a la más reciente.</p>
  <h2>Datos abiertos</h2>
  <p>De esta misma ronda:</p>
  <ul>
    <li><a href="${data(BOARD_FILES.data)}">${BOARD_FILES.data}</a>: este tablero para programas.</li>
    <li><a href="${data(BOARD_FILES.csv)}">${BOARD_FILES.csv}</a>: cada ronda y difusor.</li>
    <li><a href="${data(BOARD_FILES.log)}">${BOARD_FILES.log}</a>: la bitácora de revisión; cada línea lleva la huella SHA-256 de la anterior, de modo que cualquiera puede comprobar que no se editó.</li>
    <li><a href="${BOARD_FILES.roster}">${BOARD_FILES.roster}</a>: la lista de difusores.</li>
  </ul>
  <footer>Tablero generado el ${escapeHtml(when(board.generatedAt, tz))}; se actualiza cada ${REFRESH_SECONDS} s.</footer>
</main>
</body>
</html>
`;
}

/** Everything DIR gets: the page, board.json, the roster's list and logos (the page embeds the logos). */
export async function publicBoardFiles(input: {
  registry: Registry;
  summary: BoardSummary | undefined;
  at: Date;
  maxLagSeconds?: number;
  rosterTemplate: string;
  readLogo(file: string): Promise<Buffer>;
}): Promise<{ board: Board; files: BoardFiles }> {
  const { registry } = input;
  const roster = await buildRoster({ registry, template: input.rosterTemplate, at: input.at, readLogo: input.readLogo });
  const logos = new Map<string, string>();
  for (const entry of roster.entries) {
    const bytes = entry.logo ? roster.logos.get(entry.logo) : undefined;
    if (entry.logo && bytes) logos.set(entry.id, `data:${logoType(entry.logo).mime};base64,${bytes.toString('base64')}`);
  }
  const board = buildBoard({
    summary: input.summary,
    difusores: registry.difusores,
    generatedAt: input.at.toISOString(),
    timezone: registry.publication.timezone,
    maxLagSeconds: input.maxLagSeconds,
  });
  const officialUrl = registry.publication.official_url ?? undefined;
  return {
    board,
    files: {
      page: { name: BOARD_FILES.page, render: (dataDir) => renderBoardHtml(board, { logos, officialUrl, dataDir }) },
      data: { name: BOARD_FILES.data, text: safeJson(board) },
      roster: { name: BOARD_FILES.roster, text: roster.json, logos: roster.logos },
      log: BOARD_FILES.log,
      csv: BOARD_FILES.csv,
    },
  };
}
