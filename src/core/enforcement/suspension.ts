import { existsSync } from 'node:fs';
import type { Difusor, Registry } from '../registry/types.js';
import { renderNotice, isoWithOffset, NOTICE_FILES, type Notice } from './notice.js';
import type { Journal } from '../records/journal.js';
import type { DifusorConnector, DifusorSession } from '../difusor-port.js';
import { changeDifusorStatus, type RegistryStore } from '../registry/registry-edit.js';
import { parseHelperStatus, publishedCuts } from '../publish/status.js';
import { newestCut } from '../shared/cut-id.js';
import { discardStaging, publishCut, type DifusorOutcome } from '../publish/publish.js';
import { StateStore } from '../records/state.js';
import { scanCut } from '../publish/cut.js';
import { HashCache, buildManifest, parseManifest, sha256Hex, type Manifest } from '../shared/manifest.js';
import { loadRegistry } from '../registry/registry.js';
import { NOTICE_FAILED, RunRefusal, type RestoredNotice } from '../publish/publish-run.js';
import { formatLocal } from '../registry/window.js';
import { loadSigningKey, signManifest } from '../publish/signing.js';
import { readHold } from '../records/hold.js';
import { DEFAULT_LEASE_S, LeaseHeldError, isLeaseName, takeLease, takeoverDetail, thisHost, type HeldLease, type LeaseClaim } from '../publish/lease.js';
import {
  CANCELLED,
  askServing,
  errorText,
  findDifusor,
  helperStep,
  underLock,
  type Cancelled,
  type OperationPorts,
  type Serving,
} from '../publish/operation.js';

/**
 * Suspending a difusor and lifting the suspension.
 *   cutoff ID --reason: (1) ask the difusor what it serves and show the plan; once confirmed, under
 *   the lock: (2) the registry says `status: suspended` with the time and reason, so every later
 *   publish skips it even if the difusor cannot be reached now; (3) the notice is written into the
 *   difusor's staging, checked against its manifest there, moved into notices/<stamp> and switched
 *   over `current` by a rename, like a cut: a visitor sees the results or the notice, never neither.
 *   reinstate ID: the newest published cut is delivered through the normal publish pipeline, whose
 *   switch alone is allowed to replace the notice; only once the difusor serves it does the registry
 *   say `status: active` again. Either way the registry errs towards "suspended".
 * Both are journaled (phase 'cutoff' / 'reinstate'); a run that could not finish says how to resume.
 */

const MAX_REASON = 1000;
// The registry refuses control characters (see registry.ts); better said before anything changes.
const CONTROL = /[\p{Cc}\u200E\u200F\u202A-\u202E\u2066-\u2069]/u;

export interface CutoffPlan {
  action: 'cutoff';
  difusor: Difusor;
  reason: string;
  serving: Serving;
  /** The time the notice will carry, in the publication timezone. */
  local: string;
  registryFile: string;
}

export interface ReinstatePlan {
  action: 'reinstate';
  difusor: Difusor;
  serving: Serving;
  cut: string;
  registryFile: string;
}

export interface SuspensionPorts extends OperationPorts {
  registry: RegistryStore;
  confirm(plan: CutoffPlan | ReinstatePlan): Promise<boolean>;
}

export interface CutoffPorts extends SuspensionPorts {
  /** templates/aviso.html */
  noticeTemplate: string;
}

export interface CutoffResult {
  cancelled?: false;
  difusor: string;
  notice: string;
  from?: string;
  /**
   * 0: notice live; 1: the registry says suspended but the notice did not reach the difusor; 3: another run (of this
   * host or the other) holds the difusor's lease, so it was left alone: suspended in the registry, its notice left
   * to the next publish.
   */
  exitCode: 0 | 1 | 3;
  error?: string;
  /** Another run's live lease on the difusor: nothing changed, the error names the holder. */
  leftAlone?: 'held';
  clock?: string;
}

export interface ReinstateResult {
  cancelled?: false;
  difusor: string;
  cut: string;
  outcome: DifusorOutcome;
  /** 3: another run holds the difusor's lease (outcome.leftAlone), so it was left alone, still suspended. */
  exitCode: 0 | 1 | 3;
  error?: string;
  clock?: string;
}


