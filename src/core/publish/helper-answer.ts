/**
 * What a difusor's helper answers is written by a third party: a line the client does not recognise is refused
 * by an error naming the difusor, the verb and the line, and the line is shown escaped, never as raw bytes that a
 * terminal would act on (an OSC 52 clipboard write, a cursor move, a screen clear).
 */

import { shownLine } from '../shared/printable.js';

export { printable, shownLine } from '../shared/printable.js';

/** Which answer is being read: the helper's verb (with its sub-verb: "lease take") and, when known, the difusor. */
export interface AnswerSource {
  verb: string;
  difusor?: string;
}

/** An epoch time as the helper writes one: digits, at most 12 (the helper's own bound), so always a valid Date. */
export function isHelperTime(word: string | undefined): word is string {
  return word !== undefined && /^\d{1,12}$/.test(word);
}

/** "d1: inspect answered a hold line that is not "hold CUT HOST RUN SINCE": "hold x \u001b[8m r 1"". */
export function badAnswer(from: AnswerSource, what: string, line: string): Error {
  return new Error(`${from.difusor !== undefined ? `${from.difusor}: ` : ''}${from.verb} answered ${what}: ${shownLine(line)}`);
}

/** A plain name (a cut id, a notice's stamp, a host) as is; anything else quoted and escaped. */
export function plainOrShown(value: string): string {
  return /^[A-Za-z0-9_.:-]{1,64}$/.test(value) ? value : shownLine(value);
}
