import { statfs } from 'node:fs/promises';
import path from 'node:path';
import { JournalWriteError } from '../core/records/journal.js';
import { StateWriteError, stateDirUsage } from '../core/records/state.js';
import { formatBytes, terminalText } from './render.js';

/** The codes of a publication host that cannot write its state directory: full, over quota, read-only, failing. */
const UNWRITABLE = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EIO', 'EACCES', 'EPERM']);

/** A write of the state directory (journal, manifest, record, cache) that failed for a reason of the host's disk. */
export function isStateWriteFailure(error: unknown): error is NodeJS.ErrnoException {
  if (error instanceof StateWriteError || error instanceof JournalWriteError) return true;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  // Node's own message for a failed write names no file ("ENOSPC: no space left on device, write").
  return typeof code === 'string' && UNWRITABLE.has(code) && ['write', 'open', 'mkdir', 'rename', 'fsync'].includes(String((error as NodeJS.ErrnoException).syscall));
}

/** Which difusores this run had made live, and which it had not, when the state directory failed. */
export interface RunProgress {
  cut?: string;
  live: string[];
  notLive: string[];
  /** Nothing reached a difusor's disk (the failure came before any transfer). */
  nothingSent: boolean;
}

/**
 * The message for a state directory the run could not write: the file, what the run had done on the
 * difusores and what it had not, and what to free. The difusores' content never depends on this directory.
 */
export async function describeStateWriteFailure(error: NodeJS.ErrnoException, stateDir: string, progress?: RunProgress): Promise<{ message: string; suggestions: string[] }> {
  const file = error instanceof StateWriteError || error instanceof JournalWriteError ? error.path : (error.path ?? stateDir);
  const doing = error instanceof JournalWriteError ? ` (${error.doing})` : '';
  const reason = error.code === 'ENOSPC' || error.code === 'EDQUOT' ? 'the disk is full' : (error.code ?? 'write failed');
  const lines = [`the publication host could not write its state directory: ${file}${doing}: ${reason} (${error.code ?? ''} ${error.syscall ?? ''})`.replace(/ \)$/, ')')];
  if (progress) {
    const cut = progress.cut ?? 'the cut';
    if (progress.nothingSent) lines.push(`done: nothing; no difusor was changed (each keeps the cut it served).`);
    else {
      if (progress.live.length > 0) lines.push(`done: live on ${cut}: ${progress.live.join(', ')}.`);
      if (progress.notLive.length > 0) lines.push(`not done: not switched to ${cut}, each keeps its previous cut: ${progress.notLive.join(', ')}.`);
    }
    if (!progress.nothingSent) lines.push(`not recorded: this run's end in the journal${progress.live.length > 0 ? ' and, maybe, what the difusores above serve' : ''}; the next run asks the difusores and catches up.`);
  } else {
    lines.push('what reached the difusores before this: `difusion status` asks them; the journal may lack this run\'s last entries.');
  }
  const usage = await stateDirUsage(stateDir).catch(() => undefined);
  const free = await statfs(stateDir).then((s) => s.bavail * s.bsize).catch(() => undefined);
  if (usage) {
    lines.push(
      `${stateDir} holds ${formatBytes(usage.totalBytes)}: journal ${formatBytes(usage.journalBytes)}, ${usage.cuts} cut manifest(s) ${formatBytes(usage.cutsBytes)}` +
        `${free !== undefined ? `; ${formatBytes(free)} free on its filesystem` : ''}.`,
    );
  }
  lines.push(
    `to free: space on the filesystem of ${stateDir} (df -h ${stateDir}), outside the state directory first: its files are the night's record. ` +
      `In it, old ${path.join(stateDir, 'cuts')}/<cut>/ directories of cuts no difusor holds any more and journal.torn-* files may be moved elsewhere; never edit journal.jsonl.`,
  );
  return {
    message: terminalText(lines.join('\n')),
    suggestions: ['then run the same command again: publish --latest sends only what is missing'],
  };
}
