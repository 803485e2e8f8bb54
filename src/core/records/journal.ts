import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, writeFile, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { thisHost } from '../shared/host-name.js';
import { currentUser } from './lock.js';

/** One line of the bitácora. Field order is the order on disk. */
export interface JournalEntry {
  seq: number;
  /** ISO 8601 instant, from the run's clock. */
  at: string;
  run: string;
  /** user@host */
  operator: string;
  /** The publication host that wrote the entry (DIFUSION_HOST, else the hostname); absent in entries written before it was recorded. */
  host?: string;
  command: string;
  difusor?: string;
  cut?: string;
  phase: string;
  result: 'ok' | 'failed' | 'skipped' | 'info';
  bytes?: number;
  seconds?: number;
  error?: string;
  /** 'DIFUSION_NOW=...' when the run's clock was set by the environment. */
  clock?: string;
  detail?: Record<string, unknown>;
  /** sha256 hex of the previous line's bytes (without its newline), or 64 zeros for the first entry. */
  prev: string;
}

/** What a caller says about an event; the journal adds sequence, time, run, operator, host, command, clock and chain. */
export type JournalRecord = Pick<JournalEntry, 'phase' | 'result'> &
  Partial<Pick<JournalEntry, 'difusor' | 'cut' | 'bytes' | 'seconds' | 'error' | 'detail'>>;

export interface JournalContext {
  run: string;
  operator: string;
  /** The publication host that writes the entries; defaults to DIFUSION_HOST, else the hostname (shared/host-name.ts). */
  host?: string;
  command: string;
  /** The run's clock; a clock set by DIFUSION_NOW marks every entry. Defaults to the real time. */
  clock?: { now(): Date; fromEnv: boolean; setting?: string };
}

export interface Journal {
  file: string;
  /** Appends one entry and returns it once it is on disk (fsync). Appends made together keep their call order. */
  append(record: JournalRecord): Promise<JournalEntry>;
}

export const JOURNAL_FILE = 'journal.jsonl';
/** The seq and hash of the newest entry, so removing or editing the last lines is detected too. */
export const JOURNAL_HEAD_FILE = 'journal.head';
export const GENESIS_PREV = '0'.repeat(64);
/** Phase of the entry a run adds after moving a torn last line aside. */
export const JOURNAL_RECOVERED_PHASE = 'journal-recovered';
/** Phase of the entry a run adds when it opens a journal whose chain is broken. */
export const JOURNAL_DAMAGED_PHASE = 'journal-damaged';

const sha256 = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex');

/** Time-sortable and unique enough for one institute: '20220605T201502Z-ab12cd'. */
export function newRunId(at: Date = new Date()): string {
  const stamp = at.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

/**
 * This host's name for its journal entries. A DIFUSION_HOST the leases refuse is still recorded as given: the
 * journal says what the operator set (publish refuses such a name before it journals anything).
 */
export function journalHost(): string {
  try {
    return thisHost();
  } catch {
    return process.env.DIFUSION_HOST ?? 'unnamed-host';
  }
}

/** 'user@host', as the journal's operator field. */
export function currentOperator(): string {
  return `${currentUser()}@${hostname()}`;
}

interface JournalHead {
  seq: number;
  hash: string;
  /** How far the chain was found whole when a run last opened the journal: the next run checks only what follows. */
  checked?: Checkpoint;
}

/** The end of the part of the journal a run has walked: its length in bytes and lines, and its last line. */
interface Checkpoint {
  bytes: number;
  lines: number;
  seq: number;
  hash: string;
  /** The last line's length with its newline, so a run can read from the start of that line. */
  lastBytes: number;
}

/** Splits into lines without their newline; the last element is the unterminated tail ('' when the file ends in a newline). */
function splitLines(content: Buffer): { lines: Buffer[]; tail: Buffer } {
  const lines: Buffer[] = [];
  let start = 0;
  for (let newline = content.indexOf(0x0a, start); newline !== -1; newline = content.indexOf(0x0a, start)) {
    lines.push(content.subarray(start, newline));
    start = newline + 1;
  }
  return { lines, tail: content.subarray(start) };
}

/** The bytes of `file` from `offset` to its end ('' when it does not exist): a run reads the journal's tail, not the night. */
async function readFrom(file: string, offset: number): Promise<Buffer> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return Buffer.alloc(0);
    throw error;
  }
  try {
    const { size } = await handle.stat();
    const start = Math.min(offset, size);
    const bytes = Buffer.alloc(size - start);
    let read = 0;
    while (read < bytes.length) {
      const { bytesRead } = await handle.read(bytes, read, bytes.length - read, start + read);
      if (bytesRead === 0) break;
      read += bytesRead;
    }
    return bytes.subarray(0, read);
  } finally {
    await handle.close();
  }
}

