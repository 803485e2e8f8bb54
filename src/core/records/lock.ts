import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { hostname as osHostname, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { StateWriteError } from './state-file.js';

/** Who holds the state directory: enough for an operator to find the run and decide. */
export interface LockHolder {
  pid: number;
  host: string;
  user: string;
  /** ISO 8601 instant the lock was taken. */
  since: string;
  command: string;
  runId: string;
}

export interface Lock {
  file: string;
  holder: LockHolder;
  /** The stale holder this run replaced; the caller journals it. Absent when the old lock file was unreadable. */
  tookOverFrom?: LockHolder;
  /** Why the previous lock was judged stale; set whenever this run took one over. */
  takeoverReason?: string;
  /** Removes the lock if it is still this run's. Safe to call more than once. */
  release(): Promise<void>;
}

export interface LockDeps {
  /** Whether that process still runs; only asked about holders on this host. */
  isAlive?(pid: number, host: string): boolean;
  hostname?: string;
  user?: string;
  pid?: number;
  now?(): Date;
  /** A lock from another host older than this is taken over; unset, such a lock is always respected. */
  staleAfterMs?: number;
}

export const LOCK_FILE = 'lock';
const TAKEOVER_GUARD_FILE = 'lock.takeover';
/** A takeover takes milliseconds; a guard older than this was left by a run that died in the middle of one. */
const TAKEOVER_GUARD_STALE_MS = 30_000;
const MAX_ATTEMPTS = 20;

/** Runs in this process that hold or are taking a lock, so a recycled pid (common in containers) is told apart from a live holder. */
const runsInThisProcess = new Set<string>();

interface LockContext {
  isAlive(pid: number, host: string): boolean;
  hostname: string;
  user: string;
  pid: number;
  now(): Date;
  staleAfterMs?: number;
}

export function isLockHeld(result: Lock | { held: LockHolder }): result is { held: LockHolder } {
  return 'held' in result;
}

export function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // kill(pid, 0) also succeeds for a zombie: a run that died and was not yet reaped holds nothing.
    return !isZombie(pid);
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state follows the command name, which is in parentheses and may itself hold spaces or parentheses.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return false;
  }
}

export function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? process.env.LOGNAME ?? 'unknown';
  }
}

