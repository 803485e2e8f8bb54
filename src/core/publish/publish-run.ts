import type { KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import type { Difusor, Registry } from '../registry/types.js';
import { scanCut } from './cut.js';
import { cutLibrary } from './cut-library.js';
import { HashCache, buildManifest, type Manifest } from '../shared/manifest.js';
import { parseCutId, newestCut } from '../shared/cut-id.js';
import { checkPublication, formatLocal, type PublicationMode } from '../registry/window.js';
import { acquireLock, currentUser, describeHolder, isLockHeld } from '../records/lock.js';
import {
  openAhead,
  openOptions,
  publishCut,
  type LastLive,
  type PublishObserver,
  type PublishJournalPort,
  type PublishReport,
  type PublishRequest,
} from './publish.js';
import { StateStore } from '../records/state.js';
import { SigningKeyError, loadSigningKey, signManifest } from './signing.js';
import type { DifusorConnector } from '../difusor-port.js';
import type { Clock } from '../clock-port.js';
import type { Journal, JournalContext } from '../records/journal.js';
import { clearHold, readHold, type RollbackHold } from '../records/hold.js';
import { DEFAULT_LEASE_S, isLeaseName, thisHost, type LeaseClaim } from './lease.js';

/**
 * A publish run around the core: which cut, which difusores, the legal window, the lock, the
 * manifest, the journal. Every refusal here happens before anything is sent.
 */

export class RunRefusal extends Error {
  constructor(
    message: string,
    readonly exitCode: 2 | 4 | 5,
    readonly suggestions: string[] = [],
  ) {
    super(message);
    this.name = 'RunRefusal';
  }
}


export interface PublishRunOptions {
  registry: Registry;
  /** A cut directory, or with `latest` the directory holding the cuts. */
  cutArg: string;
  latest: boolean;
  only: string[];
  dryRun: boolean;
  simulacro: boolean;
  /** This publication host's name in leases and the journal; DIFUSION_HOST, else the hostname (lease.ts thisHost). */
  host?: string;
  /** Set by runPublish when --latest stays on a rollback's cut. */
  followsHold?: boolean;
  /** Set by runPublish: the run of this host whose lock it took over (dead), whose leases it takes over at once. */
  replacesRun?: string;
}

export interface PublishRunPorts {
  clock: Clock;
  connect(registry: Registry, targets: Difusor[]): Promise<DifusorConnector>;
  openJournal(stateDir: string, ctx: JournalContext): Promise<Journal>;
  newRunId(): string;
  observer?: PublishObserver;
  /** Told once the cut and its targets are known, before anything is sent (the UI builds its rows). */
  onStart?(info: {
    cut: string;
    cutDir: string;
    targets: Difusor[];
    mode: PublicationMode;
    wouldRefuse?: string;
    files: number;
    bytes: number;
    /** --latest stays on the cut of a rollback. */
    held?: RollbackHold;
  }): void;
  onManifestProgress?(done: number, total: number): void;
  /**
   * Puts back up the notice of suspended difusores whose cutoff could not deliver it (see suspension.ts),
   * under this run's lock and journal, alongside the publish, each under the difusor's lease (this run's claim).
   * Without it, the summary only names them.
   */
  restoreNotices?(registry: Registry, ids: string[], journal: Journal, lease: LeaseClaim): Promise<RestoredNotice[]>;
}

/** A suspended difusor's notice put up again (its stamp), or why it could not be. */
export interface RestoredNotice {
  id: string;
  notice: string;
  error?: string;
  /** Another run holds the difusor's lease: left alone (the error names the holder), the publish exits 3. */
  leftAlone?: 'held';
}

export interface PublishRunResult extends PublishReport {
  run: string;
  mode: PublicationMode;
  clock?: string;
  wouldRefuse?: string;
  targets: string[];
  skipped: Skipped[];
  /** The rollback hold --latest stayed on, or the one a publish by name lifted. */
  held?: RollbackHold;
  holdLifted?: boolean;
}

export function selectTargets(registry: Registry, only: string[]): { targets: Difusor[]; skipped: Array<{ id: string; reason: string }> } {
  const known = new Set(registry.difusores.map((d) => d.id));
  const unknown = only.filter((id) => !known.has(id));
  if (unknown.length > 0) {
    throw new RunRefusal(`unknown difusor ${unknown.map((id) => `"${id}"`).join(', ')} in --only`, 2, [
      `known ids: ${[...known].join(', ')}`,
    ]);
  }
  const chosen = registry.difusores.filter((d) => only.length === 0 || only.includes(d.id));
  return {
    targets: chosen.filter((d) => d.status === 'active'),
    skipped: chosen.filter((d) => d.status !== 'active').map((d) => ({ id: d.id, reason: 'suspended' })),
  };
}

/** A suspension whose notice did not reach the difusor: every run says so until a notice is in place. */
async function noticeMissing(stateDir: string, skip: { id: string; reason: string }): Promise<boolean> {
  return (await new StateStore(stateDir).readRecord(skip.id)).lastResult?.result === NOTICE_FAILED;
}

function noticeNotInPlace(skip: { id: string; reason: string }, how: { tried?: string; dryRun?: boolean } = {}): Skipped {
  const said = how.tried ? ` (tried again: ${how.tried})` : how.dryRun ? ' (a real run tries it again)' : '';
  return { ...skip, reason: `${skip.reason}, but its notice is NOT in place${said}: run difusion cutoff ${skip.id} again`, notice: 'missing' };
}

/** A difusor the run did not publish to, and why; for a suspended one, whether its notice is in place when known. */
export interface Skipped {
  id: string;
  reason: string;
  notice?: 'missing' | 'restored';
}

/** The record a cutoff leaves when its notice did not reach the difusor (see suspension.ts). */
export const NOTICE_FAILED = 'notice-failed';

export async function resolveCut(cutArg: string, latest: boolean): Promise<{ cut: string; cutDir: string }> {
  if (latest) {
    const entries = await readdir(cutArg, { withFileTypes: true }).catch((error: Error) => {
      throw new RunRefusal(`cannot read the cuts directory ${cutArg}: ${error.message}`, 2);
    });
    // A producer writes under another name and renames into place: only finished names match the pattern.
    const cut = newestCut(entries.filter((e) => e.isDirectory()).map((e) => e.name));
    if (!cut) throw new RunRefusal(`no cut in ${cutArg}: no directory named YYYYMMDD_HHMM[_SUFFIX]`, 2);
    return { cut, cutDir: path.resolve(cutArg, cut) };
  }
  const cutDir = path.resolve(cutArg);
  const cut = path.basename(cutDir);
  if (!parseCutId(cut)) {
    throw new RunRefusal(`${cutArg}: a cut directory is named YYYYMMDD_HHMM[_SUFFIX] (e.g. 20220605_2015_PREP_DGO)`, 2);
  }
  return { cut, cutDir };
}

export async function runPublish(opts: PublishRunOptions, ports: PublishRunPorts): Promise<PublishRunResult> {
  const { registry } = opts;
  const publication = registry.publication;
  const { cut, cutDir, hold, held, heldIds } = await cutToPublish(opts);
  const { selected, targets, skipped, missingNotice } = await chooseTargets(opts, hold, heldIds);
  const now = ports.clock.now();
  const decision = refuseOutsideWindow(opts, cut, now);
  const wouldRefuse = 'wouldRefuse' in decision ? decision.wouldRefuse : undefined;
  // Before the lock: a key others can read, or none at all, refuses the run before anything is sent.
  const signingKey = await loadSigningKeyOrRefuse(publication.signing_key);

  const run = ports.newRunId();
  const command = commandLine(opts);
  const operator = `${currentUser()}@${hostname()}`;
  const host = opts.host ?? hostOrRefuse();
  const lock = await lockOrRefuse(publication.state_dir, run, command);
  try {
    const journal = await ports.openJournal(publication.state_dir, { run, operator, host, command, clock: ports.clock });
    await journalStart(journal, lock, { cut, mode: decision.mode, at: formatLocal(now, publication.timezone), targets, held, host });
    // Cuts another host published (the alternate site) are learned from this host's own copy of them.
    const state = new StateStore(publication.state_dir, cutLibrary(path.dirname(cutDir), { hashCacheFile: path.join(publication.state_dir, 'hash-cache') }));
    const { likelyLive, lastLive } = await lastSeenLive(state, targets, cut);
    // The first sessions connect while the cut is scanned and hashed; a cut refused below closes them unused.
    const connector = openAhead(await ports.connect(registry, targets), targets.slice(0, publication.concurrency), (d) =>
      openOptions({ dryRun: opts.dryRun, likelyLive }, d),
    );
    const { manifest, signature } = await closingOnFailure(connector, () =>
      signedManifest(state, cut, cutDir, signingKey, opts.dryRun, ports),
    );
    const files = manifest.entries.length;
    ports.onStart?.({ cut, cutDir, targets, mode: decision.mode, wouldRefuse, files, bytes: manifest.totalBytes, held });

    const request = publishRequest({ ...opts, host, followsHold: held !== undefined && !held.difusores, replacesRun: deadRunOf(lock) }, run, { cut, cutDir, manifest, signature, targets, likelyLive, lastLive });
    // The notices go alongside the cut, so a suspended difusor that is still down delays no one's switch.
    const restoring = restoreMissingNotices(opts, ports, missingNotice, journal, request.lease);
    let report: PublishReport;
    let restored: RestoredNotice[];
    try {
      report = await publishThenClose(connector, request, { state, observer: ports.observer, journal });
      // What the difusores serve is recorded before waiting on a notice: a kill meanwhile loses neither.
      if (!opts.dryRun) await recordOutcomes(state, cut, report, ports.clock);
    } finally {
      // Never left running behind the lock's release, whatever happened above.
      restored = await restoring;
    }
    sayWhatBecameOfNotices(skipped, selected.skipped, restored);
    const holdLifted = await liftHoldWhenMovingForward(opts, hold, report, journal, cut);
    // A notice left alone for another run's lease on its difusor is partial, as a difusor held is: exit 3.
    const exitCode = report.exitCode === 0 && restored.some((r) => r.leftAlone) ? 3 : report.exitCode;
    await journal.append({ cut, phase: 'end', result: exitCode === 0 ? 'ok' : 'failed', detail: { exitCode } });
    return {
      ...report,
      exitCode,
      run,
      mode: decision.mode,
      clock: ports.clock.fromEnv ? ports.clock.setting : undefined,
      wouldRefuse,
      targets: targets.map((d) => d.id),
      skipped,
      ...(held ? { held } : holdLifted ? { held: hold, holdLifted } : {}),
    };
  } finally {
    await lock.release();
  }
}

/** The run of this host whose lock this one took over: dead, so its leases are this host's to take over at once. */
function deadRunOf(lock: { tookOverFrom?: { runId: string } }): string | undefined {
  const runId = lock.tookOverFrom?.runId;
  return runId !== undefined && isLeaseName(runId) ? runId : undefined;
}

/** A DIFUSION_HOST the helper would refuse is refused before anything is sent. */
function hostOrRefuse(): string {
  try {
    return thisHost();
  } catch (error) {
    throw new RunRefusal((error as Error).message, 2, ['set DIFUSION_HOST to a plain name such as primario or alterno, or unset it to use the hostname']);
  }
}

/** The run as the journal and the lock name it. */
function commandLine(opts: PublishRunOptions): string {
  return `publish ${opts.latest ? '--latest ' : ''}${opts.cutArg}${opts.dryRun ? ' --dry-run' : ''}${opts.simulacro ? ' --simulacro' : ''}`;
}

/** The cut named, or the newest; after a rollback, --latest stays on the rolled-back-to cut. */
async function cutToPublish(
  opts: PublishRunOptions,
): Promise<{ cut: string; cutDir: string; hold?: RollbackHold; held?: RollbackHold; heldIds?: Set<string> }> {
  let { cut, cutDir } = await resolveCut(opts.cutArg, opts.latest);
  const hold = await readHold(opts.registry.publication.state_dir);
  // After a rollback, cron must not publish the newer cut again behind the operator's back.
  // A rollback of some difusores (--only) holds only those; the others go on to the newest cut.
  const heldIds = opts.latest && hold?.difusores ? new Set(hold.difusores) : undefined;
  if (opts.latest && hold && !hold.difusores && hold.cut !== cut) {
    cutDir = path.resolve(opts.cutArg, hold.cut);
    cut = hold.cut;
    if (!existsSync(cutDir)) {
      throw new RunRefusal(`a rollback holds --latest on ${hold.cut}, which is not in ${opts.cutArg}`, 2, [
        `publish a cut by name to move forward (difusion publish ${path.join(opts.cutArg, '<CUT>')}), which lifts the hold`,
      ]);
    }
  }
  return { cut, cutDir, hold, held: opts.latest && hold ? hold : undefined, heldIds };
}

/** The active difusores asked for and not held by a rollback; the others skipped, saying why. */
async function chooseTargets(opts: PublishRunOptions, hold: RollbackHold | undefined, heldIds: Set<string> | undefined) {
  const selected = selectTargets(opts.registry, opts.only);
  const targets = selected.targets.filter((d) => !heldIds?.has(d.id));
  const missingNotice = new Set<string>();
  for (const s of selected.skipped) if (await noticeMissing(opts.registry.publication.state_dir, s)) missingNotice.add(s.id);
  const skipped = [
    ...selected.skipped.map((s): Skipped => (missingNotice.has(s.id) ? noticeNotInPlace(s, { dryRun: opts.dryRun }) : s)),
    ...selected.targets.filter((d) => heldIds?.has(d.id)).map((d) => ({ id: d.id, reason: `rollback hold on ${hold!.cut}` })),
  ];
  return { selected, targets, skipped, missingNotice };
}

function refuseOutsideWindow(opts: PublishRunOptions, cut: string, now: Date) {
  const decision = checkPublication({
    publication: opts.registry.publication,
    now,
    cutWall: (parseCutId(cut) as { wall: string }).wall,
    simulacro: opts.simulacro,
    dryRun: opts.dryRun,
  });
  if (!decision.allowed) {
    throw new RunRefusal(decision.reason, 4, ['a rehearsal can always run with --dry-run']);
  }
  return decision;
}

async function loadSigningKeyOrRefuse(keyPath: string | undefined): Promise<KeyObject | undefined> {
  if (!keyPath) return undefined;
  return loadSigningKey(keyPath).catch((error: unknown) => {
    if (error instanceof SigningKeyError) throw new RunRefusal(error.message, 2, ['publication.signing_key names it in the registry']);
    throw error;
  });
}

async function lockOrRefuse(stateDir: string, runId: string, command: string) {
  const lock = await acquireLock(stateDir, { runId, command });
  if (isLockHeld(lock)) {
    throw new RunRefusal(`another run holds the lock: ${describeHolder(lock.held)}`, 5, [
      'wait for it to finish; a lock whose holder died is taken over automatically',
    ]);
  }
  return lock;
}

async function journalStart(
  journal: Journal,
  lock: { tookOverFrom?: unknown; takeoverReason?: unknown },
  start: { cut: string; mode: PublicationMode; at: string; targets: Difusor[]; held?: RollbackHold; host: string },
): Promise<void> {
  if (lock.tookOverFrom || lock.takeoverReason) {
    await journal.append({ phase: 'lock', result: 'info', detail: { tookOverFrom: lock.tookOverFrom, reason: lock.takeoverReason } });
  }
  await journal.append({
    cut: start.cut,
    phase: 'start',
    result: 'info',
    detail: {
      mode: start.mode,
      at: start.at,
      targets: start.targets.map((d) => d.id),
      // The publication host this run is on (the alternate site's journals are told apart by it).
      host: start.host,
      ...(start.held ? { rollbackHold: start.held.cut } : {}),
    },
  });
}

/**
 * Per target, the cut this host last saw it serve: the same one is likely a no-op; another's hashes guide an early
 * send. A difusor this host has no record of (a standby's first run) is asked before anything is sent: it may well
 * serve the cut already. A record from another day guides nothing: what changed since then is most of the cut.
 */
async function lastSeenLive(
  state: StateStore,
  targets: Difusor[],
  cut: string,
): Promise<{ likelyLive: Set<string>; lastLive: Map<string, LastLive> }> {
  const likelyLive = new Set<string>();
  const lastLive = new Map<string, LastLive>();
  for (const d of targets) {
    const live = (await state.readRecord(d.id)).live;
    if (live === undefined || live === cut) likelyLive.add(d.id);
    const hashes = live && live !== cut && sameNight(live, cut) ? await state.publishedHashes(live) : undefined;
    if (live && hashes) lastLive.set(d.id, { cut: live, hashes });
  }
  return { likelyLive, lastLive };
}

const NIGHT_MS = 24 * 3600 * 1000;

/** Cut times within a day of each other (wall times, compared as if UTC: only their distance matters). */
function sameNight(a: string, b: string): boolean {
  const [x, y] = [parseCutId(a), parseCutId(b)];
  return x !== undefined && y !== undefined && Math.abs(Date.parse(`${x.wall}Z`) - Date.parse(`${y.wall}Z`)) < NIGHT_MS;
}

/** Disposes of the connector when fn fails: the sessions opened ahead are closed unused. */
async function closingOnFailure<T>(connector: DifusorConnector, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    await connector.dispose();
    throw error;
  }
}