async function readIfExists(file: string): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

const RESULTS = new Set(['ok', 'failed', 'skipped', 'info']);

function parseEntry(line: Buffer): JournalEntry | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const entry = value as Partial<JournalEntry>;
  const wellFormed =
    Number.isInteger(entry.seq) &&
    typeof entry.at === 'string' &&
    typeof entry.run === 'string' &&
    typeof entry.operator === 'string' &&
    typeof entry.command === 'string' &&
    typeof entry.phase === 'string' &&
    typeof entry.result === 'string' &&
    RESULTS.has(entry.result) &&
    typeof entry.prev === 'string' &&
    /^[0-9a-f]{64}$/.test(entry.prev);
  return wellFormed ? (entry as JournalEntry) : undefined;
}

/**
 * Opens the journal for appending. A torn last line (a write cut short by a crash) is moved to a side file and
 * the move is journaled, so the chain continues from the last whole entry and nothing is silently lost.
 * Only runs holding the state lock should append: the chain is computed in this process.
 *
 * A run reads only what was written since the last run opened the journal (journal.head's checkpoint), so
 * opening costs the same at the night's last cut as at its first; `journal verify` still walks the whole chain.
 * Without a usable checkpoint (an old head, a shorter file, a changed last line) the whole journal is read.
 */
export async function openJournal(stateDir: string, ctx: JournalContext): Promise<Journal> {
  await mkdir(stateDir, { recursive: true });
  const journal = new JournalAppender(stateDir, ctx);
  const head = await readHead(join(stateDir, JOURNAL_HEAD_FILE));
  const start = await usableCheckpoint(journal.file, head);
  const { lines: window, tail } = await journal.readTail(start ? start.bytes - start.lastBytes : 0, start ? start.lines - 1 : 0);
  const tornMovedTo = tail.length > 0 ? await journal.moveTornLineAside(tail) : undefined;
  if (tornMovedTo) {
    await journal.append({
      phase: JOURNAL_RECOVERED_PHASE,
      result: 'info',
      detail: { tornBytes: tornMovedTo.bytes, movedTo: tornMovedTo.file },
    });
  }
  // Our appends rewrite journal.head, which would hide entries removed from the end; record any damage in the chain first.
  // From a checkpoint only what follows it is walked; whatever it finds is then named as a whole walk names it.
  const windowWhole =
    start !== undefined &&
    !tornMovedTo &&
    checkLines(window, { line: start.lines, seq: start.seq }, head).ok;
  const damage = windowWhole ? { ok: true as const, entries: journal.lineCount } : await checkChain(journal.file, join(stateDir, JOURNAL_HEAD_FILE));
  if (!damage.ok && !(await damageAlreadyRecorded(stateDir, damage))) {
    await journal.append({
      phase: JOURNAL_DAMAGED_PHASE,
      result: 'info',
      detail: { line: damage.line, ...(damage.seq !== undefined ? { seq: damage.seq } : {}), problem: damage.problem },
    });
  }
  // Whatever was damaged is now on record: the next run walks only from here.
  journal.markChecked();
  return { file: journal.file, append: (record) => journal.append(record) };
}

/**
 * The journal as one run appends to it: where it ends (the next entry's seq and prev), appends written one at a
 * time in call order, each fsynced and followed by a new journal.head.
 */
