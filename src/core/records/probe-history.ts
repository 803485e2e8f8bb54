import { createHash } from 'node:crypto';
import { appendFile, copyFile, mkdir, open, readFile, rm, stat, truncate } from 'node:fs/promises';
import path from 'node:path';
import type { ProbeFailureKind } from './probe-row.js';
import { writeAtomically } from './state-file.js';

/**
 * Every probe round, kept on the publication host in `<state_dir>/rounds/` (apart from probe/<id>.json, so no
 * difusor id can collide with these names):
 *   rounds.jsonl   one line per round, append-only, public data only (states, cuts, lags, failure kinds,
 *                  timings: never an address, port or error text, which stay in the journal). Each line
 *                  carries `prev`, the SHA-256 of the line before it (64 zeros for the first), so whoever
 *                  holds a copy can tell no line was edited, removed or inserted (`verifyRoundsLog`).
 *   rounds.csv     the same rounds, one row per difusor and round, for a spreadsheet.
 *   summary.json   a small rolling summary the caller folds each round into, so drawing the board or
 *                  the metrics never reads the whole history: a round costs one append and one rewrite
 *                  of the summary, whatever the night's length.
 * The summary remembers the log's and the CSV's sizes; when they disagree (a crash between the append and
 * the summary) it is rebuilt once from the log, a torn last line cut off first.
 */

/** A difusor's state in one round, as the public board names it. */
export type BoardState = 'current' | 'lagging' | 'stale' | 'altered' | 'unreachable' | 'suspended' | 'notice-missing' | 'unchecked';

export const BOARD_STATES: readonly BoardState[] = ['current', 'lagging', 'stale', 'altered', 'unreachable', 'suspended', 'notice-missing', 'unchecked'];

export interface RoundEntry {
  id: string;
  state: BoardState;
  kinds: ProbeFailureKind[];
  cut: string | null;
  lagSeconds: number | null;
  files: number;
  differing: number;
  status: number | null;
  ttfbMs: number | null;
  totalMs: number;
}

export interface RoundRecord {
  /** 1, 2, … : a gap shows a removed line even to a reader who does not check hashes. */
  n: number;
  /** SHA-256 (hex) of the previous line of rounds.jsonl, as written; 64 zeros for the first. */
  prev: string;
  at: string;
  maxLagSeconds: number;
  newest: string | null;
  /** Most difusores failed at once: the checker's own trouble, not counted against them. */
  doubt: boolean;
  tookMs: number;
  difusores: RoundEntry[];
}

export type NewRound = Omit<RoundRecord, 'n' | 'prev'>;

interface Stored<S> {
  logBytes: number;
  csvBytes: number;
  lines: number;
  lastHash: string;
  summary: S;
}

export const GENESIS_HASH = '0'.repeat(64);
const CSV_HEADER = 'ronda,fecha,duda,difusor,estado,corte,retraso_s,fallas,archivos,archivos_distintos,http,ttfb_ms,total_ms\n';
const LOCK_WAIT_MS = 30_000;
const LOCK_STALE_MS = 120_000;

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

function csvField(value: string | number | boolean | null): string {
  const text = value === null ? '' : String(value);
  // A leading = + - @ would be a formula to a spreadsheet: quoted and prefixed, it stays text.
  const safe = /^[=+\-@]/.test(text) && typeof value === 'string' ? `'${text}` : text;
  return /[",\n\r]/.test(safe) || safe !== text ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function roundCsvRows(round: RoundRecord): string {
  return round.difusores
    .map((d) =>
      [round.n, round.at, round.doubt, d.id, d.state, d.cut, d.lagSeconds, d.kinds.join(' '), d.files, d.differing, d.status, d.ttfbMs, d.totalMs]
        .map(csvField)
        .join(','),
    )
    .map((row) => `${row}\n`)
    .join('');
}

/** What verifying a copy of rounds.jsonl finds: every line chained to the one before, or where it breaks. */
export interface LogVerdict {
  ok: boolean;
  lines: number;
  lastHash: string;
  /** 1-based line where the chain breaks, and why. */
  broken?: { line: number; reason: string };
}

export function verifyRoundsLog(text: string): LogVerdict {
  let prev = GENESIS_HASH;
  let lines = 0;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    lines++;
    let record: Partial<RoundRecord>;
    try {
      record = JSON.parse(line) as Partial<RoundRecord>;
    } catch {
      return { ok: false, lines, lastHash: prev, broken: { line: lines, reason: 'not JSON (torn or edited)' } };
    }
    if (record.prev !== prev) return { ok: false, lines, lastHash: prev, broken: { line: lines, reason: 'prev is not the SHA-256 of the line before: a line was edited, removed or inserted' } };
    if (record.n !== lines) return { ok: false, lines, lastHash: prev, broken: { line: lines, reason: `numbered ${String(record.n)}, expected ${lines}` } };
    prev = sha256(line);
  }
  return { ok: true, lines, lastHash: prev };
}

export class ProbeHistory<S> {
  readonly logFile: string;
  readonly csvFile: string;
  private readonly summaryFile: string;
  private readonly lockFile: string;

