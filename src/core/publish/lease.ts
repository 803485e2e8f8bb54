import { isLeaseName } from '../shared/host-name.js';
import type { DifusorSession } from '../difusor-port.js';
import { badAnswer, isHelperTime, plainOrShown, printable, type AnswerSource } from './helper-answer.js';

/**
 * A difusor's lease: one run at a time on a difusor, whichever publication host it comes from.
 *   1. after connecting, before prepare, a run takes the lease (`lease take HOST RUN SECONDS`, on the difusor:
 *      .lease/holder). Free, expired (taken over: the answer names the dead holder, and the run journals it) or
 *      already this run's: taken. Another run's live lease: the difusor is left alone, "held by HOST since ...";
 *   2. while the run works it renews the lease every third of lease_s; a renewal that finds another holder marks
 *      the lease lost, and a lost lease never switches;
 *   3. after the switch (or the failure) the run releases it.
 * Expiry is reckoned on the difusor's own clock: the hosts' clocks may differ, the difusor's is the one both
 * see. A claim further than lease_s ahead counts as lease_s (the helper caps it by the holder file's mtime).
 */

export const DEFAULT_LEASE_S = 120;

/** A lease as the difusor holds it; times are the difusor's epoch seconds. */
export interface LeaseHolder {
  host: string;
  run: string;
  since: number;
  expiry: number;
}

export type LeaseAnswer =
  | { kind: 'free'; now: number }
  | { kind: 'held'; now: number; holder: LeaseHolder }
  | { kind: 'taken'; now: number; since: number; expiry: number; takenOver?: LeaseHolder }
  | { kind: 'renewed'; now: number; since: number; expiry: number }
  | { kind: 'lost'; now: number; holder?: LeaseHolder }
  | { kind: 'released'; now: number }
  | { kind: 'not-held'; now: number };

/** Who asks for a lease: this host's name and this run's id, both plain tokens the helper accepts. */
export interface LeaseClaim {
  host: string;
  run: string;
  seconds: number;
  /**
   * A run of this same host that this run knows died (it took over that run's lock in the state directory): its
   * leases are taken over at once, not after their expiry, so a rerun after a kill never waits on itself.
   */
  replaces?: string;
  /**
   * This run holds its host's lock (publish, rollback): one run at a time per host, so a lease of another run of
   * the same host is over (killed, or abandoned on a link gone silent) and is taken over at once.
   */
  hostLocked?: boolean;
}

export { isLeaseName, leaseHostName, thisHost } from '../shared/host-name.js';

export function leaseArgs(verb: 'take' | 'renew', claim: LeaseClaim): string[];
export function leaseArgs(verb: 'release', claim: Pick<LeaseClaim, 'host' | 'run'>): string[];
export function leaseArgs(verb: 'take' | 'renew' | 'release', claim: Pick<LeaseClaim, 'host' | 'run' | 'replaces' | 'hostLocked'> & { seconds?: number }): string[] {
  for (const [what, name] of [
    ['host', claim.host],
    ['run', claim.run],
    ...(claim.replaces !== undefined ? [['run', claim.replaces] as const] : []),
  ] as const) {
    if (!isLeaseName(name)) throw new Error(`not a lease ${what} name: ${JSON.stringify(name)}`);
  }
  if (verb === 'release') return [verb, claim.host, claim.run];
  const seconds = claim.seconds ?? DEFAULT_LEASE_S;
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 86_400) throw new Error(`lease seconds must be 1 to 86400: ${seconds}`);
  const replaces =
    verb !== 'take' ? [] : claim.hostLocked ? ['--host-lock'] : claim.replaces !== undefined && claim.replaces !== claim.run ? [claim.replaces] : [];
  return [verb, claim.host, claim.run, String(seconds), ...replaces];
}

/** "HOST RUN SINCE EXPIRY", checked as the helper writes it: lease names, times of at most 12 digits. */
export function holderFromWords(words: string[]): LeaseHolder | undefined {
  const [host, run, since, expiry] = words;
  if (words.length !== 4 || !isLeaseName(host ?? '') || !isLeaseName(run ?? '') || !isHelperTime(since) || !isHelperTime(expiry)) return undefined;
  return { host: host as string, run: run as string, since: Number(since), expiry: Number(expiry) };
}

