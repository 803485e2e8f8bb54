import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

// How every file of the state directory is written (journal head, lock, hold, records): atomically, and a
// failure names the file. Apart from state.ts so the lock and the journal need nothing else of it.

/** A file of the state directory could not be written: which one and the system's reason (ENOSPC: the disk is full). */
export class StateWriteError extends Error {
  readonly code?: string;
  constructor(
    readonly path: string,
    cause: unknown,
  ) {
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    super(`could not write ${path}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.code = code;
  }
}

/** `temporary` names the file written beside `file` before the rename (the board's are dot-named, hidden from visitors). */
export async function writeAtomically(file: string, data: string | Buffer, temporary = (f: string): string => `${f}.${process.pid}.tmp`): Promise<void> {
  const tmp = temporary(file);
  try {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(tmp, data);
    await rename(tmp, file);
  } catch (error) {
    // A half-written temporary file would only hold on to the space that ran out.
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new StateWriteError(file, error);
  }
}

