import type { Difusor } from '../registry/types.js';
import type { Manifest } from '../shared/manifest.js';
import { manifestText, sha256Hex } from '../shared/manifest.js';
import {
  MANIFEST_NAME,
  SIGNATURE_NAME,
  checkInventory,
  parsePrepare,
  parseVerify,
  planTransfer,
  strangersInStaging,
  type PlanKind,
  type PrepareReport,
  type TransferPlan,
} from './plan.js';
import type { DifusorConnector, DifusorSession, HelperOutput, OpenOptions } from '../difusor-port.js';
import { LeaseHeldError, takeLease, takeoverDetail, type HeldLease, type LeaseClaim } from './lease.js';
import { heldByRollback, holdLiftedThere, newerCutLive } from './forward.js';
import { holdNotRecorded, holdThere } from './hold-marker.js';
import { printable } from './helper-answer.js';

/**
 * What happens on publish, for every targeted difusor:
 *   1. stage (bounded by publication.concurrency): connect; prepare, which also hard-links into the
 *      staging the files of the live release the new manifest keeps; send what the staging lacks,
 *      verify it with sha256sum on the difusor and check the release holds exactly the manifest, then
 *      move it to releases/<cut>;
 *   2. switch: the ready difusores together, each by renaming a new symlink over `current`. The group
 *      goes when every difusor is ready or failed, or when publication.switch_deadline_s has passed
 *      since the first one was ready, whichever comes first; a difusor ready after that switches on
 *      its own as soon as it is verified, and its outcome and journal say how late it went live;
 *   3. prune old releases, keeping publication.keep_releases and always the live one.
 * A failing difusor keeps its previous cut and never holds the others back; nor does a slow one.
 * Every change a visitor can see is one rename on one difusor, so a kill at any moment leaves each
 * difusor serving one whole cut.
 */

export type Phase =
  | 'waiting'
  | 'connecting'
  | 'preparing'
  | 'linking'
  | 'staging'
  | 'verifying'
  | 'ready'
  | 'switching'
  | 'live'
  | 'up-to-date'
  | 'planned'
  | 'failed';

export type OutcomeResult = 'live' | 'up-to-date' | 'failed' | 'planned';

export interface DifusorOutcome {
  id: string;
  name: string;
  result: OutcomeResult;
  cut: string;
  plan?: PlanKind;
  /** The cut the difusor served before this run (and still serves if it failed). */
  previous?: string;
  filesToSend: number;
  bytesToSend: number;
  filesLinked: number;
  filesSent: number;
  bytesSent: number;
  seconds: number;
  failedPhase?: Phase;
  error?: string;
  /** The difusor's own check of the signature, when it holds the institute's public key. */
  signatureCheck?: 'ok' | 'unchecked';
  /**
   * Epoch ms at which `current` was switched, on PublishPorts.now, the run's timer (the machine's clock, never
   * DIFUSION_NOW's fixed instant): the switch spread, the lateness and the journal's switchedAt are measured
   * moments, which a clock that does not advance would make all the same.
   */
  switchedAt?: number;
  /** Seconds after the on-time group's switch that this difusor went live (0 for the group itself). */
  lateSeconds?: number;
  /** A failed difusor whose staging could not be freed before the run ended: why (the next run's prepare clears it). */
  stagingLeft?: string;
  /**
   * Left alone rather than failed: another run (of this host or the other) holds its lease, or it serves a newer
   * cut than this run's, or a rollback (of either host) holds it on an older cut and this run is cron's --latest.
   * The error says which and whose; the run exits 3 even when every difusor is left alone.
   */
  leftAlone?: 'held' | 'newer-live' | 'rollback-hold';
  /**
   * Moved back following this host's rollback hold, but the hold could not be recorded on the difusor (why): the
   * other host's cron may move it forward again. Live all the same; the run exits 3.
   */
  holdNotRecorded?: string;
}

export interface PublishReport {
  cut: string;
  dryRun: boolean;
  outcomes: DifusorOutcome[];
  /** Between the first and the last switch among the difusores that switched together (the on-time group). */
  switchSpreadMs?: number;
  /** Epoch ms at which the on-time group was switched; undefined when no difusor was ready. */
  groupSwitchAt?: number;
  /** Whether the group went because the deadline passed (someone was still staging) rather than because all were done. */
  deadlinePassed?: boolean;
  exitCode: 0 | 1 | 3;
}

export interface PublishObserver {
  phase(id: string, phase: Phase, detail?: string): void;
  progress?(id: string, bytes: number, percent: number): void;
}

export interface PublishStatePort {
  manifestHashes(cut: string, digest: string | undefined): Promise<Map<string, string> | undefined>;
}

export interface PublishJournalPort {
  record(entry: {
    difusor: string;
    cut: string;
    phase: string;
    result: 'ok' | 'failed' | 'skipped' | 'info';
    bytes?: number;
    seconds?: number;
    error?: string;
    detail?: Record<string, unknown>;
  }): Promise<void>;
}