/**
 * The helper's answer to a lease verb; anything else is an error naming the difusor (when `from` does), the verb
 * and the line, shown escaped: a difusor's admin writes these lines, and the operator's terminal shows the error.
 */
export function parseLeaseAnswer(stdout: string, from: AnswerSource = { verb: 'lease' }): LeaseAnswer {
  let now: number | undefined;
  let takenOver: LeaseHolder | undefined;
  let answer: LeaseAnswer | undefined;
  for (const line of stdout.split('\n').filter(Boolean)) {
    const [word, ...rest] = line.trim().split(/\s+/);
    const unexpected = (): Error => badAnswer(from, 'an unexpected line', line);
    const holder = (): LeaseHolder => {
      const h = holderFromWords(rest);
      if (!h) throw badAnswer(from, `a ${word} line that is not "${word} HOST RUN SINCE EXPIRY"`, line);
      return h;
    };
    const times = (): [number, number] => {
      if (rest.length !== 2 || !rest.every((r) => isHelperTime(r))) throw badAnswer(from, `a ${word} line that is not "${word} SINCE EXPIRY"`, line);
      return [Number(rest[0]), Number(rest[1])];
    };
    if (word === 'now' && rest.length === 1 && isHelperTime(rest[0])) now = Number(rest[0]);
    else if (now === undefined) throw badAnswer(from, 'no "now" first', line);
    else if ((word === 'free' || word === 'released' || word === 'not-held') && rest.length === 0) answer = { kind: word, now };
    else if (word === 'held') answer = { kind: 'held', now, holder: holder() };
    else if (word === 'takeover') takenOver = holder();
    else if (word === 'taken') {
      const [since, expiry] = times();
      answer = { kind: 'taken', now, since, expiry, ...(takenOver ? { takenOver } : {}) };
    } else if (word === 'renewed') {
      const [since, expiry] = times();
      answer = { kind: 'renewed', now, since, expiry };
    } else if (word === 'lost') answer = rest.length === 0 ? { kind: 'lost', now } : { kind: 'lost', now, holder: holder() };
    else throw unexpected();
  }
  if (!answer) throw badAnswer(from, 'no lease answer', stdout.trim() || '(nothing)');
  return answer;
}

/** An epoch second as ISO 8601 ("2022-06-05T20:15:02Z"); one beyond Date's range is said as the number, never thrown. */
export function isoSeconds(epochS: number, keepMs = false): string {
  const at = new Date(epochS * 1000);
  if (Number.isNaN(at.getTime())) return `${epochS} (epoch s)`;
  return keepMs ? at.toISOString() : at.toISOString().replace('.000Z', 'Z');
}

/** "held by HOST (run RUN) since 2022-06-05T20:15:02Z, 93 s left on its lease (the difusor's clock)". */
export function describeHolder(holder: LeaseHolder, now: number): string {
  return `held by ${plainOrShown(holder.host)} (run ${plainOrShown(holder.run)}) since ${isoSeconds(holder.since)}, ${Math.max(0, holder.expiry - now)} s left on its lease (the difusor's clock)`;
}

/** Another run's live lease: that difusor is left alone. */
export class LeaseHeldError extends Error {
  constructor(
    readonly holder: LeaseHolder,
    readonly now: number,
  ) {
    super(describeHolder(holder, now));
    this.name = 'LeaseHeldError';
  }
}

/** Runs fn every ms until the returned function is called; injected so tests renew without waiting. */
export type Every = (ms: number, fn: () => void) => () => void;

const realEvery: Every = (ms, fn) => {
  const timer = setInterval(fn, ms);
  timer.unref?.();
  return () => clearInterval(timer);
};

export interface HeldLease {
  /** The expired lease this run took over, for the journal. */
  takenOver?: LeaseHolder;
  /** The lease as taken: since and expiry on the difusor's clock, and that clock's now. */
  taken: { now: number; since: number; expiry: number };
  /** Why the lease is no longer this run's, once a renewal found so (then the run must not switch). */
  lost(): string | undefined;
  /**
   * Before a change the public sees: renews now unless a renewal confirmed the lease less than a third of
   * lease_s ago (by this host's monotonic time). Throws when the lease is lost.
   */
  confirm(): Promise<void>;
  /**
   * Stops renewing and frees the lease if this run still holds it, over `over` when given (a new connection, the
   * run's own having died); never throws (an unreleased lease expires).
   */
  release(over?: DifusorSession): Promise<string | undefined>;
  /** Stops renewing without asking the difusor (its link is down): the lease expires there after lease_s. */
  abandon(): void;
}

