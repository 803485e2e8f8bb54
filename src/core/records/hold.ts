import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { parseCutId } from '../shared/cut-id.js';
import { writeAtomically } from './state-file.js';

/**
 * The rollback hold: after `rollback`, cron's `publish --latest` must not put the newer cut back
 * behind the operator's back. The hold names the cut rolled back to; --latest stays on it (and
 * says so) until an operator publishes a cut by name, which lifts it.
 */

export const HOLD_FILE = 'rollback-hold.json';

export interface RollbackHold {
  cut: string;
  /** ISO instant of the rollback. */
  at: string;
  run: string;
  /** The newest cut that was live before. */
  from?: string;
  /** A rollback --only: the difusores held on `cut`; absent, every difusor is. */
  difusores?: string[];
}

export async function readHold(stateDir: string): Promise<RollbackHold | undefined> {
  const text = await readFile(path.join(stateDir, HOLD_FILE), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const hold = JSON.parse(text) as RollbackHold;
    const difusores = hold.difusores === undefined || (Array.isArray(hold.difusores) && hold.difusores.every((id) => typeof id === 'string'));
    return typeof hold.cut === 'string' && parseCutId(hold.cut) && difusores ? hold : undefined;
  } catch {
    return undefined;
  }
}

export async function writeHold(stateDir: string, hold: RollbackHold): Promise<void> {
  await writeAtomically(path.join(stateDir, HOLD_FILE), `${JSON.stringify(hold, null, 2)}\n`);
}

export async function clearHold(stateDir: string): Promise<void> {
  await rm(path.join(stateDir, HOLD_FILE), { force: true });
}