export interface PublishRequest {
  cut: string;
  cutDir: string;
  manifest: Manifest;
  /** base64 Ed25519 signature of the manifest's bytes, when the registry names a signing key. */
  signature?: string;
  targets: Difusor[];
  concurrency: number;
  keepReleases: number;
  dryRun: boolean;
  /** Only reinstate may replace a suspended difusor's notice; the helper refuses any other switch over one. */
  liftNotice?: boolean;
  /** publication.switch_deadline_s in ms; 20 s when not given. */
  switchDeadlineMs?: number;
  /**
   * Difusores this host last saw serving this very cut: most likely a no-op, so rsync's connection is not
   * opened ahead for them (cron's run every 15 minutes finds most of them so). A guess only: prepare decides.
   */
  likelyLive?: ReadonlySet<string>;
  /**
   * This run's name for an incoming directory (letters and digits). With it, a difusor this host last saw
   * serving another cut it holds the manifest of (`lastLive`) starts its transfer while prepare runs, sending
   * what changed since that cut; prepare builds the staging meanwhile, and verify merges the two.
   */
  incoming?: string;
  lastLive?: ReadonlyMap<string, LastLive>;
  /**
   * This host and run: each difusor's lease is taken for them after connecting and held (renewed) until after the
   * switch (lease.ts). Without it no lease is asked for (a rehearsal; tests of the steps alone).
   */
  lease?: LeaseClaim;
  /** Only a run following a rollback's hold may switch a difusor to a cut older than the one it serves. */
  allowBackwards?: boolean;
  /** publish --latest: a difusor a rollback (of either host) holds on an older cut is left alone (.lease/hold there). */
  respectHolds?: boolean;
  /** A publish by name: the operator moving forward lifts a rollback's hold on each difusor it publishes to. */
  liftHolds?: boolean;
}

/** The cut this host last saw live on a difusor, and that cut's hashes by path (from the manifest it published). */
export interface LastLive {
  cut: string;
  hashes: ReadonlyMap<string, string>;
}

/** Runs fn after ms unless cancelled first; injected so tests drive the deadline without waiting. */
export type After = (ms: number, fn: () => void) => () => void;

const realAfter: After = (ms, fn) => {
  const timer = setTimeout(fn, ms);
  return () => clearTimeout(timer);
};

export const DEFAULT_SWITCH_DEADLINE_MS = 20_000;

export interface PublishPorts {
  connector: DifusorConnector;
  state: PublishStatePort;
  journal?: PublishJournalPort;
  observer?: PublishObserver;
  /** The timer durations and switch moments are measured on (Date.now): it must advance, so never the run's Clock. */
  now?: () => number;
  after?: After;
}

export class StepError extends Error {
  constructor(
    readonly phase: Phase,
    message: string,
    readonly leftAlone?: DifusorOutcome['leftAlone'],
  ) {
    super(message);
  }
}

/**
 * The last lines of a helper's message: where sh and coreutils say what went wrong. The difusor wrote them: escaped
 * (they reach the outcome, the journal and the terminal), at most 200 characters each.
 */
function lastLines(text: string): string {
  return text.trim().split('\n').filter(Boolean).slice(-2).map((line) => printable(line.slice(0, 200))).join(' | ');
}

async function step(
  session: DifusorSession,
  phase: Phase,
  verb: string,
  args: string[],
  opts: { stdin?: string; timeoutMs?: number } = {},
): Promise<HelperOutput> {
  const out = await session.helper(verb, args, opts).catch((error: Error) => {
    throw new StepError(phase, printable(error.message));
  });
  if (out.code !== 0) {
    throw new StepError(phase, `${verb} failed (exit ${out.code}): ${lastLines(out.stderr || out.stdout) || 'no message'}`);
  }
  return out;
}

interface Staged {
  difusor: Difusor;
  session: DifusorSession;
  outcome: DifusorOutcome;
  startedAt: number;
  needsSwitch: boolean;
  /** An early transfer was stopped for this one: its incoming directory may be left until the prune. */
  stoppedEarly: boolean;
  /** This run's lease on the difusor, released once the switch and the prune are done. */
  lease?: HeldLease;
}

export async function runPool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}

function blankOutcome(d: Difusor, cut: string): DifusorOutcome {
  return {
    id: d.id,
    name: d.name,
    result: 'failed',
    cut,
    filesToSend: 0,
    bytesToSend: 0,
    filesLinked: 0,
    filesSent: 0,
    bytesSent: 0,
    seconds: 0,
  };
}

/** How a difusor's session is opened: rsync's connection alongside only where a transfer is likely. */
export function openOptions(req: Pick<PublishRequest, 'dryRun' | 'likelyLive'>, d: Difusor): Required<OpenOptions> {
  return { expectTransfer: !req.dryRun && !req.likelyLive?.has(d.id) };
}

/**
 * Opens these difusores' sessions now, before the cut's manifest is built, so the handshakes (the slowest
 * part of starting over a real network) overlap the hashing. The connector it returns hands each one out
 * once, to whoever opens that difusor first; dispose closes those never handed out (a cut refused after
 * connecting), then the connector itself.
 */
export function openAhead(
  connector: DifusorConnector,
  difusores: Difusor[],
  optsFor: (d: Difusor) => OpenOptions,
): DifusorConnector {
  const pending = new Map<string, Promise<DifusorSession>>();
  for (const d of difusores) {
    const session = connector.open(d, optsFor(d));
    // A difusor that cannot be reached is told when its session is asked for, not as an unhandled rejection.
    session.catch(() => undefined);
    pending.set(d.id, session);
  }
  return {
    open: (d, opts) => {
      const session = pending.get(d.id);
      if (!session) return connector.open(d, opts);
      pending.delete(d.id);
      return session;
    },
    dispose: async () => {
      const unused = [...pending.values()];
      pending.clear();
      for (const session of await Promise.all(unused.map((s) => s.catch(() => undefined)))) session?.close();
      await connector.dispose();
    },
  };
}

