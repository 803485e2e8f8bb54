import { awstatsQualifies, isPage, isRobot, ownCopy, parseLogLine, pathOf, UNCOUNTED_METHODS, type LogRecord } from './access-log.js';
import { offsetAt } from '../registry/window.js';

/**
 * The memoria técnica's figures for one difusor, counted as AWStats 7.8 counts them (SPEC, "Memoria
 * técnica figures"), over lines fed in time order. Each line is, in this order (AWStats' own):
 * malformed; out of order (older than the newest line seen so far minus 20000, both read as
 * YYYYMMDDhhmmss numbers of the line's own clock: AWStats' $NOTSORTEDRECORDTOLERANCE, which across
 * midnight is a few seconds); outside the period; a PATCH/TRACE/CONNECT (dropped); /favicon.ico; a status other than
 * 200/304 (an error, by code); a robot (isbot, or no user agent); /robots.txt (a robot too); else
 * counted: a hit, its bytes (0 for '-' and 304), and a page unless its extension is an asset or a
 * download. A page more than 3,600 s after the same address's previous page, or on a later day,
 * starts a visit. Memory: one entry per address that asked for a page, nothing per line.
 */

export interface Figures {
  hits: number;
  pages: number;
  bytes: number;
  visits: number;
  visitors: number;
}

export interface DayFigures extends Figures {
  /** 'YYYY-MM-DD' in the publication timezone. */
  date: string;
}

export interface HourFigures {
  /** Hour of the day, 0-23, in the publication timezone. */
  hour: number;
  hits: number;
  pages: number;
  bytes: number;
}

export interface Tallies {
  /** Every line read, in the period or not. */
  lines: number;
  malformed: number;
  /** Well-formed lines whose local time is outside the period. */
  outside: number;
  /**
   * Lines of the period dropped as AWStats drops them ("corrupted" in its summary): older than the newest line
   * read before them minus 20000 as YYYYMMDDhhmmss numbers, e.g. a download stamped 23:59:50 and written by
   * Apache when it ended, after lines of 00:00:02.
   */
  outOfOrder: number;
  robots: { hits: number; bytes: number; robotsTxt: number };
  /** Requests with any status but 200 and 304, by status. */
  errors: Record<string, number>;
  /** PATCH, TRACE and CONNECT requests, by method. */
  methods: Record<string, number>;
  favicon: number;
}

export interface TrafficFigures extends Figures, Tallies {
  days: DayFigures[];
  hours: HourFigures[];
}

/** Dates 'YYYY-MM-DD', both inclusive, in the publication timezone. */
export interface Period {
  from: string;
  to: string;
}

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const OFFSET_SLOT_MS = 900_000;
/** SPEC: "more than 3,600 s" starts a new visit; exactly 3,600 s does not (AWStats compares with >). */
const VISIT_TIMEOUT_MS = 3_600_000;
/** AWStats' $NOTSORTEDRECORDTOLERANCE, in YYYYMMDDhhmmss units: 2 hours within a day, seconds across midnight. */
const NOT_SORTED_TOLERANCE = 20_000;

export function dayNumber(date: string): number {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!match) throw new RangeError(`"${date}" is not a date YYYY-MM-DD`);
  const ms = Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
  if (new Date(ms).toISOString().slice(0, 10) !== date) throw new RangeError(`"${date}" is not a date of the calendar`);
  return ms / DAY_MS;
}

export function dateOfDay(day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10);
}

export function periodDays(period: Period): number {
  return dayNumber(period.to) - dayNumber(period.from) + 1;
}

interface AddressState {
  lastPageMs: number;
  lastPageDay: number;
}

interface Slot {
  hits: number;
  pages: number;
  bytes: number;
  visits: number;
  visitors: number;
}

const emptySlot = (): Slot => ({ hits: 0, pages: 0, bytes: 0, visits: 0, visitors: 0 });

export class TrafficCounter {
  private readonly firstDay: number;
  private readonly lastDay: number;
  private readonly dayFigures: Slot[];
  private readonly hourFigures: Slot[] = Array.from({ length: 24 }, emptySlot);
  private readonly addresses = new Map<string, AddressState>();
  private readonly offsets = new Map<number, number>();
  private lastSlot = NaN;
  private lastOffset = 0;
  /** The newest line seen so far, as AWStats' $LastLine: YYYYMMDDhhmmss of the line's own clock. */
  private newestStamp = 0;
  private readonly tallies: Tallies = {
    lines: 0,
    malformed: 0,
    outside: 0,
    outOfOrder: 0,
    robots: { hits: 0, bytes: 0, robotsTxt: 0 },
    errors: {},
    methods: {},
    favicon: 0,
  };

