/** A cut name read as the PREP convention YYYYMMDD_HHMM[_SUFFIX]; the time is the "fecha y hora de corte". */
export interface CutId {
  id: string;
  /** 'YYYY-MM-DD' */
  date: string;
  /** 'HH:MM' */
  time: string;
  /** 'YYYY-MM-DDTHH:MM', a wall time in publication.timezone. */
  wall: string;
}

/** The suffix at most 64 characters, as the helper accepts it: every line that names a cut stays short. */
export const CUT_ID_PATTERN = /^(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(?:_[A-Za-z0-9_-]{1,64})?$/;

export function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

export function parseCutId(name: string): CutId | undefined {
  const match = CUT_ID_PATTERN.exec(name);
  if (!match) return undefined;
  const [, yyyy, mm, dd, hh, min] = match as unknown as [string, string, string, string, string, string];
  const [year, month, day, hour, minute] = [yyyy, mm, dd, hh, min].map(Number) as [number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  if (hour > 23 || minute > 59) return undefined;
  const date = `${yyyy}-${mm}-${dd}`;
  const time = `${hh}:${min}`;
  return { id: name, date, time, wall: `${date}T${time}` };
}

export function isCutId(name: string): boolean {
  return parseCutId(name) !== undefined;
}

function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Orders by cut time, then by name; names that are not cut ids sort first, by name, so "newest" is always a real cut. */
export function compareCutIds(a: string, b: string): number {
  const cutA = parseCutId(a);
  const cutB = parseCutId(b);
  if (cutA && cutB) return byCodeUnits(cutA.wall, cutB.wall) || byCodeUnits(a, b);
  if (cutA) return 1;
  if (cutB) return -1;
  return byCodeUnits(a, b);
}

/** The newest cut among the names; a producer's temporary names (which don't match the pattern) are never picked. */
export function newestCut(names: readonly string[]): string | undefined {
  let newest: string | undefined;
  for (const name of names) {
    if (!isCutId(name)) continue;
    if (newest === undefined || compareCutIds(name, newest) > 0) newest = name;
  }
  return newest;
}