/** Stage one difusor up to "ready to switch". Never throws: a failure becomes the outcome. */
async function stageOne(req: PublishRequest, ports: PublishPorts, d: Difusor): Promise<Staged | DifusorOutcome> {
  const a = beginAttempt(req, ports, d);
  try {
    const session = await connect(a);
    // Where this host last saw the cut live (cron's no-op), a read-only look first: nothing to write, no lease.
    const alreadyLive = await lookBeforeLease(a, session);
    if (alreadyLive) return alreadyLive;
    await holdLease(a, session);
    const { report, plan } = await prepareAndPlan(a, session);
    refuseBackwards(a, report);
    await refuseOrLiftHold(a, session, report);
    if (req.dryRun) return await endPlanned(a, session, plan);
    // Sent on a guess the plan makes useless: stopped; the prune after the switch (or below, when there is no
    // switch) clears what it left.
    if (a.early && (plan.kind !== 'new-release' || report.staged !== req.cut)) await a.early.stop();
    if (plan.kind === 'up-to-date') return await endUpToDate(a, session);
    if (plan.kind === 'switch-only') {
      await holdWhereMovedBack(a, session, report);
      observe(a, 'ready', 'already staged');
      return { difusor: d, session, outcome: a.outcome, startedAt: a.startedAt, needsSwitch: true, stoppedEarly: a.early !== undefined, lease: a.lease };
    }
    checkFreeDisk(a, plan, report);
    await readyStaging(a, session, plan, report);
    const sent = await sendToStaging(a, session, plan);
    await verifyStaging(a, session, sent);
    await promote(a, session, plan, report);
    await holdWhereMovedBack(a, session, report);
    observe(a, 'ready');
    await recordStaged(a, plan, report, sent);
    return { difusor: d, session, outcome: a.outcome, startedAt: a.startedAt, needsSwitch: report.live !== req.cut, stoppedEarly: false, lease: a.lease };
  } catch (error) {
    return await endFailed(a, error);
  }
}

/** One difusor's staging as it goes: where it stands, and what a failure must know to clean up and say where it stopped. */
interface Attempt {
  req: PublishRequest;
  ports: PublishPorts;
  d: Difusor;
  now: () => number;
  startedAt: number;
  outcome: DifusorOutcome;
  phase: Phase;
  session?: DifusorSession;
  lease?: HeldLease;
  early?: EarlyTransfer;
  /** Whether this run may have written into the difusor's staging: then a failure discards it before the session closes. */
  wrote: boolean;
  expectTransfer: boolean;
  signed: boolean;
  progress?: (bytes: number, percent: number) => void;
}

function beginAttempt(req: PublishRequest, ports: PublishPorts, d: Difusor): Attempt {
  const now = ports.now ?? Date.now;
  return {
    req,
    ports,
    d,
    now,
    startedAt: now(),
    outcome: blankOutcome(d, req.cut),
    phase: 'connecting',
    wrote: false,
    expectTransfer: openOptions(req, d).expectTransfer,
    signed: req.signature !== undefined,
    progress: ports.observer?.progress ? (bytes: number, percent: number) => ports.observer?.progress?.(d.id, bytes, percent) : undefined,
  };
}

function observe(a: Attempt, phase: Phase, detail?: string): void {
  a.ports.observer?.phase(a.d.id, phase, detail);
}

function enter(a: Attempt, phase: Phase, detail?: string): void {
  a.phase = phase;
  observe(a, phase, detail);
}

function secondsSinceStart(a: Attempt): number {
  return (a.now() - a.startedAt) / 1000;
}

async function connect(a: Attempt): Promise<DifusorSession> {
  observe(a, 'connecting');
  a.session = await a.ports.connector.open(a.d, { expectTransfer: a.expectTransfer }).catch((error: Error) => {
    throw new StepError('connecting', error.message);
  });
  return a.session;
}

/**
 * One run at a time on a difusor, whichever host: its lease before anything is written there. Another run's live
 * lease leaves the difusor alone, naming the holder; an expired one taken over is journaled.
 */
async function holdLease(a: Attempt, session: DifusorSession): Promise<void> {
  const claim = a.req.lease;
  if (!claim || a.req.dryRun) return;
  try {
    a.lease = await takeLease(session, claim, { difusor: a.d.id });
  } catch (error) {
    if (error instanceof LeaseHeldError) throw new StepError('connecting', error.message, 'held');
    throw new StepError('connecting', (error as Error).message);
  }
  if (a.lease.takenOver) {
    await a.ports.journal?.record({ difusor: a.d.id, cut: a.req.cut, phase: 'lease-takeover', result: 'info', detail: takeoverDetail(claim.host, a.lease.takenOver) });
  }
}

/**
 * cron's no-op asks `inspect` (which writes nothing) rather than taking the lease and preparing: a difusor already
 * serving the cut whole is up to date, and another host's run there is not disturbed. Anything else (a file to
 * repair, another cut live) goes on to the lease and prepare.
 */
async function lookBeforeLease(a: Attempt, session: DifusorSession): Promise<DifusorOutcome | undefined> {
  const { req } = a;
  if (!req.lease || req.dryRun || a.expectTransfer) return undefined;
  enter(a, 'preparing');
  const report = parsePrepare((await step(session, a.phase, 'inspect', [req.cut])).stdout, { verb: 'inspect', difusor: a.d.id });
  // A hold to lift is lifted under the lease.
  if (report.live !== req.cut || (req.liftHolds && report.hold)) return undefined;
  const baseHashes = report.base ? await a.ports.state.manifestHashes(report.base, report.baseManifestDigest) : undefined;
  const plan = planTransfer({ cut: req.cut, manifest: req.manifest, report, baseHashes, signed: a.signed });
  if (plan.kind !== 'up-to-date') return undefined;
  a.outcome.previous = report.live;
  a.outcome.plan = plan.kind;
  a.outcome.filesLinked = plan.linked;
  return await endUpToDate(a, session);
}

/** Never backwards by accident: prepare said what is live, and the lease keeps it so until this run's switch. */
function refuseBackwards(a: Attempt, report: PrepareReport): void {
  const newer = newerCutLive(a.req.cut, report.live);
  if (!newer) return;
  if (!a.req.allowBackwards) throw new StepError('preparing', newer, 'newer-live');
  const lifted = holdLiftedThere(a.req.cut, report.lifted);
  if (lifted) throw new StepError('preparing', `${newer}; ${lifted}`, 'newer-live');
}