function parseHolder(content: string): LockHolder | undefined {
  try {
    const value = JSON.parse(content) as Partial<LockHolder>;
    if (
      typeof value.pid === 'number' &&
      typeof value.host === 'string' &&
      typeof value.user === 'string' &&
      typeof value.since === 'string' &&
      !Number.isNaN(Date.parse(value.since)) &&
      typeof value.command === 'string' &&
      typeof value.runId === 'string'
    ) {
      return {
        pid: value.pid,
        host: value.host,
        user: value.user,
        since: value.since,
        command: value.command,
        runId: value.runId,
      };
    }
  } catch {
    // Unparseable: reported as undefined, which the caller treats as stale.
  }
  return undefined;
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

async function unlinkIfExists(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

/** Writes the content to a fresh private file, fully and durably, so it can be linked or renamed into place whole. */
async function writeTempFile(dir: string, content: string): Promise<string> {
  const temp = join(dir, `lock.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'wx', 0o644);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    await unlinkIfExists(temp).catch(() => undefined);
    throw new StateWriteError(join(dir, LOCK_FILE), error);
  }
  return temp;
}

async function linkIntoPlace(temp: string, file: string): Promise<boolean> {
  try {
    await link(temp, file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    await unlinkIfExists(temp);
  }
}

type Staleness = { stale: false } | { stale: true; reason: string };

function judge(holder: LockHolder | undefined, content: string, ctx: LockContext): Staleness {
  if (!holder) {
    const what = content.trim() === '' ? 'empty' : 'not a lock record';
    return { stale: true, reason: `the lock file was ${what} (a write cut short, e.g. by a power loss)` };
  }
  if (holder.host === ctx.hostname) {
    if (holder.pid === ctx.pid && !runsInThisProcess.has(holder.runId)) {
      return { stale: true, reason: `pid ${holder.pid} is this process now, so the run that took the lock is gone` };
    }
    if (holder.pid !== ctx.pid && !ctx.isAlive(holder.pid, holder.host)) {
      return { stale: true, reason: `pid ${holder.pid} on ${holder.host} is no longer running` };
    }
    return { stale: false };
  }
  const ageMs = ctx.now().getTime() - Date.parse(holder.since);
  if (ctx.staleAfterMs !== undefined && ageMs > ctx.staleAfterMs) {
    return {
      stale: true,
      reason: `held from another host (${holder.host}) since ${holder.since}, longer than the ${ctx.staleAfterMs} ms allowed`,
    };
  }
  return { stale: false };
}

/**
 * Replaces a stale lock with ours. The guard file (created exclusively) keeps two runs from replacing the same
 * stale lock one after the other; under it we re-read the lock and rename ours over it only if it is unchanged.
 * Left open: a stale holder from another host that wakes up and releases between that re-read and our rename,
 * with a third run linking its lock in that gap. Returns false when someone else changed the lock first.
 */
async function replaceStaleLock(
  stateDir: string,
  file: string,
  staleContent: string,
  ourContent: string,
  ctx: LockContext,
): Promise<boolean | 'busy'> {
  const guard = join(stateDir, TAKEOVER_GUARD_FILE);
  const guardTemp = await writeTempFile(stateDir, ourContent);
  if (!(await linkIntoPlace(guardTemp, guard))) {
    await clearAbandonedGuard(guard, ctx);
    return 'busy';
  }
  try {
    if ((await readIfExists(file)) !== staleContent) return false;
    const temp = await writeTempFile(stateDir, ourContent);
    await rename(temp, file);
    return true;
  } finally {
    await unlinkIfExists(guard);
  }
}

async function clearAbandonedGuard(guard: string, ctx: LockContext): Promise<void> {
  const content = await readIfExists(guard);
  if (content === undefined) return;
  const holder = parseHolder(content);
  const deadHere = holder !== undefined && holder.host === ctx.hostname && !ctx.isAlive(holder.pid, holder.host);
  let ageMs = 0;
  try {
    ageMs = ctx.now().getTime() - (await stat(guard)).mtimeMs;
  } catch {
    return;
  }
  if (deadHere || ageMs > TAKEOVER_GUARD_STALE_MS || holder === undefined) await unlinkIfExists(guard);
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Takes the state directory's lock: one run at a time per state dir. Returns the holder instead when another
 * live run has it. A lock left by a dead process on this host, an unreadable lock file, or (with staleAfterMs)
 * an old lock from another host is taken over and reported in the returned Lock.
 */
export async function acquireLock(
  stateDir: string,
  info: { runId: string; command: string },
  deps: LockDeps = {},
): Promise<Lock | { held: LockHolder }> {
  const ctx: LockContext = {
    isAlive: deps.isAlive ?? ((pid: number) => processIsAlive(pid)),
    hostname: deps.hostname ?? osHostname(),
    user: deps.user ?? currentUser(),
    pid: deps.pid ?? process.pid,
    now: deps.now ?? (() => new Date()),
    staleAfterMs: deps.staleAfterMs,
  };
  await mkdir(stateDir, { recursive: true });
  const file = resolve(stateDir, LOCK_FILE);
  const holder: LockHolder = {
    pid: ctx.pid,
    host: ctx.hostname,
    user: ctx.user,
    since: ctx.now().toISOString(),
    command: info.command,
    runId: info.runId,
  };
  const ourContent = JSON.stringify(holder) + '\n';
  runsInThisProcess.add(info.runId);
  try {
    const lock = await takeLock(stateDir, file, holder, ourContent, ctx);
    if (isLockHeld(lock)) runsInThisProcess.delete(info.runId);
    return lock;
  } catch (error) {
    runsInThisProcess.delete(info.runId);
    throw error;
  }
}

async function takeLock(
  stateDir: string,
  file: string,
  holder: LockHolder,
  ourContent: string,
  ctx: LockContext,
): Promise<Lock | { held: LockHolder }> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    if (await linkIntoPlace(await writeTempFile(stateDir, ourContent), file)) {
      return makeLock(file, holder, ourContent);
    }
    const existing = await readIfExists(file);
    if (existing === undefined) continue;
    const existingHolder = parseHolder(existing);
    const staleness = judge(existingHolder, existing, ctx);
    if (!staleness.stale) return { held: existingHolder! };
    const replaced = await replaceStaleLock(stateDir, file, existing, ourContent, ctx);
    if (replaced === true) {
      return makeLock(file, holder, ourContent, { tookOverFrom: existingHolder, takeoverReason: staleness.reason });
    }
    if (replaced === 'busy') await pause(5 + attempt * 5);
  }
  const last = parseHolder((await readIfExists(file)) ?? '');
  if (last) return { held: last };
  throw new Error(`could not take the lock ${file}: it kept changing while other runs started; try again`);
}

function makeLock(file: string, holder: LockHolder, ourContent: string, takeover: { tookOverFrom?: LockHolder; takeoverReason?: string } = {}): Lock {
  let released = false;
  const lock: Lock = {
    file,
    holder,
    async release() {
      if (released) return;
      released = true;
      runsInThisProcess.delete(holder.runId);
      if ((await readIfExists(file)) === ourContent) await unlinkIfExists(file);
    },
  };
  if (takeover.takeoverReason !== undefined) lock.takeoverReason = takeover.takeoverReason;
  if (takeover.tookOverFrom !== undefined) lock.tookOverFrom = takeover.tookOverFrom;
  return lock;
}

/** 'pid 4312 (prep@utc-pub1), publish --latest, run 20220605T201502Z-ab12cd, since 2022-06-06T01:15:02.000Z' */
export function describeHolder(holder: LockHolder): string {
  return `pid ${holder.pid} (${holder.user}@${holder.host}), ${holder.command}, run ${holder.runId}, since ${holder.since}`;
}