/** What publish.ts is asked: this cut, to these targets, under the registry's publication settings. */
function publishRequest(
  opts: PublishRunOptions,
  run: string,
  what: Pick<PublishRequest, 'cut' | 'cutDir' | 'manifest' | 'signature' | 'targets' | 'likelyLive' | 'lastLive'>,
): PublishRequest {
  const { publication } = opts.registry;
  return {
    ...what,
    concurrency: publication.concurrency,
    keepReleases: publication.keep_releases,
    dryRun: opts.dryRun,
    switchDeadlineMs: publication.switch_deadline_s * 1000,
    // Letters and digits of the run's id: unique to this run, so nothing a killed run left behind is merged.
    incoming: run.replace(/[^A-Za-z0-9]/g, '').slice(-40),
    // One run at a time on each difusor, whichever publication host: this host's name and this run hold its lease.
    lease: { host: opts.host ?? thisHost(), run, seconds: publication.lease_s ?? DEFAULT_LEASE_S, hostLocked: true, ...(opts.replacesRun ? { replaces: opts.replacesRun } : {}) },
    // A rollback's hold names the cut to stay on: following it is the one publish that may move a difusor back.
    allowBackwards: opts.followsHold === true,
    // A rollback's hold kept on the difusor (either host's): cron's --latest leaves it alone, a publish by name lifts it.
    respectHolds: opts.latest,
    liftHolds: !opts.latest,
  };
}