/**
 * A difusor the rollback could not reach, moved back now by this host's --latest following its rollback hold, gets
 * the hold on the difusor too (under this run's lease, once the release is there and before the switch: the helper
 * holds a difusor only on a release it has), as if the rollback had reached it: else the other host's cron would
 * move it forward again. Where it cannot be recorded (a helper older
 * than protocol 5) the difusor still goes back, and its outcome says so (exit 3), as rollback's does.
 */
async function holdWhereMovedBack(a: Attempt, session: DifusorSession, report: PrepareReport): Promise<void> {
  const { req } = a;
  if (!req.allowBackwards || !req.lease || req.dryRun || !newerCutLive(req.cut, report.live)) return;
  if (report.hold?.cut === req.cut) return;
  const why = await holdThere(session, req.cut, req.lease);
  if (why) {
    a.outcome.holdNotRecorded = why;
    // Said where every outcome's trouble is said; a failure further on replaces it (the difusor then stays forward).
    a.outcome.error = holdNotRecorded(why);
    await a.ports.journal?.record({ difusor: a.d.id, cut: req.cut, phase: 'rollback-hold', result: 'failed', error: why, detail: { cut: req.cut, host: req.lease.host } });
    return;
  }
  await a.ports.journal?.record({ difusor: a.d.id, cut: req.cut, phase: 'rollback-hold', result: 'info', detail: { held: req.cut, from: report.live, host: req.lease.host } });
}

/**
 * A rollback's hold lives on the difusor, where both publication hosts see it: cron's --latest leaves a difusor held
 * on an older cut alone (exit 3, naming the hold); a publish by name lifts it there, under this run's lease, before
 * anything is staged (the operator moves forward: should this run fail there, the next run of either host goes on).
 */
async function refuseOrLiftHold(a: Attempt, session: DifusorSession, report: PrepareReport): Promise<void> {
  const { req } = a;
  if (!report.hold) return;
  if (req.respectHolds) {
    const held = heldByRollback(req.cut, report.live, report.hold);
    if (held) throw new StepError('preparing', held, 'rollback-hold');
  }
  if (req.liftHolds && req.lease && !req.dryRun) {
    await step(session, a.phase, 'hold', ['clear', req.lease.host, req.lease.run]);
    await a.ports.journal?.record({ difusor: a.d.id, cut: req.cut, phase: 'rollback-hold', result: 'info', detail: { lifted: report.hold.cut, heldBy: report.hold.host, host: req.lease.host } });
  }
}

/** Asks the difusor what it serves and holds (a real run also has it build the staging), and plans the transfer. */
async function prepareAndPlan(a: Attempt, session: DifusorSession): Promise<{ report: PrepareReport; plan: TransferPlan }> {
  const { req, outcome } = a;
  enter(a, 'preparing');
  // The transfer need not wait for prepare's answer: what changed since the cut last seen live there is most
  // likely what the staging will lack. A wrong guess only sends correct files for nothing (and the rest after).
  const guessed = a.expectTransfer && req.incoming !== undefined ? guessSend(req.manifest, req.lastLive?.get(a.d.id)) : [];
  if (guessed.length > 0) {
    a.wrote = true;
    a.early = sendEarly(session, req, guessed, a.progress);
  }
  // prepare --stage builds the new release's staging; one that fails may have built part of it.
  if (!req.dryRun && a.expectTransfer) a.wrote = true;
  // A real run hands prepare the new manifest, so a new release's staging is linked in the same round trip;
  // not where the cut is likely live already (cron's no-op), which would carry the manifest for nothing.
  const prepared = req.dryRun
    ? await step(session, a.phase, 'inspect', [req.cut])
    : a.expectTransfer
      ? await step(session, a.phase, 'prepare', [req.cut, '--stage', ...(a.early ? ['--incoming', req.incoming as string] : [])], {
          stdin: manifestInput(req),
        })
      : await step(session, a.phase, 'prepare', [req.cut]);
  const report = parsePrepare(prepared.stdout, { verb: req.dryRun ? 'inspect' : 'prepare', difusor: a.d.id });
  outcome.previous = report.live;
  a.wrote = a.early !== undefined || report.staged === req.cut;
  const baseHashes = report.base ? await a.ports.state.manifestHashes(report.base, report.baseManifestDigest) : undefined;
  const plan: TransferPlan = planTransfer({ cut: req.cut, manifest: req.manifest, report, baseHashes, signed: a.signed });
  outcome.plan = plan.kind;
  outcome.filesToSend = plan.send.length;
  outcome.bytesToSend = plan.bytesToSend;
  outcome.filesLinked = plan.linked;
  return { report, plan };
}

/** A rehearsal ends at the plan. */
async function endPlanned(a: Attempt, session: DifusorSession, plan: TransferPlan): Promise<DifusorOutcome> {
  a.outcome.result = 'planned';
  a.outcome.seconds = secondsSinceStart(a);
  observe(a, 'planned', describePlan(plan));
  await a.ports.journal?.record({
    difusor: a.d.id,
    cut: a.req.cut,
    phase: 'plan',
    result: 'info',
    detail: { plan: plan.kind, filesToSend: plan.send.length, bytesToSend: plan.bytesToSend, filesLinked: plan.linked },
  });
  await a.lease?.release();
  session.close();
  return a.outcome;
}

async function endUpToDate(a: Attempt, session: DifusorSession): Promise<DifusorOutcome> {
  a.outcome.result = 'up-to-date';
  a.outcome.seconds = secondsSinceStart(a);
  observe(a, 'up-to-date');
  await a.ports.journal?.record({ difusor: a.d.id, cut: a.req.cut, phase: 'check', result: 'skipped', detail: { reason: 'already live' } });
  // An early transfer stopped here left its incoming directory: not for the next run to find.
  if (a.early) await prune(session, a.d, a.req, a.ports);
  await a.lease?.release();
  session.close();
  return a.outcome;
}