class JournalAppender {
  readonly file: string;
  private readonly headFile: string;
  private readonly clock: NonNullable<JournalContext['clock']>;
  private readonly host: string;
  private size = 0;
  private lines = 0;
  private seq = 0;
  private prev = GENESIS_PREV;
  private lastBytes = 0;
  private checkpoint: Checkpoint | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly stateDir: string,
    private readonly ctx: JournalContext,
  ) {
    this.file = join(stateDir, JOURNAL_FILE);
    this.headFile = join(stateDir, JOURNAL_HEAD_FILE);
    this.clock = ctx.clock ?? { now: () => new Date(), fromEnv: false };
    this.host = ctx.host ?? journalHost();
  }

  get lineCount(): number {
    return this.lines;
  }

  /** Reads from `from` (the start of a whole line, `linesBefore` lines in) to the end and takes the last whole line. */
  async readTail(from: number, linesBefore: number): Promise<{ lines: Buffer[]; tail: Buffer }> {
    const content = await readFrom(this.file, from);
    const { lines, tail } = splitLines(content);
    this.size = from + content.length - tail.length;
    const last = lines.at(-1);
    if (last) {
      this.lines = linesBefore + lines.length;
      this.seq = parseEntry(last)?.seq ?? this.lines;
      this.prev = sha256(last);
      this.lastBytes = last.length + 1;
    } else if (from === 0) {
      this.lines = 0;
      this.seq = 0;
      this.prev = GENESIS_PREV;
      this.lastBytes = 0;
    }
    return { lines, tail };
  }

  /** The torn last line goes to a side file and off the journal, so the chain continues from the last whole entry. */
  async moveTornLineAside(tail: Buffer): Promise<{ file: string; bytes: number }> {
    const aside = join(this.stateDir, `journal.torn-${newRunId(this.clock.now())}.jsonl`);
    await writeFile(aside, tail, { flag: 'wx' }).catch((error: unknown) => {
      throw new JournalWriteError(aside, 'moving a torn last line aside', error);
    });
    const handle = await open(this.file, 'r+');
    try {
      await handle.truncate(this.size);
      await handle.sync();
    } finally {
      await handle.close();
    }
    return { file: aside, bytes: tail.length };
  }

  append(record: JournalRecord): Promise<JournalEntry> {
    const written = this.queue.then(() => this.writeEntry(record));
    this.queue = written.catch(() => undefined);
    return written;
  }

  /** The journal's end as it is now counts as walked: the next run checks only what follows it. */
  markChecked(): void {
    if (this.lines > 0) this.checkpoint = { bytes: this.size, lines: this.lines, seq: this.seq, hash: this.prev, lastBytes: this.lastBytes };
  }

  private async writeEntry(record: JournalRecord): Promise<JournalEntry> {
    const handle = await open(this.file, 'a').catch((error: unknown) => {
      throw new JournalWriteError(this.file, describeRecord(record), error);
    });
    try {
      await this.catchUpWith((await handle.stat()).size);
      const entry = this.nextEntry(record);
      await this.writeLine(handle, entry, record);
      await this.recordHead(record);
      return entry;
    } finally {
      await handle.close();
    }
  }

  /** Another writer (which should have held the lock) appended since our last look: chain onto its lines. */
  private async catchUpWith(onDisk: number): Promise<void> {
    if (onDisk === this.size) return;
    if (onDisk > this.size) await this.readTail(this.size, this.lines);
    else await this.readTail(0, 0);
  }

  private nextEntry(record: JournalRecord): JournalEntry {
    return {
      seq: this.seq + 1,
      at: this.clock.now().toISOString(),
      run: this.ctx.run,
      operator: this.ctx.operator,
      host: this.host,
      command: this.ctx.command,
      ...withoutUndefined({
        difusor: record.difusor,
        cut: record.cut,
      }),
      phase: record.phase,
      result: record.result,
      ...withoutUndefined({
        bytes: record.bytes,
        seconds: record.seconds,
        error: record.error,
        clock: this.clock.fromEnv ? this.clock.setting : undefined,
        detail: record.detail,
      }),
      prev: this.prev,
    };
  }

  private async writeLine(handle: FileHandle, entry: JournalEntry, record: JournalRecord): Promise<void> {
    const line = JSON.stringify(entry);
    const bytes = Buffer.from(line + '\n', 'utf8');
    try {
      await handle.write(bytes);
      await handle.sync();
    } catch (error) {
      // A half-written line would break the chain for every later entry; take it back.
      await handle.truncate(this.size).catch(() => undefined);
      throw new JournalWriteError(this.file, describeRecord(record), error);
    }
    this.size += bytes.length;
    this.lines += 1;
    this.seq = entry.seq;
    this.prev = sha256(line);
    this.lastBytes = bytes.length;
  }

  private async recordHead(record: JournalRecord): Promise<void> {
    const head: JournalHead = { seq: this.seq, hash: this.prev, ...(this.checkpoint ? { checked: this.checkpoint } : {}) };
    await writeHead(this.headFile, head).catch((error: unknown) => {
      // The entry is on disk and chained; only the tamper check of the journal's end waits for the next head.
      throw new JournalWriteError(this.headFile, `recording the journal's head after ${describeRecord(record)} (the entry itself is written)`, error);
    });
  }
}

