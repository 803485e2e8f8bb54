import { link, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { StateWriteError, writeAtomically } from '../records/state-file.js';
import type { ProbeHistory } from '../records/probe-history.js';

/**
 * Writes the public board into DIR, the directory the institute's web server publishes, so that a visitor
 * never gets half a file nor a page and data of two different rounds:
 *   1. the round's data (board.json, rounds.csv, rounds.jsonl) is written whole into a hidden staging
 *      directory, then renamed as one to DIR/data/<n>/ (n one more than the newest there): a round's set
 *      appears all at once and is never written again;
 *   2. DIR/board.json, rounds.csv and rounds.jsonl, the latest for programs that read them at a fixed
 *      address, are hard links to that set's files, each renamed into place;
 *   3. the page, which links to data/<n>/, is rendered and renamed into place last;
 *   4. the sets beyond the newest KEEP_ROUND_DIRS are removed: a page fetched one or two rounds ago still
 *      finds its data.
 * Temporary names start with a dot and carry the writer's pid; one left by a killed writer is removed by
 * the next. roster.json and logos/ change with the registry, not the round, and stay at DIR's root.
 */
export interface BoardFiles {
  /** The page, rendered once the round's data directory (relative to DIR, e.g. "data/12") is known. */
  page: { name: string; render(dataDir: string): string };
  data: { name: string; text: string };
  roster?: { name: string; text: string; logos: Map<string, Buffer> };
  log: string;
  csv: string;
}

export const DATA_DIR = 'data';
export const KEEP_ROUND_DIRS = 3;

const STAGING = /^\.(?:staging|tmp)-(\d+)-/;
const ROUND_DIR = /^\d+$/;

export async function writeBoardDir<S>(dir: string, files: BoardFiles, history: ProbeHistory<S>): Promise<void> {
  const dataRoot = path.join(dir, DATA_DIR);
  await mkdir(dataRoot, { recursive: true });
  await removeDeadLeftovers(dir);
  await removeDeadLeftovers(dataRoot);
  if (files.roster) {
    for (const [rel, bytes] of files.roster.logos) await replace(path.join(dir, rel), bytes);
    await replace(path.join(dir, files.roster.name), files.roster.text);
  }
  const round = await stageRound(dataRoot, files, history);
  for (const name of [files.log, files.csv, files.data.name]) await linkInto(path.join(dataRoot, round, name), path.join(dir, name));
  await replace(path.join(dir, files.page.name), files.page.render(`${DATA_DIR}/${round}`));
  await pruneRounds(dataRoot, round);
}

/** The round's set written whole beside the others, then renamed to the next free number; its name. */
async function stageRound<S>(dataRoot: string, files: BoardFiles, history: ProbeHistory<S>): Promise<string> {
  const staging = path.join(dataRoot, `.staging-${process.pid}-${Date.now().toString(36)}`);
  try {
    await mkdir(staging);
    await history.copyTo(path.join(staging, files.log), path.join(staging, files.csv));
    await writeFile(path.join(staging, files.data.name), files.data.text);
    for (let attempt = 0; ; attempt++) {
      const round = String(Math.max(0, ...(await roundDirs(dataRoot))) + 1);
      try {
        await rename(staging, path.join(dataRoot, round));
        return round;
      } catch (error) {
        // Another writer took that number between the listing and the rename: take the next one.
        const code = (error as NodeJS.ErrnoException).code;
        if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || attempt >= 5) throw error;
      }
    }
  } catch (error) {
    await rm(staging, { recursive: true, force: true }).catch(() => undefined);
    throw error instanceof StateWriteError ? error : new StateWriteError(staging, error);
  }
}

async function roundDirs(dataRoot: string): Promise<number[]> {
  return (await readdir(dataRoot)).filter((n) => ROUND_DIR.test(n)).map(Number);
}

async function pruneRounds(dataRoot: string, written: string): Promise<void> {
  const rounds = (await roundDirs(dataRoot)).sort((a, b) => b - a);
  for (const old of rounds.slice(KEEP_ROUND_DIRS)) {
    if (String(old) !== written) await rm(path.join(dataRoot, String(old)), { recursive: true, force: true });
  }
}

/** A file replaced by rename: readers get the old one or the new one, whole. */
function replace(file: string, data: string | Buffer): Promise<void> {
  return writeAtomically(file, data, (f) => path.join(path.dirname(f), `.tmp-${process.pid}-${path.basename(f)}`));
}

/** DIR/<name> becomes the round's file, by a hard link renamed over it (no copy: the round's files never change). */
async function linkInto(from: string, to: string): Promise<void> {
  const tmp = path.join(path.dirname(to), `.tmp-${process.pid}-${path.basename(to)}`);
  try {
    await rm(tmp, { force: true });
    await link(from, tmp);
    await rename(tmp, to);
  } catch (error) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new StateWriteError(to, error);
  }
}

/** Temporary files and staging directories of writers no longer running (killed mid-write). */
async function removeDeadLeftovers(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const pid = STAGING.exec(name)?.[1];
    if (pid !== undefined && !alive(Number(pid))) await rm(path.join(dir, name), { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
