/**
 * Text a third party wrote (a difusor's answers and messages, a path in its inventory) must never reach a terminal as
 * bytes the terminal acts on: an OSC 52 clipboard write, a cursor move, a screen clear, an 8-bit CSI, a bidi override
 * that reorders what the operator reads. Each is shown as its JSON-style escape, so what is shown is what was sent.
 */

const SHOWN_MAX = 200;

// JSON.stringify escapes C0 controls only; C1 controls (U+0080..U+009F, 8-bit CSI and OSC among them), DEL, and the
// invisible and bidirectional formatting marks are escaped too.
const INVISIBLE = /[\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/g;
// eslint-disable-next-line no-control-regex
const C0 = /[\u0000-\u001f]/g;
// eslint-disable-next-line no-control-regex
const C0_BUT_NEWLINE = /[\u0000-\u0009\u000b-\u001f]/g;

function escaped(c: string): string {
  return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/** The invisible marks, DEL and C1 controls escaped; C0 controls left to the caller. */
export function escapeInvisible(text: string): string {
  return text.replace(INVISIBLE, escaped);
}

/** A line from a difusor as an error shows it: quoted and escaped (JSON), at most 200 characters of it. */
export function shownLine(line: string): string {
  const cut = line.length > SHOWN_MAX ? line.slice(0, SHOWN_MAX) : line;
  const more = line.length > SHOWN_MAX ? ` (and ${line.length - SHOWN_MAX} more characters)` : '';
  return `${escapeInvisible(JSON.stringify(cut))}${more}`;
}

/** A difusor's message (the helper's stderr) passed on in an error or the journal: every control escaped, not quoted. */
export function printable(text: string): string {
  return escapeInvisible(text.replace(C0, escaped));
}

/**
 * What a command writes to the operator's terminal, whoever composed it: every control escaped but the newline that
 * separates its lines. Escaping is idempotent (an escape is plain text), so text already escaped at its source is
 * shown unchanged.
 */
export function terminalText(text: string): string {
  return escapeInvisible(text.replace(C0_BUT_NEWLINE, escaped));
}

/**
 * A JSON document for stdout (--json) with the invisible characters JSON.stringify leaves raw written as \u escapes:
 * the same JSON value, nothing a terminal acts on. The document's own colours (added after) are not touched.
 */
export function terminalJson(text: string): string {
  return escapeInvisible(text);
}
