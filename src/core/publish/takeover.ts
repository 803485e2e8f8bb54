import type { DifusorSession } from '../difusor-port.js';
import type { Difusor } from '../registry/types.js';
import { formatLocal } from '../registry/window.js';
import { isCutId } from '../shared/cut-id.js';
import type { Manifest } from '../shared/manifest.js';
import { heldByRollback, newerCutLive } from './forward.js';
import { badAnswer, isHelperTime, plainOrShown, printable, shownLine, type AnswerSource } from './helper-answer.js';
import { holderFromWords, type LeaseHolder } from './lease.js';
import { parsePrepare, planTransfer, type PlanKind, type PrepareReport } from './plan.js';

/**
 * What a standby would do on takeover, difusor by difusor, as `preflight` says it: whose lease is there (read
 * with `lease show`, which writes nothing), what the difusor serves, and, for a cut given, what a publish of it
 * from this host would send (read with `inspect`, which writes nothing, and planned as publish plans it).
 * Information, never a failure: a difusor held by the other host's live run is how the night goes.
 */

/** The lease as the difusor sees it; times are the difusor's epoch seconds. */
export type LeaseView =
  | { state: 'free'; now: number }
  | { state: 'held'; now: number; holder: LeaseHolder; mine: boolean }
  /** An expired holder (a dead run): a publish takes it over. Only a helper that reports it says so. */
  | { state: 'expired'; now: number; holder: LeaseHolder; mine: boolean }
  | { state: 'unknown'; detail: string };

export type SendKind = PlanKind | 'newer-live' | 'left-alone' | 'rollback-hold' | 'unknown';

/** What this host would send to the difusor on a publish of `cut`. */
export interface WouldSend {
  cut: string;
  kind: SendKind;
  /** What the plan would be, were the difusor not left alone or refused. */
  plan?: PlanKind;
  files?: number;
  bytes?: number;
  linked?: number;
  /** The release the new one would share files with. */
  base?: string;
  /** A publish by name lifts a rollback's hold on this cut (of either host). */
  liftsHold?: string;
  detail: string;
}

export interface TakeoverView {
  lease: LeaseView;
  /** In words: "free", "held by a (run r) since ..., expires in 93 s", ... */
  leaseDetail: string;
  live?: string;
  notice?: string;
  /** In words: "20220605_2015_PREP", "the notice 20220605T2100 (suspended)", "nothing yet". */
  serves: string;
  send?: WouldSend;
}

export interface TakeoverOptions {
  /** This host's name in leases (DIFUSION_HOST or the hostname). */
  host: string;
  /** publication.lease_s: a claim counted as at most this far ahead, as a `lease take` would count it. */
  leaseSeconds: number;
  timezone: string;
  /**
   * The cut a publish would send, with its manifest, whether the registry signs manifests, and whether it is
   * published by name (--cut: lifts a rollback's hold) or as cron's --latest (respects it).
   */
  cut?: { cut: string; manifest: Manifest; signed: boolean; byName: boolean };
  /** Hashes of a base release's manifest, when this host (its state dir, or the cuts directory) knows it. */
  manifestHashes(cut: string, digest: string | undefined): Promise<Map<string, string> | undefined>;
}

/**
 * `lease show`'s answer: "now N" then "held HOST RUN SINCE EXPIRY" or "free" (a helper that also names an expired
 * holder says "expired HOST RUN SINCE EXPIRY"), names and times checked as the helper writes them. Anything else
 * is an error naming the difusor (when `from` does), the verb and the line, shown escaped.
 */
export function parseLeaseShow(stdout: string, host: string, from: AnswerSource = { verb: 'lease show' }): LeaseView {
  let now: number | undefined;
  let view: LeaseView | undefined;
  for (const line of stdout.split('\n').filter(Boolean)) {
    const [word, ...rest] = line.trim().split(/\s+/);
    if (word === 'now' && rest.length === 1 && isHelperTime(rest[0])) {
      now = Number(rest[0]);
      continue;
    }
    if (now === undefined) throw badAnswer(from, 'no "now" first', line);
    const holder = holderFromWords(rest);
    if (word === 'free' && rest.length === 0) view ??= { state: 'free', now };
    else if ((word === 'held' || word === 'expired') && holder) view = { state: word, now, holder, mine: holder.host === host };
    else if (word === 'held' || word === 'expired') throw badAnswer(from, `a ${word} line that is not "${word} HOST RUN SINCE EXPIRY"`, line);
    else throw badAnswer(from, 'an unexpected line', line);
  }
  if (!view) throw badAnswer(from, 'no lease', stdout.trim() || '(nothing)');
  return view;
}

