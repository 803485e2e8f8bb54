/**
 * What a difusor's helper answers is written by a third party: a line the client does not recognise is refused
 * by an error naming the difusor, the verb and the line, and the line is shown escaped, never as raw bytes that a
 * terminal would act on (an OSC 52 clipboard write, a cursor move, a screen clear).
 */

/** Which answer is being read: the helper's verb (with its sub-verb: "lease take") and, when known, the difusor. */
export interface AnswerSource {
  verb: string;
  difusor?: string;
}

/** An epoch time as the helper writes one: digits, at most 12 (the helper's own bound), so always a valid Date. */
export function isHelperTime(word: string | undefined): word is string {
  return word !== undefined && /^\d{1,12}$/.test(word);
}

const SHOWN_MAX = 200;

// JSON.stringify escapes C0 controls only; C1 controls (U+0080..U+009F, 8-bit CSI and OSC among them), DEL, and the
// invisible and bidirectional formatting marks are escaped too, so what is shown is what was sent.
const INVISIBLE = /[\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/g;

function escapeInvisible(text: string): string {
  return text.replace(INVISIBLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A line from a difusor as an error shows it: quoted and escaped (JSON), at most 200 characters of it. */
export function shownLine(line: string): string {
  const cut = line.length > SHOWN_MAX ? line.slice(0, SHOWN_MAX) : line;
  const more = line.length > SHOWN_MAX ? ` (and ${line.length - SHOWN_MAX} more characters)` : '';
  return `${escapeInvisible(JSON.stringify(cut))}${more}`;
}

/** A difusor's message (the helper's stderr) passed on in an error: its controls escaped, not quoted. */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return escapeInvisible(text.replace(/[\u0000-\u001f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}

/** "d1: inspect answered a hold line that is not "hold CUT HOST RUN SINCE": "hold x \u001b[8m r 1"". */
export function badAnswer(from: AnswerSource, what: string, line: string): Error {
  return new Error(`${from.difusor !== undefined ? `${from.difusor}: ` : ''}${from.verb} answered ${what}: ${shownLine(line)}`);
}

/** A plain name (a cut id, a notice's stamp, a host) as is; anything else quoted and escaped. */
export function plainOrShown(value: string): string {
  return /^[A-Za-z0-9_.:-]{1,64}$/.test(value) ? value : shownLine(value);
}
