import type { Difusor, Registry } from '../registry/types.js';
import { compareCutIds, newestCut, parseCutId } from '../shared/cut-id.js';
import { RunRefusal, selectTargets } from '../publish/publish-run.js';
import { publishedCuts } from '../publish/status.js';
import { StateStore } from '../records/state.js';
import { clearHold, readHold, writeHold, type RollbackHold } from '../records/hold.js';
import { manifestText, sha256Hex } from '../shared/manifest.js';
import { MANIFEST_NAME, parseVerify } from '../publish/plan.js';
import { compareRelease } from '../publish/verify.js';
import { manifestFromOwnCopy } from '../publish/cut-library.js';
import { DEFAULT_LEASE_S, LeaseHeldError, isLeaseName, takeLease, takeoverDetail, thisHost, type LeaseClaim } from '../publish/lease.js';
import type { Journal } from '../records/journal.js';
import type { DifusorConnector, DifusorSession } from '../difusor-port.js';
import type { Clock } from '../clock-port.js';
import { exitCodeFor } from '../publish/publish.js';
import { CANCELLED, askServing, errorText, helperStep, underLock, type Cancelled, type OperationPorts, type Serving } from '../publish/operation.js';
import { holdNotRecorded, holdThere } from '../publish/hold-marker.js';

/**
 * Rollback: point `current` back to a release the difusores still hold.
 *   1. ask every targeted active difusor what it serves and holds (suspended ones keep their notice);
 *   2. the cut to go back to: --to, or the newest release older than the newest live cut;
 *   3. show who switches, who is already there, who lacks it; once confirmed, under the lock, each
 *      holder's copy is checked against the manifest this host published, then switched by the same
 *      atomic rename as a publish;
 *   4. a rollback hold in the state dir makes `publish --latest` stay on that cut instead of silently
 *      publishing the newer one again; publishing a cut by name lifts it (the operator moving forward). The same
 *      hold is set on each difusor (.lease/hold, under its lease), so the other publication host's --latest leaves
 *      it alone too, and its publish by name lifts it there.
 * Those lacking the release are named: exit 3 (1 when none could go back).
 */

export type RollbackAction = 'switch' | 'already' | 'lacking' | 'unreachable';

export interface RollbackRow {
  difusor: Difusor;
  serving: Serving;
  action: RollbackAction;
}

export interface RollbackPlan {
  action: 'rollback';
  to: string;
  from?: string;
  rows: RollbackRow[];
  skipped: Array<{ id: string; reason: string }>;
}

export interface RollbackOutcome {
  id: string;
  result: 'live' | 'failed';
  from?: string;
  error?: string;
}

export interface RollbackResult {
  cancelled?: false;
  to: string;
  from?: string;
  outcomes: RollbackOutcome[];
  skipped: Array<{ id: string; reason: string }>;
  hold?: RollbackHold;
  exitCode: 0 | 1 | 3;
  clock?: string;
}

export interface RollbackPorts extends OperationPorts {
  confirm(plan: RollbackPlan): Promise<boolean>;
}

export function chooseTarget(to: string | undefined, live: string[], held: string[]): { to: string; from?: string } {
  const from = newestCut(live);
  if (to !== undefined) {
    if (!parseCutId(to)) throw new RunRefusal(`--to ${to}: a cut id is YYYYMMDD_HHMM[_SUFFIX] (e.g. 20220605_2015_PREP_DGO)`, 2);
    return { to, from };
  }
  if (!from) throw new RunRefusal('no targeted difusor serves a cut, so there is no "previous" one; name it with --to CUT', 2);
  const earlier = [...new Set(held)].filter((c) => compareCutIds(c, from) < 0);
  const previous = newestCut(earlier);
  if (!previous) throw new RunRefusal(`no difusor holds a release older than ${from}; nothing to roll back to`, 2);
  return { to: previous, from };
}


/**
 * `--to` a cut this host never published, or one newer than what its difusores serve, is refused before any
 * difusor is contacted, with the cuts it can go back to. A host whose state directory holds no cut at all (the
 * alternate site, just started) has nothing to judge by: the difusores are asked, as before.
 */
