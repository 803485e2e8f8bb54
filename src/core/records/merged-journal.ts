import { createHash } from 'node:crypto';
import { mkdir, readFile, realpath, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  JOURNAL_FILE,
  headFileBeside,
  journalHost,
  readJournal,
  readJournalFile,
  verifyJournal,
  verifyJournalFile,
  type JournalEntry,
} from './journal.js';

/**
 * One account of the night from the journals of both publication hosts (the alternate site). Each host keeps
 * its own hash-chained journal; a copy of the other's is merged with this host's, in time order, each entry with
 * the host it came from. Every journal is verified first, and what that proves of a copy is bounded: the chain is
 * an unkeyed SHA-256, so whoever can write the copy can rewrite it and chain it again. A copy is the file the other
 * host wrote only when its head was checked against one taken from that host, or as far as it extends what this
 * host verified of it before (kept in <state_dir>/journal-copies/): a copy cut or rewritten below that is refused.
 * A copy speaks for one host, never for this one.
 */

/** A journal entry with the host it came from, always named. */
export type HostedEntry = JournalEntry & { host: string };

/** One host's journal as read: its entries, and what names them when they do not name themselves. */
export interface JournalSource {
  /** The host an entry is attributed to when neither it nor its run's start entry names one. */
  label: string;
  entries: JournalEntry[];
}

/**
 * The entries of all the journals in time order (by `at`; ties by host, then seq). An entry without `host`
 * (written before entries named it) takes the host of its run's start entry (detail.host), else its journal's
 * label. An entry found in two journals (the same run, seq and chain link: a copy given twice) is kept once.
 */