  constructor(
    readonly period: Period,
    readonly timeZone: string,
  ) {
    this.firstDay = dayNumber(period.from);
    this.lastDay = dayNumber(period.to);
    if (this.lastDay < this.firstDay) throw new RangeError(`the period ends (${period.to}) before it starts (${period.from})`);
    this.dayFigures = Array.from({ length: this.lastDay - this.firstDay + 1 }, emptySlot);
  }

  /** Local wall time as ms since the epoch, as if the zone were UTC. */
  localMs(ms: number): number {
    const slot = Math.floor(ms / OFFSET_SLOT_MS);
    if (slot === this.lastSlot) return ms + this.lastOffset;
    let offset = this.offsets.get(slot);
    if (offset === undefined) {
      offset = offsetAt(slot * OFFSET_SLOT_MS, this.timeZone);
      this.offsets.set(slot, offset);
    }
    this.lastSlot = slot;
    this.lastOffset = offset;
    return ms + offset;
  }

  addLine(line: string): void {
    this.tallies.lines++;
    const record = parseLogLine(line);
    if (record) this.count(record);
    else if (line.trim() !== '') this.tallies.malformed++;
    else this.tallies.lines--;
  }

  /** Counts a record already parsed (its line is counted in `lines` by the caller). */
  addRecord(record: LogRecord): void {
    this.tallies.lines++;
    this.count(record);
  }

  addMalformed(): void {
    this.tallies.lines++;
    this.tallies.malformed++;
  }

  private count(r: LogRecord): void {
    const local = this.localMs(r.ms);
    const day = Math.floor(local / DAY_MS);
    const inPeriod = day >= this.firstDay && day <= this.lastDay;
    if (awstatsQualifies(r.method)) {
      if (r.stamp < this.newestStamp - NOT_SORTED_TOLERANCE) {
        if (inPeriod) this.tallies.outOfOrder++;
        else this.tallies.outside++;
        return;
      }
      if (r.stamp > this.newestStamp) this.newestStamp = r.stamp;
    }
    if (!inPeriod) {
      this.tallies.outside++;
      return;
    }
    const t = this.tallies;
    if (UNCOUNTED_METHODS.has(r.method)) {
      t.methods[r.method] = (t.methods[r.method] ?? 0) + 1;
      return;
    }
    const path = pathOf(r.url);
    if (path === '/favicon.ico') {
      t.favicon++;
      return;
    }
    if (r.status !== 200 && r.status !== 304) {
      t.errors[r.status] = (t.errors[r.status] ?? 0) + 1;
      return;
    }
    const bytes = r.status === 304 ? 0 : r.size;
    const robotsTxt = path === '/robots.txt';
    if (robotsTxt || isRobot(r.agent)) {
      t.robots.hits++;
      t.robots.bytes += bytes;
      if (robotsTxt) t.robots.robotsTxt++;
      return;
    }
    const daySlot = this.dayFigures[day - this.firstDay] as Slot;
    const hourSlot = this.hourFigures[Math.floor(local / HOUR_MS) % 24] as Slot;
    daySlot.hits++;
    daySlot.bytes += bytes;
    hourSlot.hits++;
    hourSlot.bytes += bytes;
    if (!isPage(path)) return;
    daySlot.pages++;
    hourSlot.pages++;
    const seen = this.addresses.get(r.host);
    if (!seen) {
      this.addresses.set(ownCopy(r.host), { lastPageMs: r.ms, lastPageDay: day });
      daySlot.visits++;
      daySlot.visitors++;
      return;
    }
    if (day > seen.lastPageDay) {
      // A visit never spans midnight, and a new day has its own visitors.
      daySlot.visits++;
      daySlot.visitors++;
      seen.lastPageDay = day;
      seen.lastPageMs = r.ms;
    } else if (r.ms - seen.lastPageMs > VISIT_TIMEOUT_MS) {
      daySlot.visits++;
      seen.lastPageMs = r.ms;
    } else if (r.ms > seen.lastPageMs) {
      seen.lastPageMs = r.ms;
    }
  }

  result(): TrafficFigures {
    const days = this.dayFigures.map((slot, i) => ({ date: dateOfDay(this.firstDay + i), ...slot }));
    const sum = (key: keyof Slot): number => this.dayFigures.reduce((total, slot) => total + slot[key], 0);
    return {
      hits: sum('hits'),
      pages: sum('pages'),
      bytes: sum('bytes'),
      visits: sum('visits'),
      visitors: this.addresses.size,
      ...structuredClone(this.tallies),
      days,
      hours: this.hourFigures.map((slot, hour) => ({ hour, hits: slot.hits, pages: slot.pages, bytes: slot.bytes })),
    };
  }
}
