import { hostname } from 'node:os';
import type { Difusor, Registry } from '../registry/types.js';
import { acquireLock, currentUser, describeHolder, isLockHeld } from '../records/lock.js';
import { RunRefusal } from './publish-run.js';
import type { Journal, JournalContext } from '../records/journal.js';
import { parseHelperStatus } from './status.js';
import type { DifusorConnector, DifusorSession, HelperOutput } from '../difusor-port.js';
import { printable } from '../shared/printable.js';

/**
 * What cutoff, reinstate and rollback share: they change what the public sees outside the normal
 * flow, so each first shows its plan and asks (the command decides how: a terminal question, --yes,
 * or a refusal without a terminal), then acts under the same lock as publish, journaling every step.
 */

export interface OperationClock {
  now(): Date;
  fromEnv: boolean;
  setting?: string;
}

export interface OperationPorts {
  clock: OperationClock;
  connect(registry: Registry, targets: Difusor[]): Promise<DifusorConnector>;
  openJournal(stateDir: string, ctx: JournalContext): Promise<Journal>;
  newRunId(): string;
}

/** The plan was shown and the operator said no: nothing changed. */
export interface Cancelled {
  cancelled: true;
  exitCode: 1;
}

export const CANCELLED: Cancelled = { cancelled: true, exitCode: 1 };

export function findDifusor(registry: Registry, id: string): Difusor {
  const difusor = registry.difusores.find((d) => d.id === id);
  if (!difusor) {
    throw new RunRefusal(`no difusor "${id}" in ${registry.file}`, 2, [`known ids: ${registry.difusores.map((d) => d.id).join(', ')}`]);
  }
  return difusor;
}

/** Runs `fn` holding the publication lock, with a journal for this run. */
export async function underLock<T>(
  registry: Registry,
  command: string,
  ports: OperationPorts,
  /** deadRun: the run of this host whose stale lock this one took over (its leases are this run's to take over). */
  fn: (journal: Journal, run: string, deadRun?: string) => Promise<T>,
): Promise<T> {
  const stateDir = registry.publication.state_dir;
  const run = ports.newRunId();
  const lock = await acquireLock(stateDir, { runId: run, command });
  if (isLockHeld(lock)) {
    throw new RunRefusal(`another run holds the lock: ${describeHolder(lock.held)}`, 5, [
      'wait for it to finish (a publish takes seconds) and run this again',
    ]);
  }
  try {
    const journal = await ports.openJournal(stateDir, { run, operator: `${currentUser()}@${hostname()}`, command, clock: ports.clock });
    if (lock.tookOverFrom || lock.takeoverReason) {
      await journal.append({ phase: 'lock', result: 'info', detail: { tookOverFrom: lock.tookOverFrom, reason: lock.takeoverReason } });
    }
    return await fn(journal, run, lock.tookOverFrom?.runId);
  } finally {
    await lock.release();
  }
}

/** One helper verb; a non-zero exit becomes an error naming the verb and the helper's last words. */
export async function helperStep(session: DifusorSession, verb: string, args: string[], stdin?: string, timeoutMs?: number): Promise<HelperOutput> {
  const out = await session.helper(verb, args, { stdin, timeoutMs });
  if (out.code !== 0) {
    // The difusor's words go into errors and the journal: escaped, and each line cut short.
    const said = (out.stderr || out.stdout).trim().split('\n').filter(Boolean).slice(-2).map((l) => printable(l.slice(0, 200))).join(' | ');
    throw new Error(`${verb} failed (exit ${out.code}): ${said || 'no message'}`);
  }
  return out;
}

/** What a difusor serves now, from the helper's status verb. */
export interface Serving {
  live?: string;
  notice?: string;
  releases: string[];
  error?: string;
}

/** Asks the difusor (status verb); an unreachable one comes back with the error, never throws. */
export async function askServing(connector: DifusorConnector, difusor: Difusor): Promise<Serving> {
  try {
    const session = await connector.open(difusor);
    try {
      const status = parseHelperStatus((await helperStep(session, 'status', [])).stdout);
      return { live: status.live, notice: status.notice, releases: status.releases };
    } finally {
      session.close();
    }
  } catch (error) {
    return { releases: [], error: errorText(error) };
  }
}

export function describeServing(s: Serving): string {
  if (s.error) return `unreachable (${s.error})`;
  if (s.notice) return `the notice ${s.notice}`;
  return s.live ? `cut ${s.live}` : 'nothing yet';
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