function checkFreeDisk(a: Attempt, plan: TransferPlan, report: PrepareReport): void {
  // What the guess sends may already be on disk when prepare reads the free space: only the rest must fit
  // for sure. If the guess does not fit after all, rsync fails on the full disk and the difusor keeps its cut.
  const stillToLand = a.early?.running ? beyondGuess(plan.send, a.early.files).reduce((n, e) => n + e.size, 0) : plan.bytesToSend;
  if (report.freeKb !== undefined && stillToLand > report.freeKb * 1024) {
    throw new StepError(
      'preparing',
      `not enough free disk: ${Math.ceil(stillToLand / 1024)} KB to send, ${report.freeKb} KB free under ${a.d.path}`,
    );
  }
}

/** The staging prepare built holds nothing the cut does not; or, where it built none, one is linked now. */
async function readyStaging(a: Attempt, session: DifusorSession, plan: TransferPlan, report: PrepareReport): Promise<void> {
  const { req } = a;
  if (report.staged === req.cut) {
    const strangers = strangersInStaging(req.manifest, report, a.signed);
    if (strangers.length > 0) {
      throw new StepError('preparing', `the staging prepare built holds what the cut does not: ${strangers.slice(0, 5).join('; ')}`);
    }
    return;
  }
  // A release repaired in place (or a helper that does not stage): the staging is linked from it first.
  enter(a, 'linking', `${plan.linked} unchanged files`);
  a.wrote = true;
  await step(session, a.phase, 'link', [req.cut, plan.base ?? '-'], { stdin: linkInput(plan, req) });
}

async function sendToStaging(a: Attempt, session: DifusorSession, plan: TransferPlan): Promise<Sent> {
  // rsync writes straight into the staging (or this run's incoming directory, when it started early): each file it
  // sends replaces, by a rename, whatever linked file was there, so the live release's inodes are never written.
  enter(a, 'staging', `${plan.send.length} files`);
  a.wrote = true;
  const sent = await sendMissing(session, a.req, plan, a.early?.running ? a.early : undefined, a.progress);
  a.outcome.filesSent = sent.filesSent;
  a.outcome.bytesSent = sent.bytesSent;
  return sent;
}

/** sha256sum on the difusor over every file sent, the signature's check there, and the staging's inventory against the manifest. */
async function verifyStaging(a: Attempt, session: DifusorSession, sent: Sent): Promise<void> {
  const { req } = a;
  enter(a, 'verifying');
  // Every file sent is checked: those sent early on the guess too, which the merge puts over linked ones.
  const checks = manifestText(sent.files) + manifestText([{ path: MANIFEST_NAME, sha256: sha256Hex(req.manifest.text) }]);
  const verifyArgs = sent.onGuess > 0 ? [req.cut, '--incoming', req.incoming as string] : [req.cut];
  const verified = parseVerify((await step(session, a.phase, 'verify', verifyArgs, { stdin: checks })).stdout);
  if (verified.checkExit !== 0) {
    const failed = verified.failures.slice(0, 5).join('; ');
    throw new StepError(a.phase, `sha256sum found ${verified.failures.length} bad file(s) in staging: ${failed}`);
  }
  if (verified.signature === 'bad' || verified.signature === 'missing') {
    throw new StepError(a.phase, `the difusor's check of MANIFEST.sha256.sig says ${verified.signature}: the manifest is not signed by the key it trusts`);
  }
  a.outcome.signatureCheck = verified.signature;
  const problems = checkInventory(req.manifest, verified, a.signed);
  if (problems.length > 0) {
    throw new StepError(a.phase, `staging differs from the manifest: ${problems.slice(0, 5).join('; ')}`);
  }
}

/** Moves the verified staging to releases/<cut>; a repair in place names what it changes and what it deletes. */
async function promote(a: Attempt, session: DifusorSession, plan: TransferPlan, report: PrepareReport): Promise<void> {
  const { req, signed } = a;
  const keep = new Set([...req.manifest.entries.map((e) => e.path), MANIFEST_NAME, ...(signed ? [SIGNATURE_NAME] : [])]);
  const promoteLines =
    plan.kind === 'repair'
      ? [
          ...[...plan.send.map((e) => e.path), MANIFEST_NAME, ...(signed ? [SIGNATURE_NAME] : [])].map((p) => `M ${p}\n`),
          ...[...report.files.keys(), ...report.others].filter((p) => !keep.has(p)).map((p) => `D ${p}\n`),
        ]
      : [];
  await step(session, a.phase, 'promote', [req.cut], { stdin: promoteLines.join('') });
}

async function recordStaged(a: Attempt, plan: TransferPlan, report: PrepareReport, sent: Sent): Promise<void> {
  const { req, outcome } = a;
  await a.ports.journal?.record({
    difusor: a.d.id,
    cut: req.cut,
    phase: 'stage',
    result: 'ok',
    bytes: outcome.bytesSent,
    seconds: round(a.now() - a.startedAt),
    detail: {
      plan: plan.kind,
      base: plan.base,
      filesSent: outcome.filesSent,
      filesLinked: plan.linked,
      previous: report.live,
      // Sent while prepare ran, on the guess of what changed since the cut last seen live there.
      ...(sent.onGuess > 0 ? { sentOnGuess: sent.onGuess, guessedFrom: req.lastLive?.get(a.d.id)?.cut } : {}),
      ...(outcome.signatureCheck ? { signatureCheck: outcome.signatureCheck } : {}),
    },
  });
}