export function mergeJournals(sources: JournalSource[]): HostedEntry[] {
  const seen = new Set<string>();
  const merged: Array<{ entry: HostedEntry; ms: number }> = [];
  for (const source of sources) {
    const runHost = startHosts(source.entries);
    for (const entry of source.entries) {
      const key = `${entry.run}\u0000${entry.seq}\u0000${entry.prev}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const host = entry.host ?? runHost.get(entry.run) ?? source.label;
      merged.push({ entry: { ...entry, host }, ms: Date.parse(entry.at) });
    }
  }
  merged.sort((a, b) => timeOrder(a, b) || compareText(a.entry.host, b.entry.host) || a.entry.seq - b.entry.seq);
  return merged.map(({ entry }) => entry);
}

function timeOrder(a: { ms: number; entry: JournalEntry }, b: { ms: number; entry: JournalEntry }): number {
  if (Number.isNaN(a.ms) || Number.isNaN(b.ms)) return compareText(a.entry.at, b.entry.at);
  return a.ms - b.ms;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The host each run's start entry names (publish runs have said so since the alternate site). */
function startHosts(entries: JournalEntry[]): Map<string, string> {
  const hosts = new Map<string, string>();
  for (const entry of entries) {
    const named = entry.detail?.host;
    if (entry.phase === 'start' && typeof named === 'string' && named !== '') hosts.set(entry.run, named);
  }
  return hosts;
}

/** The one host a journal's entries name (by `host`, or a start entry's detail.host); `fallback` when none or several. */
export function journalLabel(entries: JournalEntry[], fallback: string): string {
  const named = new Set<string>([...startHosts(entries).values()]);
  for (const entry of entries) if (entry.host) named.add(entry.host);
  return named.size === 1 ? ([...named][0] as string) : fallback;
}

/** The cuts some difusor switched to, by the entries' account: what `status` counts as published. */
export function cutsSwitchedTo(entries: JournalEntry[]): string[] {
  const cuts = new Set<string>();
  for (const e of entries) {
    if (e.phase === 'switch' && e.result === 'ok' && e.cut && e.detail?.switched !== false) cuts.add(e.cut);
  }
  return [...cuts];
}

/** One journal of the merge, as the report and status say where their entries came from. */
export interface MergedSource {
  file: string;
  host: string;
  entries: number;
  /** This host's own journal (in its state directory). */
  own: boolean;
  /**
   * 'checked' when a head file was checked with the journal; 'none' for a copy without one beside it, whose last
   * lines could have been removed unseen (below `seenBefore`, what this host verified of it before, they could not).
   */
  head: 'checked' | 'none';
  /** The head file checked with it. */
  headFile?: string;
  /** The seq up to which this host had verified the copy before: this read was found to extend it. */
  seenBefore?: number;
}

export interface MergedJournal {
  entries: HostedEntry[];
  journals: MergedSource[];
}

/** What `journal verify`, `report` and `status` say of a copy verified without its head. */
export const NO_HEAD_CAVEAT = 'no head file beside it (FILE.head or journal.head): a removal of its last lines cannot be detected';

/** The caveat for one journal of the merge, or undefined when its head was checked. */
export function headCaveat(source: Pick<MergedSource, 'head' | 'seenBefore'>): string | undefined {
  if (source.head === 'checked') return undefined;
  return source.seenBefore ? `${NO_HEAD_CAVEAT} after seq ${source.seenBefore}, which this host verified before` : NO_HEAD_CAVEAT;
}

/** A journal given to merge cannot be used: missing (exit 2) or altered (exit 6). Names the file and, when altered, the line. */
export class MergedJournalError extends Error {
  constructor(
    readonly file: string,
    readonly exitCode: 2 | 6,
    message: string,
    readonly line?: number,
    /** What is wrong, without the file and line (for a command that lays them out itself). */
    readonly problem?: string,
  ) {
    super(message);
  }
}

/** Options of readMergedJournal; every one has a default, so callers of the two-argument form are unchanged. */
export interface MergedJournalOptions {
  /** This host's name, which no copy may speak for (default: DIFUSION_HOST, else the hostname). */
  thisHost?: string;
}

/**
 * This host's journal (in `stateDir`) and the other journal files, each verified (a copy with its head when one
 * is beside it, against what this host verified of it before, and as one other host's), then merged. Throws
 * MergedJournalError naming the file (and line) that cannot be used. What was verified of each copy is kept in
 * `stateDir` for the next read to extend.
 */
export async function readMergedJournal(stateDir: string, otherFiles: string[], options: MergedJournalOptions = {}): Promise<MergedJournal> {
  const ownFile = join(stateDir, JOURNAL_FILE);
  const ownReal = await realpath(ownFile).catch(() => ownFile);
  const ownCheck = await verifyJournal(stateDir);
  if (!ownCheck.ok) throw altered(ownFile, ownCheck.line, ownCheck.problem, "this host's journal");
  const ownEntries = await readJournal(stateDir);
  const me = options.thisHost ?? journalHost();
  const journals: MergedSource[] = [];
  const sources: JournalSource[] = [];
  const ownLabel = journalLabel(ownEntries, me);
  const ownHead = await headFileBeside(ownFile);
  sources.push({ label: ownLabel, entries: ownEntries });
  journals.push({ file: ownFile, host: ownLabel, entries: ownEntries.length, own: true, head: ownHead || ownEntries.length === 0 ? 'checked' : 'none' });
  const thisHostNames = thisHostsOf(me, ownEntries);

  const given = new Map<string, string>();
  const copies: VerifiedCopy[] = [];
  for (const file of otherFiles) {
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile()) {
      throw new MergedJournalError(file, 2, `${file}: no such journal file (--journal names a copy of another host's journal.jsonl)`);
    }
    const real = await realpath(file);
    if (real === ownReal) {
      throw new MergedJournalError(file, 2, `${file} is this host's own journal, which is merged anyway: --journal names another host's journal`);
    }
    const twice = given.get(real);
    if (twice !== undefined) throw new MergedJournalError(file, 2, `${file} is given twice to --journal (also as ${twice})`);
    given.set(real, file);
    copies.push(await verifyCopy(stateDir, file, thisHostNames));
  }
  for (const copy of copies) {
    sources.push({ label: copy.label, entries: copy.entries });
    journals.push(copy.source);
  }
  // Only once every copy passed: a refused read leaves what was seen as it was.
  for (const copy of copies) await copy.remember();
  return { entries: mergeJournals(sources), journals };
}

/** The names that are this host's: its own name, and every host its own journal's entries name. */
export function thisHostsOf(me: string, ownEntries: JournalEntry[]): Set<string> {
  return new Set([me, ...hostsNamed(ownEntries).keys()]);
}

/** A copy verified: its entries, the host they belong to, how it was checked; `remember` keeps what was verified. */
export interface VerifiedCopy {
  file: string;
  label: string;
  entries: JournalEntry[];
  source: MergedSource;
  remember(): Promise<void>;
}

/**
 * One copy of another host's journal, verified: its chain, its head when one is beside it, that it extends what
 * this host verified of it before (<stateDir>/journal-copies/), and that it is one host's, not this host's
 * (`thisHosts`). Throws MergedJournalError (exit 6) naming the file and line; does not check that the file exists.
 */
export async function verifyCopy(stateDir: string, file: string, thisHosts: ReadonlySet<string>): Promise<VerifiedCopy> {
  const headFile = await headFileBeside(file);
  const check = await verifyJournalFile(file, headFile);
  if (!check.ok) throw altered(file, check.line, check.problem, 'journal');
  // A live copy (rsync) may have grown since it was verified: only what was verified is read and remembered.
  const lines = wholeLines(await readFile(file)).slice(0, check.entries);
  const entries = (await readJournalFile(file)).slice(0, check.entries);
  const host = copyHost(file, entries, thisHosts);
  const label = host ?? file;
  const key = host ?? (await realpath(file));
  const seenFile = seenRecordFile(stateDir, key);
  const seen = await readSeen(seenFile);
  if (seen) {
    const line = lines[seen.seq - 1];
    if (line === undefined) {
      throw belowSeen(file, lines.length + 1, seen.seq, seenFile, `the copy ends at seq ${lines.length} but this host verified it up to seq ${seen.seq} (${seen.at}): lines it had seen were removed`);
    }
    if (sha256(line) !== seen.hash) {
      throw belowSeen(file, seen.seq, seen.seq, seenFile, `line ${seen.seq} (seq ${seen.seq}) is not the line this host verified there (${seen.at}): the copy was rewritten below what this host had seen`);
    }
  }
  const source: MergedSource = {
    file,
    host: label,
    entries: entries.length,
    own: false,
    head: headFile ? 'checked' : 'none',
    ...(headFile ? { headFile } : {}),
    ...(seen ? { seenBefore: seen.seq } : {}),
  };
  const last = lines.at(-1);
  const remember = async (): Promise<void> => {
    if (last === undefined || (seen && seen.seq === lines.length)) return;
    await writeSeen(seenFile, { copy: key, file, seq: lines.length, hash: sha256(last), at: new Date().toISOString() });
  };
  return { file, label, entries, source, remember };
}

/**
 * The one host a copy's entries name (by `host`, or a start entry's detail.host); undefined when none does (a
 * journal written before entries named their host). A copy naming this host, or two hosts, is refused: a copy
 * speaks for the host that wrote it, never for this one.
 */
function copyHost(file: string, entries: JournalEntry[], thisHosts: ReadonlySet<string>): string | undefined {
  let host: { name: string; line: number } | undefined;
  entries.forEach((entry, index) => {
    const line = index + 1;
    for (const name of namesOf(entry)) {
      if (thisHosts.has(name)) {
        throw refusedCopy(file, line, `line ${line} (seq ${entry.seq}) names host ${name}, which is this host: a copy of another host's journal cannot speak for this one`);
      }
      if (host === undefined) host = { name, line };
      else if (name !== host.name) {
        throw refusedCopy(file, line, `line ${line} (seq ${entry.seq}) names host ${name} where line ${host.line} names ${host.name}: a copy is one host's journal`);
      }
    }
  });
  return host?.name;
}

/** The hosts an entry names: its `host`, and a start entry's detail.host. */
function namesOf(entry: JournalEntry): string[] {
  const names: string[] = [];
  if (entry.host) names.push(entry.host);
  const started = entry.detail?.host;
  if (entry.phase === 'start' && typeof started === 'string' && started !== '' && started !== entry.host) names.push(started);
  return names;
}

/** Every host the entries name, with the first line (1-based) that names it. */
function hostsNamed(entries: JournalEntry[]): Map<string, number> {
  const named = new Map<string, number>();
  entries.forEach((entry, index) => {
    for (const name of namesOf(entry)) if (!named.has(name)) named.set(name, index + 1);
  });
  return named;
}

/** The last line of a copy this host verified: its seq and the SHA-256 of its bytes. */
interface SeenCopy {
  /** The copy's host, or its real path when its entries name none. */
  copy: string;
  file: string;
  seq: number;
  hash: string;
  at: string;
}

/** Where this host keeps what it verified of a copy: <stateDir>/journal-copies/<12 hex of sha256(host or path)>.json. */
export function seenRecordFile(stateDir: string, key: string): string {
  return join(stateDir, 'journal-copies', `${sha256(key).slice(0, 12)}.json`);
}

async function readSeen(file: string): Promise<SeenCopy | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const seen = JSON.parse(text) as Partial<SeenCopy>;
  if (!Number.isInteger(seen.seq) || (seen.seq as number) < 1 || typeof seen.hash !== 'string' || typeof seen.at !== 'string') {
    throw new MergedJournalError(file, 6, `${file}: not a record of a verified journal copy (seq, hash, at): it was edited; move it aside to verify the copy afresh`);
  }
  return seen as SeenCopy;
}

