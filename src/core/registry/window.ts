import { daysInMonth } from '../shared/cut-id.js';
import type { Publication, TimeWindow } from './types.js';

/** A local wall time as written in the registry and cut names: 'YYYY-MM-DDTHH:MM[:SS]' ('T' or a space). */
export interface WallTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

const WALL_PATTERN = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?$/;
const DATE_ONLY_PATTERN = /^\d{4}-\d{2}-\d{2}$/;
const ISO_WITH_OFFSET_PATTERN = /^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?)(?:\.(\d{1,9}))?(?:(Z)|([+-])(\d{2}):?(\d{2})?)$/i;
const DAY_MS = 86_400_000;

export function parseWall(text: string): WallTime | undefined {
  const match = WALL_PATTERN.exec(text);
  if (!match) return undefined;
  const [year, month, day, hour, minute, second] = match.slice(1).map((part) => Number(part ?? 0)) as [
    number, number, number, number, number, number,
  ];
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  return { year, month, day, hour, minute, second };
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (!formatter) {
    try {
      formatter = new Intl.DateTimeFormat('en-US', {
        timeZone,
        hourCycle: 'h23',
        year: 'numeric',
        month: '2-digit',
        day: '2-digit',
        hour: '2-digit',
        minute: '2-digit',
        second: '2-digit',
      });
    } catch {
      throw new RangeError(`"${timeZone}" is not an IANA time zone known to this system (e.g. America/Mexico_City)`);
    }
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

export function isValidTimeZone(timeZone: string): boolean {
  try {
    formatterFor(timeZone);
    return true;
  } catch {
    return false;
  }
}

function wallAt(ms: number, timeZone: string): WallTime {
  const fields: Record<string, number> = {};
  for (const part of formatterFor(timeZone).formatToParts(ms)) {
    if (part.type !== 'literal') fields[part.type] = Number(part.value);
  }
  return {
    year: fields.year!,
    month: fields.month!,
    day: fields.day!,
    hour: fields.hour!,
    minute: fields.minute!,
    second: fields.second!,
  };
}

function wallAsUtcMs(wall: WallTime): number {
  return Date.UTC(wall.year, wall.month - 1, wall.day, wall.hour, wall.minute, wall.second);
}

/** The zone's offset from UTC at that instant, in ms (UTC-5 → -18 000 000). */
export function offsetAt(ms: number, timeZone: string): number {
  const wholeSecond = Math.floor(ms / 1000) * 1000;
  return wallAsUtcMs(wallAt(wholeSecond, timeZone)) - wholeSecond;
}

/**
 * The instant a wall clock in the zone shows that time.
 * Where the wall time happens twice (clocks turned back) it is the first, earlier one; where it never happens
 * (clocks turned forward) it is moved forward by the length of the gap. This is Temporal's 'compatible' choice.
 */
export function wallToInstant(wall: string, timeZone: string): Date {
  const fields = parseWall(wall);
  if (!fields) throw new RangeError(`"${wall}" is not a wall time YYYY-MM-DDTHH:MM[:SS]`);
  const asUtc = wallAsUtcMs(fields);
  // An offset change happens at most once within a day either side, so these two are every offset that could apply.
  const offsetBefore = offsetAt(asUtc - DAY_MS, timeZone);
  const offsetAfter = offsetAt(asUtc + DAY_MS, timeZone);
  const matching = [...new Set([offsetBefore, offsetAfter])]
    .map((offset) => asUtc - offset)
    .filter((instant) => instant + offsetAt(instant, timeZone) === asUtc)
    .sort((a, b) => a - b);
  return new Date(matching[0] ?? asUtc - offsetBefore);
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** 'YYYY-MM-DDTHH:MM:SS' on a wall clock in the zone. */
export function instantToWall(instant: Date, timeZone: string): string {
  const w = wallAt(instant.getTime(), timeZone);
  return `${pad(w.year, 4)}-${pad(w.month)}-${pad(w.day)}T${pad(w.hour)}:${pad(w.minute)}:${pad(w.second)}`;
}

/** 'UTC-5', 'UTC+5:30', 'UTC+0': how the CSV preambles and operators write the offset. */
export function utcOffsetLabel(instant: Date, timeZone: string): string {
  const offsetMinutes = Math.round(offsetAt(instant.getTime(), timeZone) / 60_000);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const hours = Math.floor(Math.abs(offsetMinutes) / 60);
  const minutes = Math.abs(offsetMinutes) % 60;
  return `UTC${sign}${hours}${minutes ? `:${pad(minutes)}` : ''}`;
}

/** '2022-06-05 19:59:59 (UTC-5)' */
export function formatLocal(instant: Date, timeZone: string): string {
  return `${instantToWall(instant, timeZone).replace('T', ' ')} (${utcOffsetLabel(instant, timeZone)})`;
}

/**
 * Reads an instant given by an operator or a test: ISO 8601 with an offset or Z is taken as is; a wall time
 * ('2022-06-05T20:00', '2022-06-05 20:00:30') or a date ('2022-06-05', its midnight) is read in the zone.
 */
export function parseTimeArgument(text: string, timeZone: string): Date | undefined {
  const trimmed = text.trim();
  if (DATE_ONLY_PATTERN.test(trimmed)) return parseTimeArgument(`${trimmed}T00:00`, timeZone);
  const withOffset = ISO_WITH_OFFSET_PATTERN.exec(trimmed);
  if (!withOffset) return parseWall(trimmed) ? wallToInstant(trimmed, timeZone) : undefined;
  const [, wallText, fraction, zulu, sign, offsetHours, offsetMinutes] = withOffset;
  const wall = parseWall(wallText!);
  const hours = Number(offsetHours ?? 0);
  const minutes = Number(offsetMinutes ?? 0);
  if (!wall || hours > 23 || minutes > 59) return undefined;
  const offsetMs = zulu ? 0 : (sign === '-' ? -1 : 1) * (hours * 60 + minutes) * 60_000;
  const milliseconds = Number((fraction ?? '').padEnd(3, '0').slice(0, 3));
  return new Date(wallAsUtcMs(wall) + milliseconds - offsetMs);
}

export type PublicationMode = 'window' | 'simulacro' | 'late-delivery' | 'dry-run';

export type PublicationDecision =
  | {
      allowed: true;
      mode: PublicationMode;
      /** For a dry run that a real run would refuse: why, so the rehearsal says so. */
      wouldRefuse?: string;
    }
  | { allowed: false; reason: string };

export interface PublicationCheck {
  publication: Publication;
  now: Date;
  /** The cut's time, 'YYYY-MM-DDTHH:MM', a wall time in publication.timezone (CutId.wall). */
  cutWall: string;
  simulacro: boolean;
  dryRun: boolean;
}

/**
 * The law's publication window as a decision. Boundaries are inclusive and compared at the whole second:
 * 19:59:59.999 is before a 20:00 opening, 20:00:00 is inside it, and so is 20:00:00.999 at a 20:00 close.
 */
export function checkPublication(check: PublicationCheck): PublicationDecision {
  const decision = decideWithoutDryRun(check);
  if (!check.dryRun) return decision;
  return decision.allowed ? { allowed: true, mode: 'dry-run' } : { allowed: true, mode: 'dry-run', wouldRefuse: decision.reason };
}

function decideWithoutDryRun({ publication, now, cutWall, simulacro }: PublicationCheck): PublicationDecision {
  const timeZone = publication.timezone;
  const instantOf = (wall: string): number => wallToInstant(wall, timeZone).getTime();
  const local = (ms: number): string => formatLocal(new Date(ms), timeZone);
  const contains = (window: TimeWindow, ms: number): boolean => instantOf(window.start) <= ms && ms <= instantOf(window.end);
  const describe = (window: TimeWindow): string => `${local(instantOf(window.start))} to ${local(instantOf(window.end))}`;

  const nowMs = Math.floor(now.getTime() / 1000) * 1000;
  const cutMs = instantOf(cutWall);
  const itIs = `it is ${local(nowMs)} in ${timeZone}`;
  const cutStamped = `the cut stamped ${local(cutMs)}`;
  const windowText = `the publication window runs from ${describe(publication.window)}`;
  const simulacrosText = publication.simulacros.length
    ? `the declared simulacros are ${publication.simulacros.map(describe).join('; ')}`
    : 'no simulacro is declared in the registry';

  if (simulacro) {
    const current = publication.simulacros.find((window) => contains(window, nowMs));
    if (!current) {
      return {
        allowed: false,
        reason:
          `--simulacro is allowed only during a declared simulacro: ${itIs}, and ${simulacrosText}. ` +
          `${capitalise(windowText)}; outside it use --dry-run to rehearse.`,
      };
    }
    if (!contains(current, cutMs)) {
      return {
        allowed: false,
        reason:
          `${capitalise(cutStamped)} is outside the simulacro in progress (${describe(current)}); ${itIs}. ` +
          'During a simulacro only cuts stamped within it may be published; use --dry-run to rehearse with this cut.',
      };
    }
    return { allowed: true, mode: 'simulacro' };
  }

  if (nowMs < instantOf(publication.window.start)) {
    return {
      allowed: false,
      reason:
        `The publication window has not opened: ${itIs}, and ${windowText}. ` +
        `Before it opens only --dry-run, or --simulacro during a declared simulacro, is allowed (${simulacrosText}).`,
    };
  }
  if (!contains(publication.window, cutMs)) {
    return {
      allowed: false,
      reason:
        `${capitalise(cutStamped)} is outside the publication window: ${windowText}, and ${itIs}. ` +
        'Only cuts stamped within the window may be published, also after it closes; use --dry-run to rehearse with this cut.',
    };
  }
  if (nowMs > instantOf(publication.window.end)) return { allowed: true, mode: 'late-delivery' };
  return { allowed: true, mode: 'window' };
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