/** A failure: what this run wrote into the staging is discarded, the session closed, and the outcome says where it stopped. */
async function endFailed(a: Attempt, error: unknown): Promise<DifusorOutcome> {
  const { req, ports, d, outcome } = a;
  // Never a transfer left running behind a failure: stopped and settled before the session closes.
  await a.early?.stop();
  const message = error instanceof Error ? error.message : String(error);
  const discarded = a.wrote ? await discardFailed(ports, d, a.session, discardArgs(req, a.early !== undefined), message, outcome, a.lease) : {};
  // Freed by the discard where there was one (over whichever connection it went); here otherwise, unless the
  // link went silent: then it is left to expire (and this host's next run takes it over at once).
  if (linkWentSilent(message)) a.lease?.abandon();
  else await a.lease?.release();
  a.session?.close();
  outcome.result = 'failed';
  if (error instanceof StepError && error.leftAlone) outcome.leftAlone = error.leftAlone;
  outcome.failedPhase = error instanceof StepError ? error.phase : a.phase;
  outcome.error = withHelperHint(d, message);
  outcome.seconds = secondsSinceStart(a);
  observe(a, 'failed', outcome.error);
  await ports.journal?.record({
    difusor: d.id,
    cut: req.cut,
    phase: outcome.failedPhase,
    result: 'failed',
    bytes: outcome.bytesSent,
    seconds: outcome.seconds,
    error: outcome.error,
    detail: { previous: outcome.previous, ...discarded, ...(outcome.leftAlone ? { leftAlone: outcome.leftAlone, host: req.lease?.host } : {}) },
  });
  return outcome;
}

/**
 * A restricted difusor runs the helper its admin installed: one from an older difusion refuses what this one
 * asks, and the operator should hear where the fix is, not only the refusal.
 */
export function withHelperHint(d: Difusor, message: string): string {
  if (d.access !== 'restricted' || !message.includes('difusion-helper: refused')) return message;
  return `${message} (the helper installed there may be older than this difusion: \`difusion preflight\` checks it; \`difusion onboard ${d.id}\` prints the one to install)`;
}

/** What changed since the cut last seen live on a difusor: what its staging will most likely lack. */
export function guessSend(manifest: Manifest, last: LastLive | undefined): Manifest['entries'] {
  if (!last) return [];
  return manifest.entries.filter((e) => last.hashes.get(e.path) !== e.sha256);
}

/** What is to be sent that the early transfer is not sending. */
function beyondGuess(send: Manifest['entries'], onGuess: Manifest['entries']): Manifest['entries'] {
  const guessed = new Set(onGuess.map((e) => e.path));
  return send.filter((e) => !guessed.has(e.path));
}

interface EarlyTransfer {
  /** What it sends: the guess. */
  files: Manifest['entries'];
  /** Settles with the transfer's figures, or rejects with a StepError of phase staging. */
  result: Promise<{ filesSent: number; bytesSent: number }>;
  /** False once stopped: what it sent is not used. */
  running: boolean;
  stop(): Promise<void>;
}

function sendEarly(
  session: DifusorSession,
  req: PublishRequest,
  files: Manifest['entries'],
  onProgress: ((bytes: number, percent: number) => void) | undefined,
): EarlyTransfer {
  const abort = new AbortController();
  const result = session
    .transfer(req.cutDir, req.cut, files.map((e) => e.path), onProgress, { incoming: req.incoming, signal: abort.signal })
    .catch((error: Error) => {
      throw new StepError('staging', error.message);
    });
  // Awaited where it is used; a failure before then is not an unhandled rejection.
  result.catch(() => undefined);
  const early: EarlyTransfer = {
    files,
    result,
    running: true,
    stop: async () => {
      if (!early.running) return;
      early.running = false;
      abort.abort();
      await result.catch(() => undefined);
    },
  };
  return early;
}

interface Sent {
  /** Every file sent, whose sums verify checks. */
  files: Manifest['entries'];
  /** How many of them were sent on the guess, into the incoming directory verify merges. */
  onGuess: number;
  filesSent: number;
  bytesSent: number;
}

/**
 * Sends what the staging lacks: first lets the early transfer finish (what it sent counts, even where the
 * staging had the file linked already), then the rest, into the same incoming directory when there was one.
 */
async function sendMissing(
  session: DifusorSession,
  req: PublishRequest,
  plan: TransferPlan,
  early: EarlyTransfer | undefined,
  onProgress: ((bytes: number, percent: number) => void) | undefined,
): Promise<Sent> {
  const sent: Sent = { files: [], onGuess: 0, filesSent: 0, bytesSent: 0 };
  const count = (r: { filesSent: number; bytesSent: number }): void => {
    sent.filesSent += r.filesSent;
    sent.bytesSent += r.bytesSent;
  };
  if (early) {
    count(await early.result);
    sent.files.push(...early.files);
    sent.onGuess = early.files.length;
  }
  // Only after the early transfer ended: two rsyncs into one incoming directory would race on its parents.
  const rest = beyondGuess(plan.send, sent.files);
  if (rest.length > 0) {
    const into = early ? { incoming: req.incoming } : {};
    count(
      await session.transfer(req.cutDir, req.cut, rest.map((e) => e.path), onProgress, into).catch((error: Error) => {
        throw new StepError('staging', error.message);
      }),
    );
    sent.files.push(...rest);
  }
  return sent;
}

/** prepare --stage's stdin: the manifest and its signature under their marker lines. */
export function manifestInput(req: Pick<PublishRequest, 'manifest' | 'signature'>): string {
  return linkInput({ drop: [] }, req);
}

/** link's stdin: the paths to drop from the linked copy, then the manifest and its signature under their marker lines. */
export function linkInput(plan: Pick<TransferPlan, 'drop'>, req: Pick<PublishRequest, 'manifest' | 'signature'>): string {
  // The difusor's inventory never yields such a path; one would be read as a marker or split in two.
  const unsafe = plan.drop.find((p) => p.startsWith('/') || p.includes('\n'));
  if (unsafe !== undefined) throw new StepError('linking', `cannot drop ${JSON.stringify(unsafe)}: not a relative path on one line`);
  return [
    ...plan.drop.map((p) => `${p}\n`),
    `/${MANIFEST_NAME}\n`,
    req.manifest.text,
    ...(req.signature !== undefined ? [`/${SIGNATURE_NAME}\n`, `${req.signature}\n`] : []),
  ].join('');
}

