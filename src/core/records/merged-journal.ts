import { realpath, stat } from 'node:fs/promises';
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
 * the host it came from. Every journal is verified first: the memoria is never built on an altered journal.
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
  /** The head file checked with it; absent when none was beside a copied journal. */
  head?: string;
}

export interface MergedJournal {
  entries: HostedEntry[];
  journals: MergedSource[];
}

/** A journal given to merge cannot be used: missing (exit 2) or altered (exit 6). Names the file and, when altered, the line. */
export class MergedJournalError extends Error {
  constructor(
    readonly file: string,
    readonly exitCode: 2 | 6,
    message: string,
    readonly line?: number,
  ) {
    super(message);
  }
}

/**
 * This host's journal (in `stateDir`) and the other journal files, each verified (a copy with its head when one
 * is beside it), then merged. Throws MergedJournalError naming the file (and line) that cannot be used.
 */
export async function readMergedJournal(stateDir: string, otherFiles: string[]): Promise<MergedJournal> {
  const ownFile = join(stateDir, JOURNAL_FILE);
  const ownReal = await realpath(ownFile).catch(() => ownFile);
  const ownCheck = await verifyJournal(stateDir);
  if (!ownCheck.ok) throw altered(ownFile, ownCheck.line, ownCheck.problem, "this host's journal");
  const ownEntries = await readJournal(stateDir);
  const journals: MergedSource[] = [];
  const sources: JournalSource[] = [];
  const ownLabel = journalLabel(ownEntries, journalHost());
  sources.push({ label: ownLabel, entries: ownEntries });
  journals.push({ file: ownFile, host: ownLabel, entries: ownEntries.length, own: true });

  const given = new Map<string, string>();
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
    const head = await headFileBeside(file);
    const check = await verifyJournalFile(file, head);
    if (!check.ok) throw altered(file, check.line, check.problem, 'journal');
    const entries = await readJournalFile(file);
    const label = journalLabel(entries, file);
    sources.push({ label, entries });
    journals.push({ file, host: label, entries: entries.length, own: false, ...(head ? { head } : {}) });
  }
  return { entries: mergeJournals(sources), journals };
}

function altered(file: string, line: number, problem: string, what: string): MergedJournalError {
  return new MergedJournalError(
    file,
    6,
    `${file}:${line}: ${problem}. The ${what} was altered or damaged after it was written; nothing is built on it (run difusion journal verify${what === 'journal' ? ` --journal ${file}` : ''}).`,
    line,
  );
}
