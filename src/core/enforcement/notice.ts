import type { Difusor } from '../registry/types.js';
import { manifestText, sha256Hex } from '../shared/manifest.js';
import { instantToWall, utcOffsetLabel } from '../registry/window.js';
import { fillTemplate, html, escapeHtml, safeJson, spanishDate } from './html.js';

/**
 * The notice (aviso) a suspended difusor shows, as a release of its own:
 *   notices/<YYYYMMDD_HHMMSS>/index.html       the page: Spanish, self-contained (CSS inline, no image
 *                                              or script from anywhere), every value HTML-escaped;
 *   notices/<YYYYMMDD_HHMMSS>/aviso.json       the same facts for machines (the probe, the report);
 *   notices/<YYYYMMDD_HHMMSS>/MANIFEST.sha256  sha256sum lines for both, checked on the difusor.
 * The stamp and the times are the moment of the cutoff in the publication timezone. The vhost
 * answers every path with index.html (503, no-store) while current/aviso.json exists; /aviso.json and
 * /MANIFEST.sha256 stay reachable so a probe can tell "notice in place" from "down".
 * Pure: the template comes in, the files go out.
 */

export const NOTICE_FILES = ['index.html', 'aviso.json', 'MANIFEST.sha256'] as const;
export type NoticeFile = (typeof NOTICE_FILES)[number];

/** aviso.json, field for field (see CONTRACTS: consumed by the probe and the report). */
export interface Aviso {
  aviso: 'suspension';
  difusor: string;
  name: string;
  reason: string;
  /** The instant with the publication timezone's offset: 2022-06-05T21:10:00-05:00. */
  at: string;
  /** 05/06/2022 21:10 (UTC-5): how the PREP's own pages write a time. */
  local: string;
  timezone: string;
  official_url: string | null;
}

/** templates/aviso.html: the notice's page, filled in by renderNotice. */
export const NOTICE_TEMPLATE = new URL('../../../templates/aviso.html', import.meta.url);

export interface Notice {
  stamp: string;
  aviso: Aviso;
  files: Record<NoticeFile, string>;
}

export const STAMP_PATTERN = /^\d{8}_\d{6}$/;

/** YYYYMMDD_HHMMSS of an instant on the publication's wall clock. */
export function noticeStamp(at: Date, timeZone: string): string {
  return instantToWall(at, timeZone).replace(/[-:]/g, '').replace('T', '_');
}

/** '2022-06-05T21:10:00-05:00' */
export function isoWithOffset(at: Date, timeZone: string): string {
  const label = utcOffsetLabel(at, timeZone).slice(3) || '+0';
  const [hours, minutes = '00'] = label.slice(1).split(':');
  return `${instantToWall(at, timeZone)}${label[0]}${hours!.padStart(2, '0')}:${minutes}`;
}

/** '05/06/2022 21:10 (UTC-5)' */
export function localStamp(at: Date, timeZone: string): string {
  const wall = instantToWall(at, timeZone);
  return `${wall.slice(8, 10)}/${wall.slice(5, 7)}/${wall.slice(0, 4)} ${wall.slice(11, 16)} (${utcOffsetLabel(at, timeZone)})`;
}

export function renderNotice(input: {
  difusor: Pick<Difusor, 'id' | 'name'>;
  reason: string;
  at: Date;
  timezone: string;
  officialUrl?: string;
  template: string;
  /** A stamp the difusor already serves: the new notice takes the next free second instead. */
  avoidStamps?: string[];
}): Notice {
  const { difusor, reason, at, timezone } = input;
  let stamp = noticeStamp(at, timezone);
  for (let s = 1; input.avoidStamps?.includes(stamp); s++) stamp = noticeStamp(new Date(at.getTime() + s * 1000), timezone);
  const aviso: Aviso = {
    aviso: 'suspension',
    difusor: difusor.id,
    name: difusor.name,
    reason,
    at: isoWithOffset(at, timezone),
    local: localStamp(at, timezone),
    timezone,
    official_url: input.officialUrl ?? null,
  };
  const official = input.officialUrl
    ? html(
        `<p>Los resultados preliminares oficiales se consultan en el sitio del instituto:</p>\n  <p><a class="oficial" href="${escapeHtml(input.officialUrl)}">${escapeHtml(input.officialUrl)}</a></p>`,
      )
    : html('<p>Los resultados preliminares oficiales se consultan en el sitio del instituto electoral.</p>');
  const page = fillTemplate(input.template, {
    name: difusor.name,
    reason,
    at: aviso.at,
    when: `${spanishDate(instantToWall(at, timezone))} (${utcOffsetLabel(at, timezone)}, ${timezone})`,
    official,
  });
  const json = safeJson(aviso);
  const manifest = manifestText([
    { path: 'aviso.json', sha256: sha256Hex(json) },
    { path: 'index.html', sha256: sha256Hex(page) },
  ]);
  return { stamp, aviso, files: { 'index.html': page, 'aviso.json': json, 'MANIFEST.sha256': manifest } };
}