function round(ms: number): number {
  return Math.round(ms) / 1000;
}

function describePlan(plan: TransferPlan): string {
  if (plan.kind === 'up-to-date') return 'already live';
  if (plan.kind === 'switch-only') return 'switch only';
  return `${plan.kind}: send ${plan.send.length} files (${plan.bytesToSend} bytes), link ${plan.linked}`;
}

async function switchOne(staged: Staged, req: PublishRequest, ports: PublishPorts, groupAt: number | undefined): Promise<void> {
  const now = ports.now ?? Date.now;
  const { difusor: d, session, outcome } = staged;
  const lateBy = (t: number): number => (groupAt === undefined ? 0 : Math.max(0, round(t - groupAt)));
  try {
    if (staged.needsSwitch) {
      ports.observer?.phase(d.id, 'switching', groupAt === undefined ? undefined : `alone, ${lateBy(now()).toFixed(1)} s after the others`);
      // A lease lost meanwhile (a renewal that found another holder) never switches.
      await staged.lease?.confirm().catch((error: Error) => {
        throw new StepError('switching', error.message, 'held');
      });
      const out = await step(session, 'switching', 'switch', [req.cut, ...(req.liftNotice ? ['--lift-notice'] : [])]);
      outcome.switchedAt = now();
      // Confirm with readlink what Apache will now serve.
      if (out.stdout.trim() !== `live releases/${req.cut}`) {
        throw new StepError('switching', `current points to ${out.stdout.trim() || 'nothing'} after the switch`);
      }
    }
    outcome.result = 'live';
    outcome.seconds = (now() - staged.startedAt) / 1000;
    outcome.lateSeconds = lateBy(outcome.switchedAt ?? now());
    ports.observer?.phase(d.id, 'live', outcome.lateSeconds > 0 ? `${outcome.lateSeconds.toFixed(1)} s after the others` : undefined);
    await ports.journal?.record({
      difusor: d.id,
      cut: req.cut,
      phase: 'switch',
      result: 'ok',
      seconds: outcome.seconds,
      detail: {
        from: outcome.previous ?? null,
        switched: staged.needsSwitch,
        lateSeconds: outcome.lateSeconds,
        ...(outcome.switchedAt !== undefined ? { switchedAt: new Date(outcome.switchedAt).toISOString() } : {}),
      },
    });
  } catch (error) {
    outcome.result = 'failed';
    outcome.failedPhase = 'switching';
    outcome.error = error instanceof Error ? error.message : String(error);
    if (error instanceof StepError && error.leftAlone) outcome.leftAlone = error.leftAlone;
    // The release stays (a rerun switches to it at once); only what a stopped early transfer left in staging goes.
    const discarded = staged.stoppedEarly ? await discardFailed(ports, d, session, discardArgs(req, true), outcome.error, outcome) : {};
    outcome.seconds = (now() - staged.startedAt) / 1000;
    ports.observer?.phase(d.id, 'failed', outcome.error);
    await ports.journal?.record({
      difusor: d.id,
      cut: req.cut,
      phase: 'switch',
      result: 'failed',
      seconds: outcome.seconds,
      error: outcome.error,
      detail: { previous: outcome.previous, ...discarded },
    });
  }
}

/** The helper's discard arguments for what this run may have written: its cut's staging, and its incoming directory. */
function discardArgs(req: PublishRequest, early: boolean): string[] {
  return [req.cut, ...(early && req.incoming !== undefined ? [req.incoming] : [])];
}

/** Frees what a failed difusor's run wrote into its staging; the journal's failure entry says what became of it. */
async function discardFailed(
  ports: PublishPorts,
  d: Difusor,
  session: DifusorSession | undefined,
  args: string[],
  failure: string,
  outcome: DifusorOutcome,
  lease?: HeldLease,
): Promise<Record<string, unknown>> {
  // The lease goes with the staging, over the same connection; where none reaches the difusor, it expires there.
  const result = await discardStaging(ports.connector, d, session, args, failure, lease);
  if (result.error !== undefined) {
    outcome.stagingLeft = result.error;
    return { stagingLeft: result.error };
  }
  return { discarded: result.removed, ...(result.reconnected ? { discardedOver: 'a new connection' } : {}) };
}

/** Each discard step: a few rm -rf and at most ten seconds of the helper waiting on a stopped receiver. */
const DISCARD_STEP_TIMEOUT_MS = 15_000;
/** A new connection to discard over, when the run's own died: bounded, so a failure ends the run soon anyway. */
const DISCARD_RECONNECT_MS = 20_000;

export interface DiscardResult {
  /** What the helper removed, relative to .staging. */
  removed: string[];
  /** Set when the staging could not be freed: why. */
  error?: string;
  reconnected?: boolean;
}

/**
 * A link that went silent rarely answers a new connection at once: waiting for one would only hold the run up.
 * One reset or closed (a cut link, sshd restarted) usually does.
 */
function linkWentSilent(message: string): boolean {
  return /keepalive|went silent|not responding|timed out|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH/i.test(message);
}

/**
 * Discards what a failed run wrote into a difusor's staging (`discard` ARGS: a cut and its incoming token, or
 * `--notice STAMP`), over the run's own session, or over a new short one when that one is gone. Never throws:
 * a staging left behind is said in the result, and the next run's prepare clears it.
 */
