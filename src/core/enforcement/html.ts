/**
 * The pages difusion writes for the public (the notice, the roster) are templates in templates/ with
 * {{name}} placeholders. Every value is HTML-escaped on the way in; only markup built here from
 * escaped parts goes in raw.
 */

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c] as string);
}

/** Markup already escaped by its builder, to be placed as it is. */
export interface Html {
  html: string;
}

export function html(markup: string): Html {
  return { html: markup };
}

/** Fills {{name}} placeholders; a placeholder without a value is a bug in the caller, not a blank on a public page. */
export function fillTemplate(template: string, values: Record<string, string | Html>): string {
  return template.replace(/\{\{([a-z_]+)\}\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`template placeholder {{${name}}} has no value`);
    return typeof value === 'string' ? escapeHtml(value) : value.html;
  });
}

/** JSON that stays inert wherever it is pasted: '<', '>' and '&' as \u escapes, same data once parsed. */
export function safeJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}\n`;
}

const MONTHS = ['enero', 'febrero', 'marzo', 'abril', 'mayo', 'junio', 'julio', 'agosto', 'septiembre', 'octubre', 'noviembre', 'diciembre'];

/** '5 de junio de 2022, 21:10 h' from a wall time 'YYYY-MM-DDTHH:MM:SS'. */
export function spanishDate(wall: string): string {
  const [date, time] = wall.split('T') as [string, string];
  const [year, month, day] = date.split('-').map(Number) as [number, number, number];
  return `${day} de ${MONTHS[month - 1]} de ${year}, ${time.slice(0, 5)} h`;
}
