import type { KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import type { Difusor, Registry } from '../registry/types.js';
import { scanCut } from './cut.js';
import { HashCache, buildManifest, type Manifest } from '../shared/manifest.js';
import { parseCutId, newestCut } from '../shared/cut-id.js';
import { checkPublication, formatLocal, type PublicationMode } from '../registry/window.js';
import { acquireLock, currentUser, describeHolder, isLockHeld } from '../records/lock.js';
import { openAhead, openOptions, publishCut, type LastLive, type PublishObserver, type PublishReport } from './publish.js';
import { StateStore } from '../records/state.js';
import { SigningKeyError, loadSigningKey, signManifest } from './signing.js';
import type { DifusorConnector } from '../difusor-port.js';
import type { Clock } from '../clock-port.js';
import type { Journal, JournalContext } from '../records/journal.js';
import { clearHold, readHold, type RollbackHold } from '../records/hold.js';

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
   * under this run's lock and journal, alongside the publish. Without it, the summary only names them.
   */
  restoreNotices?(registry: Registry, ids: string[], journal: Journal): Promise<RestoredNotice[]>;
}

/** A suspended difusor's notice put up again (its stamp), or why it could not be. */
export interface RestoredNotice {
  id: string;
  notice: string;
  error?: string;
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
  let { cut, cutDir } = await resolveCut(opts.cutArg, opts.latest);
  const hold = await readHold(publication.state_dir);
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
  const held = opts.latest && hold ? hold : undefined;
  const selected = selectTargets(registry, opts.only);
  const targets = selected.targets.filter((d) => !heldIds?.has(d.id));
  const missingNotice = new Set<string>();
  for (const s of selected.skipped) if (await noticeMissing(publication.state_dir, s)) missingNotice.add(s.id);
  const skipped = [
    ...selected.skipped.map((s): Skipped => (missingNotice.has(s.id) ? noticeNotInPlace(s, { dryRun: opts.dryRun }) : s)),
    ...selected.targets.filter((d) => heldIds?.has(d.id)).map((d) => ({ id: d.id, reason: `rollback hold on ${hold!.cut}` })),
  ];

  const now = ports.clock.now();
  const decision = checkPublication({
    publication,
    now,
    cutWall: (parseCutId(cut) as { wall: string }).wall,
    simulacro: opts.simulacro,
    dryRun: opts.dryRun,
  });
  if (!decision.allowed) {
    throw new RunRefusal(decision.reason, 4, ['a rehearsal can always run with --dry-run']);
  }

  // Before the lock: a key others can read, or none at all, refuses the run before anything is sent.
  let signingKey: KeyObject | undefined;
  if (publication.signing_key) {
    signingKey = await loadSigningKey(publication.signing_key).catch((error: unknown) => {
      if (error instanceof SigningKeyError) throw new RunRefusal(error.message, 2, ['publication.signing_key names it in the registry']);
      throw error;
    });
  }