/** The publish itself (publish.ts), its journal entries in the run's journal; the connector closed after, whatever happened. */
async function publishThenClose(
  connector: DifusorConnector,
  req: PublishRequest,
  ports: { state: StateStore; observer?: PublishObserver; journal: Journal },
): Promise<PublishReport> {
  const { journal } = ports;
  try {
    const record: PublishJournalPort['record'] = async (entry) => void (await journal.append(entry));
    return await publishCut(req, { connector, state: ports.state, observer: ports.observer, journal: { record } });
  } finally {
    await connector.dispose();
  }
}

/** Scans and hashes the cut, signs its manifest, and (in a real run) keeps manifest, sizes and source in the state. */
async function signedManifest(
  state: StateStore,
  cut: string,
  cutDir: string,
  signingKey: KeyObject | undefined,
  dryRun: boolean,
  ports: Pick<PublishRunPorts, 'onManifestProgress'>,
): Promise<{ manifest: Manifest; signature?: string }> {
  const files = await scanCut(cutDir);
  const cache = new HashCache(state.hashCacheFile());
  await cache.load();
  const manifest = await buildManifest(cutDir, files, cache, ports.onManifestProgress);
  await cache.save();
  const signature = signingKey ? signManifest(manifest.text, signingKey) : undefined;
  if (!dryRun) {
    await state.saveManifest(cut, manifest.text, signature);
    await state.saveSizes(cut, manifest.entries);
    await state.saveSource(cut, cutDir);
  }
  return { manifest, signature };
}