export interface LeasePorts {
  every?: Every;
  /** Monotonic ms; performance.now() by default. */
  now?: () => number;
  timeoutMs?: number;
  /** The difusor's id, named in what its answers make fail. */
  difusor?: string;
}

const LEASE_STEP_TIMEOUT_MS = 15_000;

async function ask(session: DifusorSession, args: string[], timeoutMs: number, difusor: string | undefined): Promise<LeaseAnswer> {
  const out = await session.helper('lease', args, { timeoutMs });
  const from: AnswerSource = { verb: `lease ${args[0]}`, ...(difusor !== undefined ? { difusor } : {}) };
  if (out.code !== 0) {
    const said = printable((out.stderr || out.stdout).trim().split('\n').slice(-2).join(' | ')) || 'no message';
    throw new Error(`${difusor !== undefined ? `${difusor}: ` : ''}${from.verb} failed (exit ${out.code}): ${said}`);
  }
  return parseLeaseAnswer(out.stdout, from);
}

/**
 * Takes the difusor's lease for this run, renewed every third of claim.seconds until released. Throws
 * LeaseHeldError when another run holds it, and a plain Error when the helper cannot say (an older helper:
 * "unknown verb lease").
 */
export async function takeLease(session: DifusorSession, claim: LeaseClaim, ports: LeasePorts = {}): Promise<HeldLease> {
  const every = ports.every ?? realEvery;
  const now = ports.now ?? (() => performance.now());
  const timeoutMs = ports.timeoutMs ?? LEASE_STEP_TIMEOUT_MS;
  const first = await ask(session, leaseArgs('take', claim), timeoutMs, ports.difusor);
  if (first.kind === 'held') throw new LeaseHeldError(first.holder, first.now);
  if (first.kind !== 'taken') throw new Error(`lease take answered ${first.kind}`);

  const renewEveryMs = (claim.seconds * 1000) / 3;
  let confirmedAt = now();
  let lostWhy: string | undefined;
  let renewing: Promise<void> | undefined;
  let released = false;

  const renew = (): Promise<void> => {
    renewing ??= ask(session, leaseArgs('renew', claim), timeoutMs, ports.difusor)
      .then((a) => {
        if (a.kind === 'renewed') confirmedAt = now();
        else if (a.kind === 'lost') lostWhy ??= a.holder ? `lease lost: ${describeHolder(a.holder, a.now)}` : 'lease lost: released or removed on the difusor';
      })
      // A renewal that could not be asked is tried again at the next tick; confirm() says if the lease may have lapsed.
      .catch(() => undefined)
      .finally(() => {
        renewing = undefined;
      });
    return renewing;
  };
  const stop = every(renewEveryMs, () => {
    if (!released && !lostWhy) void renew();
  });

  return {
    takenOver: first.takenOver,
    taken: { now: first.now, since: first.since, expiry: first.expiry },
    lost: () => lostWhy,
    confirm: async () => {
      if (!lostWhy && now() - confirmedAt >= renewEveryMs) {
        await renew();
        if (!lostWhy && now() - confirmedAt >= renewEveryMs) lostWhy = 'lease not confirmed: the difusor did not answer its renewal';
      }
      if (lostWhy) throw new Error(lostWhy);
    },
    release: async (over) => {
      if (released) return undefined;
      released = true;
      stop();
      await renewing;
      if (lostWhy) return undefined;
      try {
        const a = await ask(over ?? session, leaseArgs('release', claim), timeoutMs, ports.difusor);
        return a.kind === 'released' ? undefined : 'the lease was no longer this run\'s';
      } catch (error) {
        return (error as Error).message;
      }
    },
    abandon: () => {
      released = true;
      stop();
    },
  };
}


/** What the journal keeps of an expired lease taken over: whose it was, and until when. */
export function takeoverDetail(host: string, previous: LeaseHolder): Record<string, unknown> {
  return {
    host,
    tookOverFrom: { host: previous.host, run: previous.run, since: isoSeconds(previous.since, true), expiredAt: isoSeconds(previous.expiry, true) },
  };
}