export function checkReason(reason: string): string {
  const trimmed = reason.trim();
  if (trimmed === '') throw new RunRefusal('--reason must say why the difusor is suspended: the notice shows it to the public', 2);
  if (trimmed.length > MAX_REASON) throw new RunRefusal(`--reason is ${trimmed.length} characters; the notice takes at most ${MAX_REASON}`, 2);
  const control = CONTROL.exec(trimmed);
  if (control) {
    const code = control[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
    throw new RunRefusal(`--reason contains the control character U+${code} (a line break?); write it on one line`, 2);
  }
  return trimmed;
}

/**
 * When a difusor already suspended was suspended. Running cutoff again (its notice did not arrive, or the reason is
 * corrected) puts the notice up and may change the reason, never the moment the registry and the notice record.
 */
function suspendedSince(difusor: Difusor): Date | undefined {
  if (difusor.status !== 'suspended' || !difusor.suspended_at) return undefined;
  const at = new Date(difusor.suspended_at);
  return Number.isNaN(at.getTime()) ? undefined : at;
}

export async function cutoff(
  opts: { registry: Registry; id: string; reason: string },
  ports: CutoffPorts,
): Promise<CutoffResult | Cancelled> {
  const { registry } = opts;
  const difusor = findDifusor(registry, opts.id);
  const reason = checkReason(opts.reason);
  const tz = registry.publication.timezone;
  const connector = await ports.connect(registry, [difusor]);
  try {
    const before = await askServing(connector, difusor);
    const since = suspendedSince(difusor);
    const plan: CutoffPlan = { action: 'cutoff', difusor, reason, serving: before, local: formatLocal(since ?? ports.clock.now(), tz), registryFile: registry.file };
    if (!(await ports.confirm(plan))) return CANCELLED;

    return await underLock(registry, `cutoff ${difusor.id}`, ports, (journal, run, deadRun) =>
      suspendAndNotify({ registry, difusor, reason, since, before, journal, claim: leaseClaim(registry, run, deadRun), connector, ports }),
    );
  } finally {
    await connector.dispose();
  }
}

/** A cutoff under the lock, once confirmed: the registry first, then the notice under the difusor's lease. */
async function suspendAndNotify(c: {
  registry: Registry;
  difusor: Difusor;
  reason: string;
  since?: Date;
  before: Serving;
  journal: Journal;
  claim: LeaseClaim;
  connector: DifusorConnector;
  ports: CutoffPorts;
}): Promise<CutoffResult> {
  const { registry, difusor, reason, since, before, journal, claim, connector, ports } = c;
  const tz = registry.publication.timezone;
  // The notice carries the moment of the change, not the moment the plan was shown.
  const at = since ?? ports.clock.now();
  const notice = renderNotice({
    difusor,
    reason,
    at,
    timezone: tz,
    officialUrl: registry.publication.official_url,
    template: ports.noticeTemplate,
    avoidStamps: before.notice ? [before.notice] : [],
  });
  const detail = {
    reason,
    notice: notice.stamp,
    from: before.live ?? before.notice ?? null,
    ...(since ? { suspendedSince: difusor.suspended_at } : {}),
  };
  const state = new StateStore(registry.publication.state_dir);
  const result = (exitCode: 0 | 1 | 3, more: { error?: string; leftAlone?: 'held' } = {}): CutoffResult => ({
    difusor: difusor.id,
    notice: notice.stamp,
    from: detail.from ?? undefined,
    exitCode,
    ...more,
    clock: clockNote(ports),
  });
  // Remembered, so every later publish says the notice is missing (and puts it up) until one is in place.
  const noticeMissing = async (error: string, leftAlone?: 'held'): Promise<void> => {
    await state.recordResult(difusor.id, { at: at.toISOString(), cut: notice.stamp, result: NOTICE_FAILED, error });
    await journal.append({ phase: 'cutoff', result: 'failed', difusor: difusor.id, error, detail: leftAlone ? { ...detail, leftAlone, host: claim.host } : detail });
  };
  // The difusor's lease before anything is written there: another run there (this host's or the other's) leaves
  // the difusor alone. The registry is the institute's own file: it says suspended whatever the difusor answers
  // (a lease its admin forged must not keep it active), as for one that cannot be reached; the notice then
  // waits, and every later publish puts it up once it holds the lease.
  const reached = await reachUnderLease(connector, difusor, claim);
  try {
    try {
      await changeDifusorStatus(ports.registry, difusor.id, { status: 'suspended', suspended_at: isoWithOffset(at, tz), suspension_reason: reason });
    } catch (error) {
      await journal.append({ phase: 'cutoff', result: 'failed', difusor: difusor.id, error: `registry: ${errorText(error)}`, detail });
      throw error;
    }
    if ('held' in reached) {
      await noticeMissing(reached.held.message, 'held');
      return result(3, { error: reached.held.message, leftAlone: 'held' });
    }
    try {
      if ('error' in reached) throw reached.error;
      if (reached.lease.takenOver) {
        await journal.append({ phase: 'lease-takeover', result: 'info', difusor: difusor.id, detail: takeoverDetail(claim.host, reached.lease.takenOver) });
      }
      await reached.lease.confirm();
      await deliverNotice(reached.session, notice, connector, difusor);
    } catch (error) {
      await noticeMissing(errorText(error));
      return result(1, { error: errorText(error) });
    }
  } finally {
    if ('lease' in reached) {
      await reached.lease.release();
      reached.session.close();
    }
  }
  await state.recordResult(difusor.id, { at: at.toISOString(), cut: notice.stamp, result: 'notice' });
  await journal.append({ phase: 'cutoff', result: 'ok', difusor: difusor.id, detail });
  return result(0);
}

/** This run's claim on a difusor's lease, as publish and rollback make it (one run at a time per host: --host-lock). */
function leaseClaim(registry: Registry, run: string, deadRun: string | undefined): LeaseClaim {
  return {
    host: thisHost(),
    run,
    seconds: registry.publication.lease_s ?? DEFAULT_LEASE_S,
    hostLocked: true,
    ...(deadRun && isLeaseName(deadRun) ? { replaces: deadRun } : {}),
  };
}

/**
 * A session on the difusor holding its lease; another run's live lease (held); or why it could not be reached (or
 * its lease asked), which the caller treats as a difusor down.
 */
async function reachUnderLease(
  connector: DifusorConnector,
  difusor: Difusor,
  claim: LeaseClaim,
): Promise<{ session: DifusorSession; lease: HeldLease } | { held: LeaseHeldError } | { error: unknown }> {
  let session: DifusorSession;
  try {
    session = await connector.open(difusor);
  } catch (error) {
    return { error };
  }
  try {
    return { session, lease: await takeLease(session, claim, { difusor: difusor.id }) };
  } catch (error) {
    session.close();
    return error instanceof LeaseHeldError ? { held: error } : { error };
  }
}

/**
 * The notice into the difusor's notices/<stamp>, checked there, then renamed over `current`. A notice that does not
 * get there (a full disk, a link cut) leaves no staging behind: what was written is discarded before the error goes up.
 */
async function deliverNotice(
  session: DifusorSession,
  notice: Notice,
  connector: DifusorConnector,
  difusor: Difusor,
  timeoutMs?: number,
): Promise<void> {
  try {
    for (const name of NOTICE_FILES) await helperStep(session, 'notice-put', [notice.stamp, name], notice.files[name], timeoutMs);
  } catch (error) {
    const discarded = await discardStaging(connector, difusor, session, ['--notice', notice.stamp], errorText(error));
    if (discarded.error === undefined) throw error;
    throw new Error(`${errorText(error)} (its staged notice is left on the difusor: ${discarded.error}; the next run there clears it)`);
  }
  // notice-switch moves the staged notice into notices/ before the switch: a failure here leaves at most a notice
  // the next prune removes, or a staging it refused, which a discard frees.
  const out = await helperStep(session, 'notice-switch', [notice.stamp], undefined, timeoutMs).catch(async (error: unknown) => {
    await discardStaging(connector, difusor, session, ['--notice', notice.stamp], errorText(error));
    throw error;
  });
  if (out.stdout.trim() !== `live notices/${notice.stamp}`) {
    throw new Error(`current points to ${out.stdout.trim().replace(/^live /, '') || 'nothing'} after the switch`);
  }
}

/** Each step of a retried notice: its files are a few kB, and a hung difusor must not hold the lock for long. */
const RESTORE_STEP_TIMEOUT_MS = 20_000;

export interface RestorePorts {
  connect: OperationPorts['connect'];
  journal: Journal;
  noticeTemplate: string;
  clock: OperationPorts['clock'];
  /** The publish's claim (this host, its run, under its lock): the notice goes up under the difusor's lease too. */
  lease: LeaseClaim;
}

/**
 * A cutoff whose notice did not reach the difusor (down at the time) is finished by the next publish,
 * every 15 minutes from cron, until it is: the same notice (the registry's suspension time and reason)
 * is put up again. Called under the publish's lock and journal; the cut itself never goes to a suspended
 * difusor. Under the difusor's lease, like cutoff: another run's live lease there leaves it alone (said, leftAlone
 * 'held'; the next publish tries again), an expired one is taken over and journaled. The registry and the state are read again here, under the lock: a reinstate or a cutoff that
 * ran since the publish started has the last word.
 */
export async function restoreNotices(
  registry: Registry,
  ids: string[],
  ports: RestorePorts,
): Promise<RestoredNotice[]> {
  const current = await loadRegistry(registry.file);
  if (!current.ok) return [];
  const state = new StateStore(current.registry.publication.state_dir);
  const difusores: Difusor[] = [];
  for (const d of current.registry.difusores) {
    if (!ids.includes(d.id) || d.status !== 'suspended' || !d.suspended_at || !d.suspension_reason) continue;
    if ((await state.readRecord(d.id)).lastResult?.result === NOTICE_FAILED) difusores.push(d);
  }
  if (difusores.length === 0) return [];
  const connector = await ports.connect(current.registry, difusores);
  try {
    return await Promise.all(difusores.map((d) => restoreOne(d, current.registry, state, connector, ports)));
  } finally {
    await connector.dispose();
  }
}

async function restoreOne(
  difusor: Difusor,
  registry: Registry,
  state: StateStore,
  connector: DifusorConnector,
  ports: Omit<RestorePorts, 'connect'>,
): Promise<RestoredNotice> {
  const at = new Date(difusor.suspended_at as string);
  let notice = renderNotice({
    difusor,
    reason: difusor.suspension_reason as string,
    at,
    timezone: registry.publication.timezone,
    officialUrl: registry.publication.official_url,
    template: ports.noticeTemplate,
  });
  const detail = { reason: difusor.suspension_reason, notice: notice.stamp, retry: true };
  const failed = async (message: string, leftAlone?: 'held'): Promise<RestoredNotice> => {
    await state.recordResult(difusor.id, { at: ports.clock.now().toISOString(), cut: notice.stamp, result: NOTICE_FAILED, error: message });
    await ports.journal.append({
      phase: 'cutoff',
      result: 'failed',
      difusor: difusor.id,
      error: message,
      detail: { ...detail, ...(leftAlone ? { leftAlone, host: ports.lease.host } : {}) },
    });
    return { id: difusor.id, notice: notice.stamp, error: message, ...(leftAlone ? { leftAlone } : {}) };
  };
  // Another run there (the other host's publish, a cutoff of either host) is not written over: the notice waits.
  const reached = await reachUnderLease(connector, difusor, ports.lease);
  if ('held' in reached) return failed(reached.held.message, 'held');
  try {
    if ('error' in reached) throw reached.error;
    const { session, lease } = reached;
    try {
      if (lease.takenOver) {
        await ports.journal.append({ phase: 'lease-takeover', result: 'info', difusor: difusor.id, detail: takeoverDetail(ports.lease.host, lease.takenOver) });
      }
      const serving = parseHelperStatus((await helperStep(session, 'status', [], undefined, RESTORE_STEP_TIMEOUT_MS)).stdout);
      // The cutoff may have switched the notice in and lost only the answer: a notice is live, nothing to do.
      if (serving.notice) {
        notice = { ...notice, stamp: serving.notice };
      } else {
        await lease.confirm();
        await deliverNotice(session, notice, connector, difusor, RESTORE_STEP_TIMEOUT_MS);
      }
    } finally {
      await lease.release();
      session.close();
    }
  } catch (error) {
    return failed(errorText(error));
  }
  await state.recordResult(difusor.id, { at: ports.clock.now().toISOString(), cut: notice.stamp, result: 'notice' });
  await ports.journal.append({ phase: 'cutoff', result: 'ok', difusor: difusor.id, detail: { ...detail, notice: notice.stamp } });
  return { id: difusor.id, notice: notice.stamp };
}

function clockNote(ports: OperationPorts): string | undefined {
  return ports.clock.fromEnv ? ports.clock.setting : undefined;
}

/**
 * The cut the others serve: the newest this host published, or the one a rollback holds them on;
 * with the directory it was published from and its manifest.
 */
async function newestPublished(registry: Registry): Promise<{ cut: string; cutDir?: string; manifest: Manifest }> {
  const stateDir = registry.publication.state_dir;
  const hold = await readHold(stateDir);
  // A rollback --only holds just the difusores it moved; the others, like this one, serve the newest.
  const cut = (hold && !hold.difusores ? hold.cut : undefined) ?? newestCut(await publishedCuts(stateDir));
  if (!cut) throw new RunRefusal(`no cut has been published yet (nothing under ${stateDir}/cuts): publish one, then reinstate`, 2);
  const state = new StateStore(stateDir);
  const text = await state.manifestText(cut);
  const cutDir = await state.sourceOf(cut);
  if (text === undefined) throw new RunRefusal(`the manifest of ${cut} is missing from ${stateDir}/cuts/${cut}`, 2);
  if (cutDir && existsSync(cutDir)) {
    const cache = new HashCache(state.hashCacheFile());
    await cache.load();
    const manifest = await buildManifest(cutDir, await scanCut(cutDir), cache);
    await cache.save();
    // The files must be the ones published to everyone else; a rewritten cut directory is not that cut.
    if (manifest.digest !== sha256Hex(text)) {
      throw new RunRefusal(`${cutDir} no longer matches the manifest published for ${cut}; restore it, then reinstate`, 2);
    }
    return { cut, cutDir, manifest };
  }
  // Without the files, a difusor that still holds the release can be switched back; one that lacks files fails the transfer.
  const sizes = (await state.sizesOf(cut)) ?? new Map<string, number>();
  const hashes = parseManifest(text);
  const entries = [...hashes].map(([path, sha256]) => ({ path, sha256, size: sizes.get(path) ?? 0 }));
  return {
    cut,
    cutDir: cutDir ?? undefined,
    manifest: { entries, text, digest: sha256Hex(text), totalBytes: entries.reduce((n, e) => n + e.size, 0) },
  };
}

export async function reinstate(opts: { registry: Registry; id: string }, ports: SuspensionPorts): Promise<ReinstateResult | Cancelled> {
  const { registry } = opts;
  const difusor = findDifusor(registry, opts.id);
  const newest = await newestPublished(registry);
  const connector = await ports.connect(registry, [difusor]);
  try {
    const before = await askServing(connector, difusor);
    if (difusor.status === 'active' && !before.notice && !before.error) {
      throw new RunRefusal(`${difusor.id} is not suspended: the registry says active and it serves ${before.live ?? 'no notice'}`, 2, [
        'difusion status shows what every difusor serves',
      ]);
    }
    const plan: ReinstatePlan = { action: 'reinstate', difusor, serving: before, cut: newest.cut, registryFile: registry.file };
    if (!(await ports.confirm(plan))) return CANCELLED;

    return await underLock(registry, `reinstate ${difusor.id}`, ports, async (journal, run, deadRun) => {
      const publication = registry.publication;
      const signature = publication.signing_key ? signManifest(newest.manifest.text, await loadSigningKey(publication.signing_key)) : undefined;
      const state = new StateStore(publication.state_dir);
      const report = await publishCut(
        {
          cut: newest.cut,
          // Without the cut's directory only a difusor that still holds the release can be switched back.
          cutDir: newest.cutDir ?? publication.state_dir,
          manifest: newest.manifest,
          signature,
          targets: [{ ...difusor, status: 'active' }],
          concurrency: 1,
          keepReleases: publication.keep_releases,
          dryRun: false,
          liftNotice: true,
          // Under the difusor's lease, as a publish: another run there leaves it alone (outcome.leftAlone 'held').
          lease: leaseClaim(registry, run, deadRun),
        },
        { connector, state, journal: { record: async (entry) => void (await journal.append(entry)) } },
      );
      const outcome = report.outcomes[0] as DifusorOutcome;
      const detail = { cut: newest.cut, notice: before.notice ?? null, from: before.notice ?? before.live ?? null };
      if (outcome.result !== 'live' && outcome.result !== 'up-to-date') {
        const missing = newest.cutDir === undefined || !existsSync(newest.cutDir);
        const error =
          `${outcome.failedPhase ?? 'publish'}: ${outcome.error ?? 'failed'}` +
          (missing && outcome.failedPhase === 'staging' ? ` (the files of ${newest.cut} are no longer at ${newest.cutDir ?? 'a known place'} on this host: restore them)` : '');
        await journal.append({ phase: 'reinstate', result: 'failed', difusor: difusor.id, cut: newest.cut, error, detail });
        return { difusor: difusor.id, cut: newest.cut, outcome, exitCode: outcome.leftAlone ? (3 as const) : (1 as const), error, clock: clockNote(ports) };
      }
      await state.recordResult(difusor.id, { at: ports.clock.now().toISOString(), cut: newest.cut, result: 'live', live: newest.cut });
      try {
        await changeDifusorStatus(ports.registry, difusor.id, { status: 'active' });
      } catch (error) {
        const message = `${difusor.id} serves ${newest.cut} again, but the registry could not be updated: ${errorText(error)}; set status: active by hand`;
        await journal.append({ phase: 'reinstate', result: 'failed', difusor: difusor.id, cut: newest.cut, error: message, detail });
        return { difusor: difusor.id, cut: newest.cut, outcome, exitCode: 1 as const, error: message, clock: clockNote(ports) };
      }
      await journal.append({ phase: 'reinstate', result: 'ok', difusor: difusor.id, cut: newest.cut, detail });
      return { difusor: difusor.id, cut: newest.cut, outcome, exitCode: 0 as const, clock: clockNote(ports) };
    });
  } finally {
    await connector.dispose();
  }
}
