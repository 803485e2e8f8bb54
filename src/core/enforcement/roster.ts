import path from 'node:path';
import type { Registry } from '../registry/types.js';
import { escapeHtml, fillTemplate, html, safeJson, spanishDate } from './html.js';
import { isoWithOffset } from './notice.js';
import { instantToWall, utcOffsetLabel } from '../registry/window.js';

/**
 * The public roster of official difusores (the list the institute publishes with their logos):
 *   index.html   Spanish, self-contained (CSS inline, each logo a data: URI), every value escaped;
 *                an active difusor links to its public_url, a suspended one stays listed, marked
 *                "Suspendido", without a link (the convocatoria: the institute disables its link);
 *   roster.json  the same list for machines; logos/<id>.<ext> copies of the registry's logos.
 * Pure: the logos come in as bytes, the files go out as text.
 */

const LOGO_TYPES: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.svg': 'image/svg+xml',
};
export const MAX_LOGO_BYTES = 1024 * 1024;

export class RosterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RosterError';
  }
}

export interface RosterEntry {
  id: string;
  name: string;
  status: 'active' | 'suspended';
  /** The link the public follows; null while suspended. */
  url: string | null;
  /** logos/<id>.<ext> beside roster.json, when the registry names a logo. */
  logo: string | null;
  suspended_at?: string;
}

export interface Roster {
  json: string;
  html: string;
  /** Files to write beside the page: logos/<id>.<ext> → bytes. */
  logos: Map<string, Buffer>;
  entries: RosterEntry[];
}

export function logoType(file: string): { ext: string; mime: string } {
  const ext = path.extname(file).toLowerCase();
  const mime = LOGO_TYPES[ext];
  if (!mime) throw new RosterError(`logo ${file}: use a PNG, JPEG, GIF, WebP or SVG file (not "${ext || 'no extension'}")`);
  return { ext: ext === '.jpeg' ? '.jpg' : ext, mime };
}

function initials(name: string): string {
  return name
    .split(/\s+/)
    .filter((w) => /^\p{Lu}/u.test(w))
    .slice(0, 2)
    .map((w) => w[0])
    .join('') || name.slice(0, 1).toUpperCase();
}

export async function buildRoster(input: {
  registry: Registry;
  template: string;
  at: Date;
  readLogo(file: string): Promise<Buffer>;
}): Promise<Roster> {
  const { registry, at } = input;
  const tz = registry.publication.timezone;
  const entries: RosterEntry[] = [];
  const logos = new Map<string, Buffer>();
  const items: string[] = [];
  for (const d of registry.difusores) {
    let logoMarkup = `<span class="sin-logo" aria-hidden="true">${escapeHtml(initials(d.name))}</span>`;
    let logo: string | null = null;
    if (d.logo) {
      const { ext, mime } = logoType(d.logo);
      const bytes = await input.readLogo(d.logo).catch((error: Error) => {
        throw new RosterError(`logo of ${d.id} (${d.logo}) cannot be read: ${error.message}; fix logo: in the registry`);
      });
      if (bytes.length > MAX_LOGO_BYTES) throw new RosterError(`logo of ${d.id} (${d.logo}) is ${bytes.length} bytes; a roster logo must be under 1 MB`);
      logo = `logos/${d.id}${ext}`;
      logos.set(logo, bytes);
      logoMarkup = `<img class="logo" alt="Logotipo de ${escapeHtml(d.name)}" src="data:${mime};base64,${bytes.toString('base64')}">`;
    }
    const suspended = d.status === 'suspended';
    entries.push({
      id: d.id,
      name: d.name,
      status: d.status,
      url: suspended ? null : d.public_url,
      logo,
      ...(suspended && d.suspended_at ? { suspended_at: d.suspended_at } : {}),
    });
    const body = suspended
      ? `<span class="marca">Suspendido</span>\n      <p class="nota">Enlace deshabilitado por el instituto electoral.</p>`
      : `<a href="${escapeHtml(d.public_url)}" rel="noopener">${escapeHtml(d.public_url.replace(/^https?:\/\//, '').replace(/\/$/, ''))}</a>`;
    items.push(
      `    <li${suspended ? ' class="suspendido"' : ''}>\n      ${logoMarkup}\n      <div class="datos">\n      <p class="nombre">${escapeHtml(d.name)}</p>\n      ${body}\n      </div>\n    </li>`,
    );
  }
  const active = entries.filter((e) => e.status === 'active').length;
  const suspendedCount = entries.length - active;
  const official = registry.publication.official_url;
  const page = fillTemplate(input.template, {
    items: html(items.join('\n')),
    official: official
      ? html(`Los resultados también se consultan en el sitio del instituto: <a href="${escapeHtml(official)}">${escapeHtml(official)}</a>.`)
      : '',
    updated: `${spanishDate(instantToWall(at, tz))} (${utcOffsetLabel(at, tz)})`,
    count: `${active} ${active === 1 ? 'difusor activo' : 'difusores activos'}${suspendedCount > 0 ? `, ${suspendedCount} ${suspendedCount === 1 ? 'suspendido' : 'suspendidos'}` : ''}.`,
  });
  const json = safeJson({ generated_at: isoWithOffset(at, tz), timezone: tz, official_url: official ?? null, difusores: entries });
  return { json, html: page, logos, entries };
}