/** Starts putting back the notices a cutoff could not deliver; settles with each one's result, never rejects. */
function restoreMissingNotices(
  opts: PublishRunOptions,
  ports: PublishRunPorts,
  missingNotice: Set<string>,
  journal: Journal,
  lease: LeaseClaim | undefined,
): Promise<RestoredNotice[]> {
  if (missingNotice.size === 0 || opts.dryRun || !ports.restoreNotices || !lease) return Promise.resolve([]);
  return ports.restoreNotices(opts.registry, [...missingNotice], journal, lease).catch((error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    return [...missingNotice].map((id) => ({ id, notice: '', error: message }));
  });
}

/** What each difusor serves now, stamped by the run's clock (DIFUSION_NOW's instant when it is set). */
async function recordOutcomes(state: StateStore, cut: string, report: PublishReport, clock: Clock): Promise<void> {
  const at = clock.now().toISOString();
  for (const o of report.outcomes) {
    await state.recordResult(o.id, {
      at,
      cut,
      result: o.result,
      error: o.error,
      live: o.result === 'live' || o.result === 'up-to-date' ? cut : o.previous,
    });
  }
}

/** Each skipped suspended difusor whose notice was tried again says whether it is now in place. */
function sayWhatBecameOfNotices(skipped: Skipped[], suspended: Skipped[], restored: RestoredNotice[]): void {
  for (const r of restored) {
    const i = skipped.findIndex((s) => s.id === r.id);
    const base = suspended.find((s) => s.id === r.id) ?? { id: r.id, reason: 'suspended' };
    skipped[i] = r.error
      ? noticeNotInPlace(base, { tried: r.error })
      : { ...base, reason: `${base.reason}; its missing notice is now in place (notices/${r.notice})`, notice: 'restored' as const };
  }
}

/** An operator publishing a cut by name is moving forward from a rollback: its hold is lifted. */
async function liftHoldWhenMovingForward(
  opts: PublishRunOptions,
  hold: RollbackHold | undefined,
  report: PublishReport,
  journal: Journal,
  cut: string,
): Promise<boolean> {
  const holdLifted = Boolean(hold && !opts.latest && !opts.dryRun && report.exitCode !== 1);
  if (hold && holdLifted) {
    await clearHold(opts.registry.publication.state_dir);
    await journal.append({ cut, phase: 'rollback-hold', result: 'info', detail: { lifted: hold.cut } });
  }
  return holdLifted;
}