  constructor(
    stateDir: string,
    private readonly fold: (summary: S | undefined, round: RoundRecord) => S,
  ) {
    const dir = path.join(stateDir, 'rounds');
    this.logFile = path.join(dir, 'rounds.jsonl');
    this.csvFile = path.join(dir, 'rounds.csv');
    this.summaryFile = path.join(dir, 'summary.json');
    this.lockFile = path.join(dir, 'rounds.lock');
  }

  /** Appends the round to the chained log and the CSV, folds it into the summary; returns the summary and the round as kept. */
  async append(round: NewRound): Promise<{ summary: S; round: RoundRecord }> {
    await mkdir(path.dirname(this.logFile), { recursive: true });
    const release = await this.lock();
    try {
      const stored = await this.load();
      const record: RoundRecord = { n: stored.lines + 1, prev: stored.lastHash, ...round };
      const line = JSON.stringify(record);
      const rows = roundCsvRows(record);
      const header = stored.csvBytes === 0 ? CSV_HEADER : '';
      await appendFile(this.logFile, `${line}\n`);
      await appendFile(this.csvFile, header + rows);
      const next: Stored<S> = {
        logBytes: stored.logBytes + Buffer.byteLength(line) + 1,
        csvBytes: stored.csvBytes + Buffer.byteLength(header + rows),
        lines: record.n,
        lastHash: sha256(line),
        summary: this.fold(stored.summary as S | undefined, record),
      };
      await writeAtomically(this.summaryFile, JSON.stringify(next));
      return { summary: next.summary, round: record };
    } finally {
      await release();
    }
  }

  /** The summary as of the last round (undefined before the first), without reading the log unless it must be rebuilt. */
  async summary(): Promise<S | undefined> {
    const stored = await this.load();
    return stored.lines === 0 ? undefined : stored.summary;
  }

  /** Copies the log and the CSV as they are now (whole lines only: the summary's sizes) to the given files. */
  async copyTo(log: string, csv: string): Promise<void> {
    await copyFile(this.logFile, log).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? writeAtomically(log, '') : Promise.reject(e)));
    await copyFile(this.csvFile, csv).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? writeAtomically(csv, CSV_HEADER) : Promise.reject(e)));
  }

  private async load(): Promise<Stored<S | undefined>> {
    const [text, logInfo, csvInfo] = await Promise.all([
      readFile(this.summaryFile, 'utf8').catch(() => undefined),
      stat(this.logFile).catch(() => undefined),
      stat(this.csvFile).catch(() => undefined),
    ]);
    if (text !== undefined) {
      try {
        const stored = JSON.parse(text) as Stored<S>;
        if (stored.logBytes === (logInfo?.size ?? 0) && stored.csvBytes === (csvInfo?.size ?? 0)) return stored;
      } catch {
        // A summary that does not parse is rebuilt from the log below.
      }
    }
    if (!logInfo || logInfo.size === 0) {
      await rm(this.csvFile, { force: true });
      return { logBytes: 0, csvBytes: 0, lines: 0, lastHash: GENESIS_HASH, summary: undefined };
    }
    return this.rebuild();
  }

  /** Once after a crash: the log read whole, a torn last line cut off, the CSV and summary made again from it. */
  private async rebuild(): Promise<Stored<S | undefined>> {
    const text = await readFile(this.logFile, 'utf8');
    let summary: S | undefined;
    let lastHash = GENESIS_HASH;
    let lines = 0;
    let keep = 0;
    let csv = CSV_HEADER;
    const parts = text.split('\n');
    // The last part has no newline after it: a line the crash tore, or nothing.
    for (const line of parts.slice(0, -1)) {
      let record: RoundRecord;
      try {
        record = JSON.parse(line) as RoundRecord;
      } catch {
        break;
      }
      summary = this.fold(summary, record);
      csv += roundCsvRows(record);
      lastHash = sha256(line);
      lines = record.n;
      keep += Buffer.byteLength(line) + 1;
    }
    if (keep < Buffer.byteLength(text)) await truncate(this.logFile, keep);
    await writeAtomically(this.csvFile, csv);
    const stored: Stored<S | undefined> = { logBytes: keep, csvBytes: Buffer.byteLength(csv), lines, lastHash, summary };
    await writeAtomically(this.summaryFile, JSON.stringify(stored));
    return stored;
  }

  /** One writer at a time (a cron probe beside a --watch): a fork in the chain would read as tampering. */
  private async lock(): Promise<() => Promise<void>> {
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        const handle = await open(this.lockFile, 'wx');
        await handle.writeFile(`${process.pid}\n`);
        await handle.close();
        return () => rm(this.lockFile, { force: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const info = await stat(this.lockFile).catch(() => undefined);
        if (info && Date.now() - info.mtimeMs > LOCK_STALE_MS) await rm(this.lockFile, { force: true });
        else if (Date.now() > deadline) throw new Error(`${this.lockFile} is held by another probe for over ${LOCK_WAIT_MS / 1000} s; remove it if no probe runs`);
        else await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }
}