export async function refuseUnknownTarget(to: string, stateDir: string, targets: Difusor[]): Promise<void> {
  if (!parseCutId(to)) return;
  const published = await publishedCuts(stateDir);
  if (published.length === 0) return;
  const state = new StateStore(stateDir);
  const lives = (await Promise.all(targets.map(async (d) => (await state.readRecord(d.id)).live))).filter((c): c is string => c !== undefined && parseCutId(c) !== undefined);
  const newestLive = newestCut(lives);
  const earlier = published.filter((c) => newestLive === undefined || compareCutIds(c, newestLive) < 0).reverse();
  const shown = earlier.slice(0, 8);
  const choices =
    earlier.length === 0
      ? `no cut published before ${newestLive ?? 'the live one'}`
      : `it can go back to ${shown.join(', ')}${earlier.length > shown.length ? ` (and ${earlier.length - shown.length} older; all in ${stateDir}/cuts)` : ''}`;
  if (!published.includes(to)) {
    throw new RunRefusal(`--to ${to}: this host never published that cut (nothing was contacted); ${choices}`, 2, [
      'difusion rollback --to CUT with one of those, or without --to for the one before the live one',
    ]);
  }
  if (newestLive !== undefined && compareCutIds(to, newestLive) > 0) {
    throw new RunRefusal(`--to ${to}: it is newer than what is live (${newestLive}): a rollback only goes back (nothing was contacted); ${choices}`, 2, [
      `to move forward, publish it by name: difusion publish <cuts dir>/${to}`,
    ]);
  }
}

function actionFor(serving: Serving, to: string): RollbackAction {
  if (serving.error) return 'unreachable';
  if (serving.live === to) return 'already';
  return serving.releases.includes(to) ? 'switch' : 'lacking';
}

export async function rollback(opts: { registry: Registry; to?: string; only: string[] }, ports: RollbackPorts): Promise<RollbackResult | Cancelled> {
  const { registry } = opts;
  const stateDir = registry.publication.state_dir;
  const { targets, skipped } = selectTargets(registry, opts.only);
  if (targets.length === 0) throw new RunRefusal('no active difusor to roll back (suspended ones keep their notice)', 2);
  if (opts.to !== undefined) await refuseUnknownTarget(opts.to, stateDir, targets);
  const connector = await ports.connect(registry, targets);
  try {
    const servings = await Promise.all(targets.map((d) => askServing(connector, d)));
    const lives = servings.flatMap((s) => (s.live ? [s.live] : []));
    const held = [...servings.flatMap((s) => s.releases), ...(await publishedCuts(stateDir))];
    const { to, from } = chooseTarget(opts.to, lives, held);
    const rows = targets.map((difusor, i) => ({ difusor, serving: servings[i] as Serving, action: actionFor(servings[i] as Serving, to) }));
    const plan: RollbackPlan = { action: 'rollback', to, from, rows, skipped };
    if (!(await ports.confirm(plan))) return CANCELLED;

    const command = `rollback${opts.to ? ` --to ${opts.to}` : ''}${opts.only.map((id) => ` --only ${id}`).join('')}`;
    return await underLock(registry, command, ports, async (journal, run, deadRun) => {
      const claim = { host: thisHost(), run, seconds: registry.publication.lease_s ?? DEFAULT_LEASE_S, hostLocked: true, ...(deadRun && isLeaseName(deadRun) ? { replaces: deadRun } : {}) };
      const state = new StateStore(stateDir);
      // Back to bytes this host published; on a standby, to bytes of its own copy of a cut the other host published.
      const published = (await state.manifestText(to)) ?? (await manifestFromOwnCopy(stateDir, to));
      const sizes = await state.sizesOf(to);
      // The hold is written before any switch: a rollback killed between a switch and its hold would leave the
      // difusores back on the old cut with nothing to stop the next cron from putting the newer one back.
      const holdBefore = await readHold(stateDir);
      const reaching = rows.filter((r) => r.action === 'switch' || r.action === 'already').map((r) => r.difusor.id);
      const holdFor = (ids: string[]): RollbackHold => ({
        cut: to,
        at: ports.clock.now().toISOString(),
        run,
        ...(from ? { from } : {}),
        // Held: the difusores --only named, not every difusor (a later cron would roll the others back too).
        ...(opts.only.length > 0 ? { difusores: ids } : {}),
      });
      if (reaching.length > 0) await writeHold(stateDir, holdFor(reaching));
      const each: EachRollback = { to, journal, connector, claim, published, sizes, state, clock: ports.clock };
      const outcomes = await Promise.all(rows.map((row) => rollBackOne(row, each)));
      const hold = await settleHold(stateDir, outcomes, { reaching, holdBefore, holdFor });
      return {
        to,
        from,
        outcomes,
        skipped,
        hold,
        // A difusor back but not held there is named: the other host's cron could undo it.
        exitCode: exitCodeFor(outcomes) === 0 && outcomes.some((o) => o.error) ? 3 : exitCodeFor(outcomes),
        clock: ports.clock.fromEnv ? ports.clock.setting : undefined,
      };
    });
  } finally {
    await connector.dispose();
  }
}