export async function discardStaging(
  connector: DifusorConnector,
  d: Difusor,
  session: DifusorSession | undefined,
  args: string[],
  failure: string,
  lease?: Pick<HeldLease, 'release' | 'abandon'>,
): Promise<DiscardResult> {
  const discardOver = async (s: DifusorSession): Promise<DiscardResult> => {
    const out = await s.helper('discard', args, { timeoutMs: DISCARD_STEP_TIMEOUT_MS });
    if (out.code !== 0) return { removed: [], error: `discard failed (exit ${out.code}): ${lastLines(out.stderr || out.stdout) || 'no message'}` };
    return { removed: out.stdout.split('\n').filter((l) => l.startsWith('discarded ')).map((l) => l.slice(10)) };
  };
  let lost = failure;
  if (session) {
    try {
      const result = await discardOver(session);
      await lease?.release(session);
      return result;
    } catch (error) {
      lost = error instanceof Error ? error.message : String(error);
    }
  }
  if (linkWentSilent(lost) || linkWentSilent(failure)) {
    lease?.abandon();
    return { removed: [], error: `the link to ${d.id} is down (${lost})` };
  }
  let timer: NodeJS.Timeout | undefined;
  const opening = connector.open(d, { expectTransfer: false });
  try {
    const fresh = await Promise.race([
      opening,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no new connection within ${DISCARD_RECONNECT_MS / 1000} s`)), DISCARD_RECONNECT_MS);
      }),
    ]);
    try {
      const result = { ...(await discardOver(fresh)), reconnected: true };
      await lease?.release(fresh);
      return result;
    } finally {
      fresh.close();
    }
  } catch (error) {
    // One that opens after all is closed at once.
    opening.then((s) => s.close()).catch(() => undefined);
    lease?.abandon();
    return { removed: [], error: `could not reach ${d.id} again to free its staging: ${error instanceof Error ? error.message : String(error)}` };
  } finally {
    clearTimeout(timer);
  }
}

/** Pruning only frees disk (old releases, what a stopped transfer left); a failure here never undoes a publication. */
async function prune(session: DifusorSession, d: Difusor, req: PublishRequest, ports: PublishPorts): Promise<void> {
  const pruned = await session.helper('prune', [String(req.keepReleases)]).catch(() => undefined);
  const removed = (pruned?.stdout ?? '').split('\n').filter((l) => l.startsWith('pruned ')).map((l) => l.slice(7));
  if (removed.length > 0) {
    await ports.journal?.record({ difusor: d.id, cut: req.cut, phase: 'prune', result: 'ok', detail: { removed } });
  }
}

/** Then the session is done. */
async function pruneAndClose(s: Staged, req: PublishRequest, ports: PublishPorts): Promise<void> {
  if (s.outcome.result === 'live') await prune(s.session, s.difusor, req, ports);
  // After the prune: it clears incoming directories in .staging, which another host's run must not have yet.
  if (s.outcome.error && linkWentSilent(s.outcome.error)) s.lease?.abandon();
  else await s.lease?.release();
  s.session.close();
}

/** A difusor left alone (another run's lease, a newer cut live) is partial, never the run's failure: exit 3. */
export function exitCodeFor(outcomes: Array<Pick<DifusorOutcome, 'result' | 'leftAlone' | 'holdNotRecorded'>>): 0 | 1 | 3 {
  const failed = outcomes.filter((o) => o.result === 'failed');
  // A difusor moved back whose hold is not recorded there is live, but the other host's cron could undo it: said.
  if (failed.length === 0) return outcomes.some((o) => o.holdNotRecorded !== undefined) ? 3 : 0;
  return failed.length === outcomes.length && failed.some((o) => !o.leftAlone) ? 1 : 3;
}

export async function publishCut(req: PublishRequest, ports: PublishPorts): Promise<PublishReport> {
  const now = ports.now ?? Date.now;
  const after = ports.after ?? realAfter;
  for (const d of req.targets) ports.observer?.phase(d.id, 'waiting');
  const results = new Map<string, Staged | DifusorOutcome>();

  const waiting: Staged[] = [];
  const switching: Array<Promise<void>> = [];
  let groupAt: number | undefined;
  let deadlinePassed = false;
  let cancelDeadline: (() => void) | undefined;
  let group: Staged[] = [];
  // Everyone ready switches together, so difusores go live within moments of each other.
  const switchGroup = (): void => {
    if (groupAt !== undefined || waiting.length === 0) return;
    cancelDeadline?.();
    groupAt = now();
    group = waiting.splice(0);
    switching.push(
      Promise.all(group.map((s) => switchOne(s, req, ports, undefined))).then(() =>
        Promise.all(group.map((s) => pruneAndClose(s, req, ports))).then(() => undefined),
      ),
    );
  };
  const onReady = (s: Staged): void => {
    if (groupAt !== undefined) {
      // Past the deadline: this one goes live on its own, now, rather than after the slowest.
      switching.push(switchOne(s, req, ports, groupAt).then(() => pruneAndClose(s, req, ports)));
      return;
    }
    waiting.push(s);
    cancelDeadline ??= after(req.switchDeadlineMs ?? DEFAULT_SWITCH_DEADLINE_MS, () => {
      deadlinePassed = true;
      switchGroup();
    });
  };

  await runPool(req.targets, req.concurrency, async (d) => {
    const r = await stageOne(req, ports, d);
    results.set(d.id, r);
    if ('session' in r) onReady(r);
  });
  switchGroup();
  cancelDeadline?.();
  // Late switches may still be starting while earlier ones finish.
  for (let i = 0; i < switching.length; i++) await switching[i];

  const outcomes = req.targets.map((d) => {
    const r = results.get(d.id) as Staged | DifusorOutcome;
    return 'session' in r ? r.outcome : r;
  });
  const switched = group.map((s) => s.outcome.switchedAt).filter((t): t is number => t !== undefined);
  return {
    cut: req.cut,
    dryRun: req.dryRun,
    outcomes,
    switchSpreadMs: switched.length > 0 ? Math.max(...switched) - Math.min(...switched) : undefined,
    ...(groupAt !== undefined ? { groupSwitchAt: groupAt, deadlinePassed } : {}),
    // A rehearsal that cannot reach a difusor must say so to cron too.
    exitCode: exitCodeFor(outcomes),
  };
}
