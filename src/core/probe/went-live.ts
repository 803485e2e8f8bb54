import { createHash } from 'node:crypto';
import { open, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { compareCutIds } from '../shared/cut-id.js';
import { JOURNAL_FILE, journalHost, readJournal, type JournalEntry } from '../records/journal.js';
import { MergedJournalError, headCaveat, thisHostsOf, verifyCopy, type VerifiedCopy } from '../records/merged-journal.js';
import { writeAtomically } from '../records/state-file.js';

/**
 * When each cut went live, as it counts for each difusor's lag (`wentLiveTimes` in probe.ts says the rule),
 * read from the journal in bounded cost: the fold's result and the journal offset it reached are kept in
 * `<state_dir>/rounds/went-live.json`, so a round reads only the entries appended since the last one, not
 * the whole night's journal. A journal that shrank or whose first bytes changed is read again from the start.
 *
 * On the alternate site the other host's journal, copied here (`probe --journal FILE`), is folded with this
 * host's, in the time order `mergeJournals` gives (by `at`, then host, then seq), so a cut the other host switched
 * counts from its switch. The fold and every journal's offset are then kept together in
 * `rounds/went-live-<12 hex of the copies' paths>.json`: the fold mixes the journals, so a copy replaced by another
 * (shrunk, or other first bytes) makes every journal be read again from the start, once.
 */

/**
 * A publish found the cut already live on a difusor: it went live there at that time at the latest. On the
 * alternate site this is all a host knows of a cut the other host switched (unless given its journal), so the lag
 * behind such a cut counts from when this host first found it live: never more than the truth.
 */
export function foundLive(e: Folded): boolean {
  return e.phase === 'check' && e.result === 'skipped' && e.detail?.reason === 'already live';
}

/** What the fold reads of a journal entry. */
type Folded = Pick<JournalEntry, 'at' | 'phase' | 'result' | 'cut' | 'difusor' | 'detail'>;

type Times = Record<string, string>;

export interface WentLiveFold {
  /** The cuts' times for a difusor with no rollback of its own (switches, and rollbacks of every difusor). */
  common: Times;
  /** Those of the difusores a rollback named. */
  own: Record<string, Times>;
}

const withdrawNewer = (times: Times, cut: string): void => {
  for (const known of Object.keys(times)) if (compareCutIds(known, cut) > 0) delete times[known];
};

/** The fold of more journal entries; the same result as wentLiveTimes over all of them, per difusor. */
export function foldWentLive(previous: WentLiveFold, entries: Iterable<Folded>): WentLiveFold {
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


/** A journal to fold: its file, and the host its entries are ordered by when they do not name their own. */
export interface FoldedJournal {
  file: string;
  label: string;
  /** An instant (ms) no entry appended to it from now on goes before: this host's own journal is written at its clock. */
  writtenBefore?: number;
}

/** An entry waiting to be folded until every journal has gone past its time: what the fold reads, and its order. */
type Pending = Folded & { host: string; seq: number };

interface KeptJournal {
  file: string;
  /** The end of the last whole line read. */
  offset: number;
  /** The SHA-256 of the journal's first `headBytes` bytes, which a copy replaced by another no longer has. */
  headBytes: number;
  head: string;
  /** The newest `at` read from this journal (ms), null before any. */
  lastAt: number | null;
}

interface Kept {
  version: 2;
  journals: KeptJournal[];
  /** The fold of every entry older than the newest entry of each journal: no entry still to come goes before them. */
  settled: WentLiveFold;
  /** The entries after that, in merge order: a copy arriving late may still bring one that goes before them. */
  pending: Pending[];
}

const HEAD_BYTES = 4096;
/**
 * The pending entries are only switches, rollbacks and found-live checks, but while a copy stops growing (the other
 * host died, or its copy is brought only at the end of the night) all of this host's wait: past this many the oldest
 * are folded anyway, and an entry the copy brings later that goes before them is folded after them (which only
 * matters for a rollback and a switch of the other host within the copy's delay).
 */
const PENDING_CAP = 2048;
/**
 * This host's runs date their entries when they append them, on the machine's clock: an entry appended after a
 * round goes after that round's time, less the moment an append takes (this margin). So entries the copy brought
 * need not wait for this host's journal to grow, only for this margin: a standby whose journal stays quiet keeps
 * nothing waiting. A run on a DIFUSION_NOW clock dates its entries otherwise, and is folded as it comes.
 */
const THIS_HOST_APPEND_MARGIN_MS = 60_000;
const sha256 = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex');

/**
 * The fold of this host's journal and of the copies given (`probe --journal`), reading only what each gained since
 * the last round. `now` is the machine's clock (this host's journal is complete up to it, less a margin).
 */
export async function readWentLive(stateDir: string, copies: string[] = [], now: number = Date.now()): Promise<WentLiveFold> {
  const others = copies.map((file) => path.resolve(file));
  const keptName = others.length === 0 ? 'went-live.json' : `went-live-${sha256(others.join('\n')).slice(0, 12)}.json`;
  return readWentLiveOf(path.join(stateDir, 'rounds', keptName), [
    { file: path.join(stateDir, JOURNAL_FILE), label: journalHost(), writtenBefore: now - THIS_HOST_APPEND_MARGIN_MS },
    ...others.map((file) => ({ file, label: file })),
  ]);
}

/**
 * The fold of several journals merged in time order, as `mergeJournals` orders them, up to each one's last whole
 * line; the fold and the offsets are kept in `keptFile`. Exact while each journal is written in time order: an
 * entry is folded for good only once every journal has an entry newer than it, or is known to be written past
 * it (`writtenBefore`); the rest wait, PENDING_CAP says how many at most.
 */
export async function readWentLiveOf(keptFile: string, journals: FoldedJournal[], pendingCap = PENDING_CAP): Promise<WentLiveFold> {
  const previous = await readFile(keptFile, 'utf8')
    .then((text) => JSON.parse(text) as Partial<Kept>)
    .catch(() => undefined);
  let kept = sameJournals(previous, journals) ? previous : emptyKept(journals);
  let read = await readEach(kept, journals);
  if (read === 'replaced') {
    kept = emptyKept(journals);
    read = await readEach(kept, journals);
    // Read from the start, no journal can have been replaced since: a race with a second replacement reads again next round.
    if (read === 'replaced') return foldWentLive(kept.settled, kept.pending);
  }
  // This host's journal alone is folded in its own order, as wentLiveTimes reads it; several, in the merge's.
  const alone = journals.length === 1;
  const waiting = alone ? read.entries : [...kept.pending, ...read.entries].sort(inMergeOrder);
  const before = alone ? Infinity : Math.min(...read.journals.map((j, i) => Math.max(j.lastAt ?? -Infinity, journals[i]?.writtenBefore ?? -Infinity)));
  const settle: Pending[] = [];
  const pending: Pending[] = [];
  for (const e of waiting) {
    const at = Date.parse(e.at);
    (Number.isNaN(at) || at < before ? settle : pending).push(e);
  }
  settle.push(...pending.splice(0, Math.max(0, pending.length - pendingCap)));
  const next: Kept = { version: 2, journals: read.journals, settled: foldWentLive(kept.settled, settle), pending };
  const moved = read.journals.some((j, i) => j.offset !== kept.journals[i]?.offset || j.head !== kept.journals[i]?.head);
  if (moved || kept !== previous) await writeAtomically(keptFile, JSON.stringify(next)).catch(() => undefined);
  return foldWentLive(next.settled, next.pending);
}

function sameJournals(kept: Partial<Kept> | undefined, journals: FoldedJournal[]): kept is Kept {
  return (
    kept?.version === 2 &&
    Array.isArray(kept.journals) &&
    Array.isArray(kept.pending) &&
    kept.journals.length === journals.length &&
    kept.journals.every((j, i) => j.file === journals[i]?.file)
  );
}

function emptyKept(journals: FoldedJournal[]): Kept {
  return {
    version: 2,
    journals: journals.map((j) => ({ file: j.file, offset: 0, headBytes: 0, head: sha256(''), lastAt: null })),
    settled: { common: {}, own: {} },
    pending: [],
  };
}

async function readEach(kept: Kept, journals: FoldedJournal[]): Promise<'replaced' | { journals: KeptJournal[]; entries: Pending[] }> {
  const out: KeptJournal[] = [];
  const entries: Pending[] = [];
  for (const [i, journal] of journals.entries()) {
    const read = await readAppended(journal, kept.journals[i] as KeptJournal);
    if (read === 'replaced') return read;
    out.push(read.kept);
    entries.push(...read.entries);
  }
  return { journals: out, entries };
}

/** The entries the fold needs among the whole lines appended since `kept.offset`; 'replaced' when the file is another. */
async function readAppended(journal: FoldedJournal, kept: KeptJournal): Promise<'replaced' | { kept: KeptJournal; entries: Pending[] }> {
  const info = await stat(journal.file).catch(() => undefined);
  const size = info?.isFile() ? info.size : 0;
  if (size < kept.offset) return 'replaced';
  if (size === 0) return { kept, entries: [] };
  const handle = await open(journal.file, 'r');
  try {
    if ((await headOf(handle, kept.headBytes)) !== kept.head) return 'replaced';
    const fresh = Buffer.alloc(size - kept.offset);
    const { bytesRead } = await handle.read(fresh, 0, fresh.length, kept.offset);
    const whole = fresh.subarray(0, bytesRead).lastIndexOf(0x0a) + 1;
    let lastAt = kept.lastAt;
    const entries: Pending[] = [];
    for (const line of fresh.subarray(0, whole).toString('utf8').split('\n')) {
      if (!line) continue;
      let e: JournalEntry;
      try {
        e = JSON.parse(line) as JournalEntry;
      } catch {
        // A damaged line is `journal verify`'s to report; the lag is read from the others.
        continue;
      }
      const at = Date.parse(e.at);
      if (!Number.isNaN(at)) lastAt = Math.max(lastAt ?? at, at);
      const folded = foldedOf(e, journal.label);
      if (folded) entries.push(folded);
    }
    const offset = kept.offset + whole;
    const headBytes = Math.min(HEAD_BYTES, offset);
    const head = headBytes === kept.headBytes ? kept.head : await headOf(handle, headBytes);
    return { kept: { file: journal.file, offset, headBytes, head, lastAt }, entries };
  } finally {
    await handle.close();
  }
}

async function headOf(handle: Awaited<ReturnType<typeof open>>, bytes: number): Promise<string> {
  const head = Buffer.alloc(bytes);
  const { bytesRead } = await handle.read(head, 0, bytes, 0);
  return sha256(head.subarray(0, bytesRead));
}

/** What the fold reads of an entry it counts (a switch, a rollback, a cut found live), or undefined. */
function foldedOf(e: JournalEntry, label: string): Pending | undefined {
  if (!e.cut || !(e.result === 'ok' || foundLive(e))) return undefined;
  if (e.phase !== 'switch' && e.phase !== 'rollback' && !foundLive(e)) return undefined;
  const detail: Record<string, unknown> = {};
  if (typeof e.detail?.switchedAt === 'string') detail.switchedAt = e.detail.switchedAt;
  if (foundLive(e)) detail.reason = e.detail?.reason;
  return {
    at: e.at,
    host: typeof e.host === 'string' ? e.host : label,
    seq: e.seq,
    phase: e.phase,
    result: e.result,
    cut: e.cut,
    ...(e.difusor !== undefined ? { difusor: e.difusor } : {}),
    ...(Object.keys(detail).length > 0 ? { detail } : {}),
  };
}

/** mergeJournals' order: by `at`, then host, then seq. */
function inMergeOrder(a: Pending, b: Pending): number {
  const am = Date.parse(a.at);
  const bm = Date.parse(b.at);
  const time = Number.isNaN(am) || Number.isNaN(bm) ? compareText(a.at, b.at) : am - bm;
  return time || compareText(a.host, b.host) || a.seq - b.seq;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A copy given to `probe --journal`, verified: its absolute path, and what its verification could not see. */
export interface VerifiedJournalCopy {
  file: string;
  /** Said when no head was beside the copy: a removal of its last lines could not be detected. */
  caveat?: string;
}

/**
 * The journal copies given to `probe --journal`, each verified once as `report` and `status` verify them
 * (verifyCopy: its chain, its head when one is beside it, one host's and not this one's, extending what this host
 * verified of it before, which is then remembered). Throws MergedJournalError naming a missing copy, this host's
 * own journal or a copy given twice (exit 2), or an altered copy and its line (exit 6).
 */
export async function verifyJournalCopies(stateDir: string, files: string[], thisHost: string = journalHost()): Promise<VerifiedJournalCopy[]> {
  const ownFile = path.join(stateDir, JOURNAL_FILE);
  const ownReal = await realpath(ownFile).catch(() => path.resolve(ownFile));
  const given = new Map<string, string>();
  for (const file of files) {
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile()) throw new MergedJournalError(file, 2, `${file}: no such journal file (--journal names a copy of another host's journal.jsonl)`);
    const real = await realpath(file);
    if (real === ownReal) throw new MergedJournalError(file, 2, `${file} is this host's own journal, which is read anyway: --journal names another host's journal`);
    const twice = given.get(real);
    if (twice !== undefined) throw new MergedJournalError(file, 2, `${file} is given twice to --journal (also as ${twice})`);
    given.set(real, file);
  }
  if (files.length === 0) return [];
  // Once, at the start: which names are this host's is read from its own journal whole.
  const thisHosts = thisHostsOf(thisHost, await readJournal(stateDir));
  const copies: VerifiedCopy[] = [];
  for (const file of files) copies.push(await verifyCopy(stateDir, file, thisHosts));
  // Only once every copy passed, as readMergedJournal does: a refused probe leaves what was seen as it was.
  for (const copy of copies) await copy.remember();
  return copies.map((copy) => {
    const caveat = headCaveat(copy.source);
    return { file: path.resolve(copy.file), ...(caveat ? { caveat } : {}) };
  });
}