async function writeSeen(file: string, seen: SeenCopy): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await mkdir(join(file, '..'), { recursive: true });
    await writeFile(tmp, JSON.stringify(seen) + '\n');
    await rename(tmp, file);
  } catch (error) {
    // Without the record the next read of the copy could not be held to what this one verified.
    throw new MergedJournalError(
      seen.file,
      2,
      `cannot keep what was verified of ${seen.file} (seq ${seen.seq}) in ${file}: ${(error as Error).message}; run as the user that owns the state directory`,
    );
  }
}

function wholeLines(content: Buffer): Buffer[] {
  const lines: Buffer[] = [];
  let start = 0;
  for (let newline = content.indexOf(0x0a, start); newline !== -1; newline = content.indexOf(0x0a, start)) {
    lines.push(content.subarray(start, newline));
    start = newline + 1;
  }
  return lines;
}

const sha256 = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex');

function refusedCopy(file: string, line: number, problem: string): MergedJournalError {
  return new MergedJournalError(file, 6, `${file}:${line}: ${problem}. Nothing is built on this copy (run difusion journal verify --journal ${file}).`, line, problem);
}

function belowSeen(file: string, line: number, seq: number, seenFile: string, what: string): MergedJournalError {
  const problem = `${what}. Nothing is built on this copy: compare its head with the other host's journal.head by another channel (phone); only if that host's journal really started over, move ${seenFile} aside (it holds seq ${seq})`;
  return new MergedJournalError(file, 6, `${file}:${line}: ${problem}.`, line, problem);
}

function altered(file: string, line: number, problem: string, what: string): MergedJournalError {
  return new MergedJournalError(
    file,
    6,
    `${file}:${line}: ${problem}. The ${what} was altered or damaged after it was written; nothing is built on it (run difusion journal verify${what === 'journal' ? ` --journal ${file}` : ''}).`,
    line,
    problem,
  );
}