/** A difusor's epoch second in the publication's time zone; one no Date holds is said as the number, never thrown. */
function localTime(epochS: number, timezone: string): string {
  try {
    return formatLocal(new Date(epochS * 1000), timezone);
  } catch {
    return `${epochS} (epoch s)`;
  }
}

/**
 * "held by a (run r1) since 2022-06-05 20:15:02 (UTC-6), expires in 93 s (the difusor's clock)"; the holder's
 * since is shown in the publication's time zone, the expiry as seconds on the difusor's own clock. Never throws.
 */
export function describeLease(view: LeaseView, timezone: string): string {
  if (view.state === 'unknown') return `unknown: ${view.detail}`;
  if (view.state === 'free') return 'free';
  const { holder, now } = view;
  const who = `${plainOrShown(holder.host)} (run ${plainOrShown(holder.run)}${view.mine ? ', this host' : ''}) since ${localTime(holder.since, timezone)}`;
  if (view.state === 'expired') {
    return `expired ${Math.max(0, now - holder.expiry)} s ago, held by ${who}: a dead holder, a publish takes it over`;
  }
  const left = `expires in ${Math.max(0, holder.expiry - now)} s (the difusor's clock)`;
  // publish and rollback hold the host's lock, so another run of this same host holding a lease is over.
  return `held by ${who}, ${left}${view.mine ? ': a publish from here takes it over at once (one run at a time per host)' : ''}`;
}

/** The lease another host's live run holds here: a publish leaves the difusor alone. */
export function heldByOther(view: LeaseView): LeaseHolder | undefined {
  return view.state === 'held' && !view.mine ? view.holder : undefined;
}

function plural(n: number, one: string): string {
  return `${n} ${one}${n === 1 ? '' : 's'}`;
}

function describePlanKind(kind: PlanKind, cut: string, files: number, bytes: number, linked: number, base: string | undefined): string {
  if (kind === 'up-to-date') return `up to date: ${cut} is live and whole, nothing to send`;
  if (kind === 'switch-only') return `switch only: releases/${cut} is whole there, nothing to send`;
  if (kind === 'repair') return `a repair of releases/${cut}: ${plural(files, 'file')} / ${bytes} bytes`;
  return `a new release ${cut}: ${plural(files, 'file')} / ${bytes} bytes (linked: ${plural(linked, 'file')}${base ? ` from ${base}` : ''})`;
}

/**
 * What a publish of `cut` from this host would do there, in the order publish decides it: a difusor already serving
 * the cut whole is up to date without taking its lease (publish's read-only look first, where this host's record
 * says so or it has none: a standby); otherwise another host's live lease leaves the difusor alone; a rollback's
 * hold leaves it alone under --latest and is lifted by a publish by name; a newer cut live refuses it; else the
 * plan (as planTransfer makes it).
 */
export function wouldSend(args: {
  cut: string;
  byName: boolean;
  lease: LeaseView;
  report: PrepareReport;
  plan: { kind: PlanKind; send: Array<{ size: number }>; linked: number; bytesToSend: number; base?: string };
}): WouldSend {
  const { cut, byName, lease, report, plan } = args;
  const counts = { plan: plan.kind, files: plan.send.length, bytes: plan.bytesToSend, linked: plan.linked, ...(plan.base ? { base: plan.base } : {}) };
  const planned = describePlanKind(plan.kind, cut, counts.files, counts.bytes, counts.linked, plan.base);
  const holder = heldByOther(lease);
  const liftsHold = byName && report.hold !== undefined;
  if (plan.kind === 'up-to-date' && !liftsHold) {
    return { cut, kind: plan.kind, ...counts, detail: holder ? `${planned} (no lease needed: held by ${holder.host})` : planned };
  }
  if (holder) return { cut, kind: 'left-alone', ...counts, detail: `left alone: held by ${holder.host} (otherwise: ${planned})` };
  const held = byName ? undefined : heldByRollback(cut, report.live, report.hold);
  if (held) return { cut, kind: 'rollback-hold', ...counts, detail: `left alone: ${held}` };
  const lifts = liftsHold && report.hold ? { liftsHold: report.hold.cut } : {};
  const lifting = liftsHold && report.hold ? `lifts the rollback hold on ${report.hold.cut} of ${report.hold.host}, then ` : '';
  const newer = newerCutLive(cut, report.live);
  if (newer) return { cut, kind: 'newer-live', ...counts, ...lifts, detail: `${lifting}refused: ${newer}` };
  return { cut, kind: plan.kind, ...counts, ...lifts, detail: `${lifting}${planned}` };
}

