import { createHash } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { compareCutIds } from '../shared/cut-id.js';
import { JOURNAL_FILE, type JournalEntry } from '../records/journal.js';
import { writeAtomically } from '../records/state-file.js';

/**
 * When each cut went live, as it counts for each difusor's lag (`wentLiveTimes` in probe.ts says the rule),
 * read from the journal in bounded cost: the fold's result and the journal offset it reached are kept in
 * `<state_dir>/rounds/went-live.json`, so a round reads only the entries appended since the last one, not
 * the whole night's journal. A journal that shrank or whose first line changed is read again from the start.
 */

/**
 * A publish found the cut already live on a difusor: it went live there at that time at the latest. On the
 * alternate site this is all a host knows of a cut the other host switched (unless given its journal), so the lag
 * behind such a cut counts from when this host first found it live: never more than the truth.
 */
export function foundLive(e: JournalEntry): boolean {
  return e.phase === 'check' && e.result === 'skipped' && e.detail?.reason === 'already live';
}

type Times = Record<string, string>;

export interface WentLiveFold {
  /** The cuts' times for a difusor with no rollback of its own (switches, and rollbacks of every difusor). */
  common: Times;
  /** Those of the difusores a rollback named. */
  own: Record<string, Times>;
}

interface Kept {
  offset: number;
  firstLine: string;
  fold: WentLiveFold;
}

const withdrawNewer = (times: Times, cut: string): void => {
  for (const known of Object.keys(times)) if (compareCutIds(known, cut) > 0) delete times[known];
};

/** The fold of more journal entries; the same result as wentLiveTimes over all of them, per difusor. */
export function foldWentLive(previous: WentLiveFold, entries: Iterable<JournalEntry>): WentLiveFold {
  const fold: WentLiveFold = { common: { ...previous.common }, own: Object.fromEntries(Object.entries(previous.own).map(([id, t]) => [id, { ...t }])) };
  for (const e of entries) {
    if (!e.cut || !(e.result === 'ok' || foundLive(e))) continue;
    if (e.phase === 'rollback') {
      if (e.difusor === undefined) {
        withdrawNewer(fold.common, e.cut);
        for (const times of Object.values(fold.own)) withdrawNewer(times, e.cut);
      } else {
        const times = (fold.own[e.difusor] ??= { ...fold.common });
        withdrawNewer(times, e.cut);
      }
      continue;
    }
    if (e.phase !== 'switch' && !foundLive(e)) continue;
    const switchedAt = typeof e.detail?.switchedAt === 'string' ? e.detail.switchedAt : e.at;
    const at = Date.parse(switchedAt);
    if (Number.isNaN(at)) continue;
    for (const times of [fold.common, ...Object.values(fold.own)]) {
      const known = times[e.cut];
      if (known === undefined || at < Date.parse(known)) times[e.cut] = new Date(at).toISOString();
    }
  }
  return fold;
}

export function wentLiveFor(fold: WentLiveFold, difusor: string): Map<string, Date> {
  return new Map(Object.entries(fold.own[difusor] ?? fold.common).map(([cut, at]) => [cut, new Date(at)]));
}

const EMPTY: Kept = { offset: 0, firstLine: '', fold: { common: {}, own: {} } };
const FIRST_LINE_BYTES = 4096;

/** The fold up to the journal's last whole line, reading only what was appended since the kept offset. */
export async function readWentLive(stateDir: string): Promise<WentLiveFold> {
  const journalFile = path.join(stateDir, JOURNAL_FILE);
  const keptFile = path.join(stateDir, 'rounds', 'went-live.json');
  const info = await stat(journalFile).catch(() => undefined);
  if (!info) return EMPTY.fold;
  let kept = await readFile(keptFile, 'utf8')
    .then((text) => JSON.parse(text) as Kept)
    .catch(() => EMPTY);
  const handle = await open(journalFile, 'r');
  try {
    const head = Buffer.alloc(Math.min(FIRST_LINE_BYTES, info.size));
    await handle.read(head, 0, head.length, 0);
    const firstLine = createHash('sha256').update(head).digest('hex');
    const replaced = kept.offset > info.size || (kept.offset >= FIRST_LINE_BYTES && kept.firstLine !== firstLine);
    // Under FIRST_LINE_BYTES the head still grows and cannot tell a replaced journal: so small, it is read again.
    if (replaced || kept.offset < FIRST_LINE_BYTES) kept = EMPTY;
    if (kept.offset === info.size) return kept.fold;
    const fresh = Buffer.alloc(info.size - kept.offset);
    await handle.read(fresh, 0, fresh.length, kept.offset);
    const whole = fresh.lastIndexOf(0x0a) + 1;
    if (whole === 0) return kept.fold;
    const entries: JournalEntry[] = [];
    for (const line of fresh.subarray(0, whole).toString('utf8').split('\n')) {
      if (!line) continue;
      try {
        entries.push(JSON.parse(line) as JournalEntry);
      } catch {
        // A damaged line is `journal verify`'s to report; the lag is read from the others.
      }
    }
    const next: Kept = { offset: kept.offset + whole, firstLine, fold: foldWentLive(kept.fold, entries) };
    await writeAtomically(keptFile, JSON.stringify(next)).catch(() => undefined);
    return next.fold;
  } finally {
    await handle.close();
  }
}
