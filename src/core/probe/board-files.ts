import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { writeAtomically } from '../records/state-file.js';
import type { ProbeHistory } from '../records/probe-history.js';

/**
 * Writes the public board into DIR, the directory the institute's web server publishes. Every file is
 * written beside itself and renamed over the old one, so a visitor never gets half a file; the page goes
 * last, and it carries its own data, so what a visitor reads is always one round's. The log and the CSV
 * are copied as the history store has them: their whole lines.
 */
export interface BoardFiles {
  page: { name: string; text: string };
  data: { name: string; text: string };
  roster?: { name: string; text: string; logos: Map<string, Buffer> };
  log: string;
  csv: string;
}

export async function writeBoardDir<S>(dir: string, files: BoardFiles, history: ProbeHistory<S>): Promise<void> {
  await mkdir(dir, { recursive: true });
  if (files.roster) {
    for (const [rel, bytes] of files.roster.logos) await writeAtomically(path.join(dir, rel), bytes);
    await writeAtomically(path.join(dir, files.roster.name), files.roster.text);
  }
  const logTmp = path.join(dir, `${files.log}.${process.pid}.tmp`);
  const csvTmp = path.join(dir, `${files.csv}.${process.pid}.tmp`);
  try {
    await history.copyTo(logTmp, csvTmp);
    await rename(logTmp, path.join(dir, files.log));
    await rename(csvTmp, path.join(dir, files.csv));
  } finally {
    await rm(logTmp, { force: true });
    await rm(csvTmp, { force: true });
  }
  await writeAtomically(path.join(dir, files.data.name), files.data.text);
  await writeAtomically(path.join(dir, files.page.name), files.page.text);
}