function servesOf(live: string | undefined, notice: string | undefined): string {
  if (live) return isCutId(live) ? live : `not a cut: ${shownLine(live)}`;
  // A notice is named as the difusor named it (whatever current points to under notices/): shown escaped if odd.
  if (notice) return `the notice ${plainOrShown(notice)} (suspended)`;
  return 'nothing yet';
}

function failure(out: { code: number; stdout: string; stderr: string }): string {
  return printable((out.stderr || out.stdout).trim().split('\n').slice(-2).join(' | ')) || `exit ${out.code}`;
}

/**
 * Reads the lease and, with a cut, what a publish would send, over a session preflight already opened. `status`
 * (already asked) says what the difusor serves. Never throws: what cannot be read is said so.
 */
export async function readTakeover(
  session: DifusorSession,
  d: Difusor,
  served: { live?: string; notice?: string },
  opts: TakeoverOptions,
): Promise<TakeoverView> {
  let lease: LeaseView;
  try {
    const out = await session.helper('lease', ['show', String(opts.leaseSeconds)]);
    if (out.code !== 0) {
      const said = failure(out);
      lease = {
        state: 'unknown',
        detail: /unknown verb|refused: not a difusion request/.test(said)
          ? `the installed helper has no lease verb (${said}): the difusor's admin reinstalls it (difusion onboard ${d.id} prints it)`
          : `lease show failed: ${said}`,
      };
    } else {
      lease = parseLeaseShow(out.stdout, opts.host, { verb: 'lease show', difusor: d.id });
    }
  } catch (error) {
    lease = { state: 'unknown', detail: messageOf(error) };
  }
  let leaseDetail: string;
  try {
    leaseDetail = describeLease(lease, opts.timezone);
  } catch (error) {
    leaseDetail = `unknown: ${messageOf(error)}`;
  }
  const view: TakeoverView = {
    lease,
    leaseDetail,
    // status's live, as status read it: kept only when it is a cut id (servesOf says what else it was).
    ...(served.live && isCutId(served.live) ? { live: served.live } : {}),
    ...(served.notice ? { notice: served.notice } : {}),
    serves: servesOf(served.live, served.notice),
  };
  if (!opts.cut) return view;
  const { cut, manifest, signed, byName } = opts.cut;
  try {
    const out = await session.helper('inspect', [cut]);
    if (out.code !== 0) {
      view.send = { cut, kind: 'unknown', detail: `inspect failed: ${failure(out)}` };
      return view;
    }
    const report = parsePrepare(out.stdout, { verb: 'inspect', difusor: d.id });
    // inspect's live is the fresher look (status came first).
    if (report.live && report.live !== view.live) {
      view.live = report.live;
      view.serves = report.live;
    }
    // The cut's own release, whole there: the manifest in hand is its manifest when the digests agree (a publish
    // keeps it in the state dir before it plans, so it finds it the same way).
    const own = report.base === cut && report.baseManifestDigest === manifest.digest;
    const baseHashes = own
      ? new Map(manifest.entries.map((e) => [e.path, e.sha256]))
      : report.base
        ? await opts.manifestHashes(report.base, report.baseManifestDigest)
        : undefined;
    const plan = planTransfer({ cut, manifest, report, baseHashes, signed });
    view.send = wouldSend({ cut, byName, lease, report, plan });
  } catch (error) {
    view.send = { cut, kind: 'unknown', detail: messageOf(error) };
  }
  return view;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : printable(String(error));
}