  const run = ports.newRunId();
  const operator = `${currentUser()}@${hostname()}`;
  const command = `publish ${opts.latest ? '--latest ' : ''}${opts.cutArg}${opts.dryRun ? ' --dry-run' : ''}${opts.simulacro ? ' --simulacro' : ''}`;
  const lock = await acquireLock(publication.state_dir, { runId: run, command });
  if (isLockHeld(lock)) {
    throw new RunRefusal(`another run holds the lock: ${describeHolder(lock.held)}`, 5, [
      'wait for it to finish; a lock whose holder died is taken over automatically',
    ]);
  }
  try {
    const journal = await ports.openJournal(publication.state_dir, { run, operator, command, clock: ports.clock });
    if (lock.tookOverFrom || lock.takeoverReason) {
      await journal.append({ phase: 'lock', result: 'info', detail: { tookOverFrom: lock.tookOverFrom, reason: lock.takeoverReason } });
    }
    await journal.append({
      cut,
      phase: 'start',
      result: 'info',
      detail: {
        mode: decision.mode,
        at: formatLocal(now, publication.timezone),
        targets: targets.map((d) => d.id),
        ...(held ? { rollbackHold: held.cut } : {}),
      },
    });

    const state = new StateStore(publication.state_dir);
    const likelyLive = new Set<string>();
    const lastLive = new Map<string, LastLive>();
    for (const d of targets) {
      const live = (await state.readRecord(d.id)).live;
      if (live === cut) likelyLive.add(d.id);
      const hashes = live && live !== cut ? await state.publishedHashes(live) : undefined;
      if (live && hashes) lastLive.set(d.id, { cut: live, hashes });
    }
    // The first sessions connect while the cut is scanned and hashed; a cut refused below closes them unused.
    const connector = openAhead(await ports.connect(registry, targets), targets.slice(0, publication.concurrency), (d) =>
      openOptions({ dryRun: opts.dryRun, likelyLive }, d),
    );
    let manifest: Manifest;
    let signature: string | undefined;
    try {
      const files = await scanCut(cutDir);
      const cache = new HashCache(state.hashCacheFile());
      await cache.load();
      manifest = await buildManifest(cutDir, files, cache, ports.onManifestProgress);
      await cache.save();
      signature = signingKey ? signManifest(manifest.text, signingKey) : undefined;
      if (!opts.dryRun) {
        await state.saveManifest(cut, manifest.text, signature);
        await state.saveSizes(cut, manifest.entries);
        await state.saveSource(cut, cutDir);
      }
    } catch (error) {
      await connector.dispose();
      throw error;
    }

    ports.onStart?.({
      cut,
      cutDir,
      targets,
      mode: decision.mode,
      wouldRefuse: 'wouldRefuse' in decision ? decision.wouldRefuse : undefined,
      files: manifest.entries.length,
      bytes: manifest.totalBytes,
      held,
    });

    // The notices go alongside the cut, so a suspended difusor that is still down delays no one's switch.
    const restoring =
      missingNotice.size > 0 && !opts.dryRun && ports.restoreNotices
        ? ports.restoreNotices(registry, [...missingNotice], journal).catch((error: unknown) => {
            const message = error instanceof Error ? error.message : String(error);
            return [...missingNotice].map((id) => ({ id, notice: '', error: message }));
          })
        : Promise.resolve([]);
    let report: PublishReport;
    let restored: Awaited<typeof restoring>;
    try {
      try {
        report = await publishCut(
          {
            cut,
            cutDir,
            manifest,
            signature,
            targets,
            concurrency: publication.concurrency,
            keepReleases: publication.keep_releases,
            dryRun: opts.dryRun,
            switchDeadlineMs: publication.switch_deadline_s * 1000,
            likelyLive,
            lastLive,
            // Letters and digits of the run's id: unique to this run, so nothing a killed run left behind is merged.
            incoming: run.replace(/[^A-Za-z0-9]/g, '').slice(-40),
          },
          {
            connector,
            state,
            observer: ports.observer,
            journal: { record: async (entry) => void (await journal.append(entry)) },
          },
        );
      } finally {
        await connector.dispose();
      }
      // What the difusores serve is recorded before waiting on a notice: a kill meanwhile loses neither.
      if (!opts.dryRun) {
        const at = new Date().toISOString();
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
    } finally {
      // Never left running behind the lock's release, whatever happened above.
      restored = await restoring;
    }
    for (const r of restored) {
      const i = skipped.findIndex((s) => s.id === r.id);
      const base = selected.skipped.find((s) => s.id === r.id) ?? { id: r.id, reason: 'suspended' };
      skipped[i] = r.error
        ? noticeNotInPlace(base, { tried: r.error })
        : { ...base, reason: `${base.reason}; its missing notice is now in place (notices/${r.notice})`, notice: 'restored' as const };
    }
    // An operator publishing a cut by name is moving forward from a rollback.
    const holdLifted = Boolean(hold && !opts.latest && !opts.dryRun && report.exitCode !== 1);
    if (hold && holdLifted) {
      await clearHold(publication.state_dir);
      await journal.append({ cut, phase: 'rollback-hold', result: 'info', detail: { lifted: hold.cut } });
    }
    await journal.append({ cut, phase: 'end', result: report.exitCode === 0 ? 'ok' : 'failed', detail: { exitCode: report.exitCode } });
    return {
      ...report,
      run,
      mode: decision.mode,
      clock: ports.clock.fromEnv ? ports.clock.setting : undefined,
      wouldRefuse: 'wouldRefuse' in decision ? decision.wouldRefuse : undefined,
      targets: targets.map((d) => d.id),
      skipped,
      ...(held ? { held } : holdLifted ? { held: hold, holdLifted } : {}),
    };
  } finally {
    await lock.release();
  }
}