/** The checkpoint in journal.head, when the journal still holds that line at that place. */
async function usableCheckpoint(file: string, head: JournalHead | undefined): Promise<Checkpoint | undefined> {
  const checked = head?.checked;
  if (!checked || checked.lastBytes <= 0 || checked.bytes < checked.lastBytes || checked.lines < 1) return undefined;
  const content = await readFrom(file, checked.bytes - checked.lastBytes);
  const newline = content.indexOf(0x0a);
  if (newline + 1 !== checked.lastBytes) return undefined;
  return sha256(content.subarray(0, newline)) === checked.hash ? checked : undefined;
}

/** What a journal entry that could not be written was about, for the operator. */
function describeRecord(record: JournalRecord): string {
  const about = [record.difusor, record.cut].filter(Boolean).join(' ');
  return `the journal entry "${record.phase} ${record.result}"${about ? ` for ${about}` : ''}`;
}

/** The journal (or its head) could not be written: which file, what the entry was, and the system's reason. */
export class JournalWriteError extends Error {
  readonly code?: string;
  constructor(
    readonly path: string,
    readonly doing: string,
    cause: unknown,
  ) {
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    super(`could not write ${path} (${doing}): ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.code = code;
  }
}

async function damageAlreadyRecorded(stateDir: string, damage: JournalProblem): Promise<boolean> {
  const recorded = await readJournal(stateDir);
  return recorded.some(
    (entry) => entry.phase === JOURNAL_DAMAGED_PHASE && entry.detail?.line === damage.line && entry.detail?.problem === damage.problem,
  );
}

function withoutUndefined<T extends Record<string, unknown>>(fields: T): Partial<T> {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as Partial<T>;
}

async function writeHead(headFile: string, head: JournalHead): Promise<void> {
  const temp = `${headFile}.${process.pid}.tmp`;
  await writeFile(temp, JSON.stringify(head) + '\n');
  await rename(temp, headFile);
}

async function readHead(headFile: string): Promise<JournalHead | undefined> {
  const content = await readIfExists(headFile);
  if (!content) return undefined;
  try {
    const head = JSON.parse(content.toString('utf8')) as Partial<JournalHead>;
    if (Number.isInteger(head.seq) && typeof head.hash === 'string') {
      const checked = head.checked;
      const wellFormed =
        checked !== undefined &&
        [checked.bytes, checked.lines, checked.seq, checked.lastBytes].every(Number.isInteger) &&
        typeof checked.hash === 'string';
      return { seq: head.seq!, hash: head.hash, ...(wellFormed ? { checked } : {}) };
    }
  } catch {
    // An unreadable head only costs the tail check; the chain itself is still verified.
  }
  return undefined;
}

export interface JournalFilter {
  since?: Date;
  difusor?: string;
  cut?: string;
}

/** The entries that read as entries, oldest first; `verifyJournal` is the place to learn about damaged lines. */
export async function readJournal(stateDir: string, filter: JournalFilter = {}): Promise<JournalEntry[]> {
  return readJournalFile(join(stateDir, JOURNAL_FILE), filter);
}

/** readJournal for a journal file anywhere: another host's journal copied here. */
export async function readJournalFile(file: string, filter: JournalFilter = {}): Promise<JournalEntry[]> {
  const content = await readIfExists(file);
  if (!content) return [];
  const sinceMs = filter.since?.getTime();
  return splitLines(content)
    .lines.map(parseEntry)
    .filter((entry): entry is JournalEntry => entry !== undefined)
    .filter(
      (entry) =>
        (sinceMs === undefined || Date.parse(entry.at) >= sinceMs) &&
        (filter.difusor === undefined || entry.difusor === filter.difusor) &&
        (filter.cut === undefined || entry.cut === filter.cut),
    );
}

export interface JournalProblem {
  ok: false;
  line: number;
  seq?: number;
  problem: string;
}

export type JournalVerification = { ok: true; entries: number } | JournalProblem;

/**
 * Walks the hash chain and reports the first entry that was edited, reordered or removed, or a torn last line;
 * then any damage an earlier run found and journaled. Line numbers are 1-based and name the damaged entry
 * itself (for an edit, the line whose bytes changed).
 */
export async function verifyJournal(stateDir: string): Promise<JournalVerification> {
  return verifyJournalFile(join(stateDir, JOURNAL_FILE), join(stateDir, JOURNAL_HEAD_FILE));
}

/**
 * verifyJournal for a journal file anywhere (another host's, copied here): the chain from the file alone, and
 * the head when `headFile` is given (without it a removal of the last lines cannot be detected).
 */
export async function verifyJournalFile(file: string, headFile?: string): Promise<JournalVerification> {
  const chain = await checkChain(file, headFile);
  if (!chain.ok) return chain;
  const content = (await readIfExists(file)) ?? Buffer.alloc(0);
  const lines = splitLines(content).lines;
  // Damage found by a later run stays a finding: the chain after it is whole, but what it replaced is not.
  for (let index = 0; index < lines.length; index++) {
    const entry = parseEntry(lines[index]!);
    if (entry?.phase !== JOURNAL_DAMAGED_PHASE) continue;
    return {
      ok: false,
      line: index + 1,
      seq: entry.seq,
      problem: `line ${index + 1} (seq ${entry.seq}) records damage that run ${entry.run} found on opening the journal: ${String(entry.detail?.problem)}`,
    };
  }
  return chain;
}

async function checkChain(file: string, headFile: string | undefined): Promise<JournalVerification> {
  const content = (await readIfExists(file)) ?? Buffer.alloc(0);
  const { lines, tail } = splitLines(content);
  const head = tail.length > 0 || headFile === undefined ? undefined : await readHead(headFile);
  const chain = checkLines(lines, { line: 1, seq: 1, prev: GENESIS_PREV }, head);
  if (!chain.ok) return chain;
  if (tail.length > 0) {
    const lastSeq = parseEntry(lines.at(-1) ?? Buffer.alloc(0))?.seq ?? 0;
    return {
      ok: false,
      line: lines.length + 1,
      seq: lastSeq + 1,
      problem: `the last line (line ${lines.length + 1}, ${tail.length} bytes) is torn: a write was cut short; the next run that journals moves it aside`,
    };
  }
  return chain;
}

/**
 * Walks consecutive lines of the journal: `first` says which line, seq and prev the first one must be (a walk
 * from a checkpoint knows the line and seq, not the hash before it). Then the recorded head must be one of them.
 */
function checkLines(lines: Buffer[], first: WalkStart, head: JournalHead | undefined): JournalVerification {
  const entries = lines.map(parseEntry);
  const walk: Walk = { lines, entries, first, lineOfSeq: lineOfEachSeq(entries, first.line) };
  for (let index = 0; index < lines.length; index++) {
    const problem = lineProblem(walk, index);
    if (problem) return problem;
  }
  const headMissing = head && head.seq > 0 ? headProblem(walk, head) : undefined;
  return headMissing ?? { ok: true, entries: first.line + lines.length - 1 };
}

interface WalkStart {
  line: number;
  seq: number;
  prev?: string;
}

/** The lines of one walk, as entries where they parse, and the line where each seq first appears. */
interface Walk {
  lines: Buffer[];
  entries: (JournalEntry | undefined)[];
  first: WalkStart;
  lineOfSeq: Map<number, number>;
}

function lineOfEachSeq(entries: (JournalEntry | undefined)[], firstLine: number): Map<number, number> {
  const lineOfSeq = new Map<number, number>();
  entries.forEach((entry, index) => {
    if (entry && !lineOfSeq.has(entry.seq)) lineOfSeq.set(entry.seq, firstLine + index);
  });
  return lineOfSeq;
}

/** The line at `index` must be an entry, with the seq that follows the one before, chained to that one's bytes. */
function lineProblem(walk: Walk, index: number): JournalProblem | undefined {
  const { lines, entries, first } = walk;
  const lineNumber = first.line + index;
  const entry = entries[index];
  const expectedSeq = index === 0 ? first.seq : entries[index - 1]!.seq + 1;
  if (!entry) {
    return { ok: false, line: lineNumber, seq: expectedSeq, problem: `line ${lineNumber} is not a journal entry: it was edited or damaged` };
  }
  if (entry.seq !== expectedSeq) {
    return { ok: false, line: lineNumber, seq: expectedSeq, problem: seqOutOfPlace(walk, index, entry.seq, expectedSeq) };
  }
  const expectedPrev = index === 0 ? first.prev : sha256(lines[index - 1]!);
  if (expectedPrev !== undefined && entry.prev !== expectedPrev) return brokenLink(walk, index, entry);
  return undefined;
}

/** Why a line holds another seq than the one that belongs there: an edit, a reordering, a removal or a duplicate. */
function seqOutOfPlace(walk: Walk, index: number, seq: number, expectedSeq: number): string {
  const lineNumber = walk.first.line + index;
  const elsewhere = walk.lineOfSeq.get(expectedSeq);
  if (walk.entries[index + 1]?.seq === expectedSeq + 1) {
    return `line ${lineNumber} was edited: it holds seq ${seq} where seq ${expectedSeq} belongs (the next line is seq ${expectedSeq + 1})`;
  }
  if (elsewhere !== undefined && elsewhere > lineNumber) {
    return `entries were reordered: line ${lineNumber} holds seq ${seq} where seq ${expectedSeq} belongs; seq ${expectedSeq} is on line ${elsewhere}`;
  }
  if (seq > expectedSeq) {
    return `entries were removed: seq ${expectedSeq}${seq - 1 > expectedSeq ? ` to ${seq - 1}` : ''} should come before line ${lineNumber} (seq ${seq})`;
  }
  return `line ${lineNumber} holds seq ${seq} where seq ${expectedSeq} belongs: an entry was duplicated or reordered`;
}

/** A prev that is not the hash of the line before: that line was edited (or, on line 1, the chain's start is gone). */
function brokenLink(walk: Walk, index: number, entry: JournalEntry): JournalProblem {
  const lineNumber = walk.first.line + index;
  if (lineNumber === 1) {
    return {
      ok: false,
      line: 1,
      seq: entry.seq,
      problem: 'line 1 does not start the chain (its prev is not 64 zeros): earlier entries were removed or line 1 was edited',
    };
  }
  return {
    ok: false,
    line: lineNumber - 1,
    seq: walk.entries[index - 1]?.seq ?? entry.seq - 1,
    problem: `line ${lineNumber - 1} (seq ${entry.seq - 1}) was edited: its bytes no longer hash to the prev recorded on line ${lineNumber}`,
  };
}

/** The head recorded at the last append must be among the lines walked, with the bytes it had then. */
function headProblem(walk: Walk, head: JournalHead): JournalProblem | undefined {
  const { lines, entries, first, lineOfSeq } = walk;
  const headLine = lineOfSeq.get(head.seq);
  const lastSeq = entries.at(-1)?.seq ?? 0;
  const lastLine = first.line + lines.length - 1;
  if (headLine === undefined) {
    return {
      ok: false,
      line: lastLine + 1,
      seq: lastSeq + 1,
      problem:
        head.seq > lastSeq
          ? `entries were removed from the end: the journal ends at seq ${lastSeq} but seq ${head.seq} was written`
          : `the recorded head (seq ${head.seq}) is not among the lines walked`,
    };
  }
  if (sha256(lines[headLine - first.line]!) !== head.hash) {
    return {
      ok: false,
      line: headLine,
      seq: head.seq,
      problem: `line ${headLine} (seq ${head.seq}) was edited: it no longer matches the hash recorded when it was written`,
    };
  }
  return undefined;
}

/**
 * The head file that goes with a journal file copied from another host: FILE.head beside it, or journal.head in
 * the same directory when FILE is named journal.jsonl (a copy of a whole state directory). Undefined when none is there.
 */
export async function headFileBeside(file: string): Promise<string | undefined> {
  const candidates = [`${file}.head`, ...(basename(file) === JOURNAL_FILE ? [join(dirname(file), JOURNAL_HEAD_FILE)] : [])];
  for (const candidate of candidates) {
    if ((await readIfExists(candidate)) !== undefined) return candidate;
  }
  return undefined;
}