/** What every difusor's rollback shares: the cut, the run's journal and lease claim, and the bytes it goes back to. */
interface EachRollback {
  to: string;
  journal: Journal;
  connector: DifusorConnector;
  claim: LeaseClaim;
  /** The manifest the release is checked against, when this host has one (published, or its own copy's). */
  published?: string;
  sizes?: Map<string, number>;
  state: StateStore;
  clock: Clock;
}

/** One difusor back to the cut (or held there, already on it), journaled; never throws. */
async function rollBackOne(row: { difusor: Difusor; serving: Serving; action: RollbackAction }, each: EachRollback): Promise<RollbackOutcome> {
  const { difusor: d, serving, action } = row;
  const { to, journal } = each;
  const previous = serving.live;
  const fail = async (error: string): Promise<RollbackOutcome> => {
    await journal.append({ phase: 'rollback', result: 'failed', difusor: d.id, cut: to, error, detail: { cut: to, from: previous ?? null } });
    return { id: d.id, result: 'failed', from: previous, error };
  };
  if (action === 'unreachable') return fail(serving.error ?? 'unreachable');
  if (action === 'lacking') return fail(`releases/${to} is not on the difusor (pruned, or never delivered)`);
  let holdError: string | undefined;
  try {
    holdError = await switchUnderLease(d, action, each);
  } catch (error) {
    // Already on the cut and merely not held there (unreachable now): it stays back, the outcome says so.
    if (action === 'switch' || error instanceof LeaseHeldError) return fail(errorText(error));
    holdError = errorText(error);
  }
  await each.state.recordResult(d.id, { at: each.clock.now().toISOString(), cut: to, result: 'live', live: to });
  await journal.append({ phase: 'rollback', result: 'ok', difusor: d.id, cut: to, detail: { cut: to, from: previous ?? null, switched: action === 'switch', ...(holdError ? { holdError } : {}) } });
  return { id: d.id, result: 'live', from: previous, ...(holdError ? { error: holdNotRecorded(holdError) } : {}) };
}

/**
 * Under the difusor's lease (one run at a time there, whichever host): the release checked against the bytes this
 * host knows, the hold set on the difusor, then the switch. A difusor already on the cut is held too: the other
 * host's cron must not move it on. Returns why the hold could not be recorded there, if it could not.
 */
async function switchUnderLease(d: Difusor, action: RollbackAction, each: EachRollback): Promise<string | undefined> {
  const { to, journal, claim } = each;
  const session = await each.connector.open(d);
  try {
    const lease = await takeLease(session, claim, { difusor: d.id });
    try {
      if (lease.takenOver) await journal.append({ phase: 'lease-takeover', result: 'info', difusor: d.id, cut: to, detail: takeoverDetail(claim.host, lease.takenOver) });
      if (action === 'switch' && each.published !== undefined) await refuseDifferentRelease(session, to, each.published, each.sizes);
      await lease.confirm();
      const holdError = await holdThere(session, to, claim);
      if (holdError) await journal.append({ phase: 'rollback-hold', result: 'failed', difusor: d.id, cut: to, error: holdError, detail: { cut: to } });
      if (action === 'switch') {
        await lease.confirm();
        const out = await helperStep(session, 'switch', [to]);
        if (out.stdout.trim() !== `live releases/${to}`) throw new Error(`current points to ${out.stdout.trim().replace(/^live /, '') || 'nothing'} after the switch`);
      }
      return holdError;
    } finally {
      await lease.release();
    }
  } finally {
    session.close();
  }
}

/** Back to bytes this host published (or its own copy of the cut), not just to a directory of that name. */
async function refuseDifferentRelease(session: DifusorSession, to: string, published: string, sizes: Map<string, number> | undefined): Promise<void> {
  const lines = manifestText([{ path: MANIFEST_NAME, sha256: sha256Hex(published) }]);
  const differences = compareRelease(published, parseVerify((await helperStep(session, 'audit', [to], lines)).stdout), sizes);
  if (differences.length > 0) throw new Error(`releases/${to} differs from what was published: ${differences.slice(0, 5).join('; ')}`);
}

/** The state dir's hold once the difusores answered: on those now back; none written ahead left when none moved. */
async function settleHold(
  stateDir: string,
  outcomes: RollbackOutcome[],
  ahead: { reaching: string[]; holdBefore?: RollbackHold; holdFor(ids: string[]): RollbackHold },
): Promise<RollbackHold | undefined> {
  const live = outcomes.filter((o) => o.result === 'live').map((o) => o.id);
  if (live.length > 0) {
    const hold = ahead.holdFor(live);
    await writeHold(stateDir, hold);
    return hold;
  }
  if (ahead.reaching.length > 0) {
    // Nothing moved back: the hold written ahead goes, and the one before (if any) is kept.
    if (ahead.holdBefore) await writeHold(stateDir, ahead.holdBefore);
    else await clearHold(stateDir);
  }
  return undefined;
}
