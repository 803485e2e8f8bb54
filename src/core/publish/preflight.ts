import { randomBytes } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { deflateRaw } from 'node:zlib';
import { compressible } from './compression.js';
import { scanCut } from './cut.js';
import { compareCutIds, newestCut } from '../shared/cut-id.js';
import { HashCache, buildManifest, type Manifest } from '../shared/manifest.js';
import { StateStore } from '../records/state.js';
import type { Difusor } from '../registry/types.js';
import type { RedirectScope } from '../shared/egress.js';
import { HELPER_PROTOCOL, parseHelperStatus, type HelperStatus } from './status.js';
import { printable } from './helper-answer.js';
import type { DifusorConnector } from '../difusor-port.js';
import { readTakeover, type TakeoverOptions, type TakeoverView } from './takeover.js';

/** What preflight asks of HTTP: a GET with a deadline, reporting status or the reason it failed. */
export interface HttpResult {
  ok: boolean;
  status?: number;
  error?: string;
  body?: string;
}

/**
 * Readiness of each difusor, check by check, before election night (or before a run): SSH with the pinned
 * key, the helper, rsync 3.1, write access, free disk, HTTP, and the link's speed. For the speed, a few MB
 * are sent to every difusor at once (as a publish sends, sharing the uplink) into a file under .staging
 * that the helper removes at once; from the throughput each got and the newest cut's delta, the time each
 * would take to go live is predicted, and a difusor that would miss the one-minute rule is not ready.
 */
export interface PreflightCheck {
  name: 'ssh' | 'helper' | 'rsync' | 'write' | 'disk' | 'http' | 'speed';
  ok: boolean;
  detail: string;
}

export interface SpeedEstimate {
  /** Bytes per second the timed transfer got, the step's own round trip taken out. */
  bytesPerSecond: number;
  /** The newest cut's delta and when it would be live on this difusor, in seconds from the run's start. */
  deltaBytes: number;
  predictedSeconds: number;
  /** What goes over the wire: the delta, or its compressed size for a difusor with `compress: true`. */
  wireBytes: number;
  /** For a difusor without compression, when it would be live with it (only when that is sooner by a second or more). */
  compressedSeconds?: number;
}

export interface PreflightRow {
  id: string;
  ready: boolean;
  checks: PreflightCheck[];
  speed?: SpeedEstimate;
  /** What this host would do there on takeover: the lease, what it serves, what a publish of the cut would send. */
  takeover?: TakeoverView;
}

export interface PreflightReport {
  neededBytes: number;
  difusores: PreflightRow[];
  exitCode: 0 | 3;
}

export interface PreflightPorts {
  connector: DifusorConnector;
  /** Redirects followed only within `scope` (src/core/shared/egress.ts), as the probe follows them. */
  httpGet(url: string, timeoutMs: number, scope: RedirectScope): Promise<HttpResult>;
  /** A monotonic clock in ms (performance.now by default). */
  now?: () => number;
}

export interface SpeedOptions {
  /** Bytes of the timed transfer (a few MB). */
  probeBytes: number;
  /** The newest cut's delta: what a publish of it sends to each difusor. */
  deltaBytes: number;
  /** The same delta as rsync -z --skip-compress would send it (the text deflated, images and archives as they are). */
  compressedDeltaBytes?: number;
  /** The one-minute rule, in seconds. */
  limitSeconds: number;
}

export interface PreflightOptions {
  neededBytes: number;
  httpTimeoutMs: number;
  speed?: SpeedOptions;
  /** Read each difusor's lease and plan the cut's publish from this host (information: never a failure). */
  takeover?: TakeoverOptions;
}

/** Round trips a publish makes besides the transfer: prepare, link, verify, promote, switch. */
const PUBLISH_ROUND_TRIPS = 5;

/** When the delta would be live: the connection, the publish's round trips, and the delta at the measured rate. */
export function predictLive(args: { connectMs: number; roundTripMs: number; bytesPerSecond: number; deltaBytes: number }): number {
  const seconds = (args.connectMs + PUBLISH_ROUND_TRIPS * args.roundTripMs) / 1000 + args.deltaBytes / Math.max(1, args.bytesPerSecond);
  return Math.round(seconds * 10) / 10;
}

/** What a publish of `next` sends to a difusor that holds `previous`: the bytes of every file new or changed by content. */
export function deltaBytes(next: Array<{ path: string; size: number; sha256: string }>, previous: Map<string, string> | undefined): number {
  return next.filter((e) => previous?.get(e.path) !== e.sha256).reduce((n, e) => n + e.size, 0);
}

function probeData(bytes: number): string {
  // Incompressible, like the JPEGs that make most of a delta: a compressing link must not flatter itself.
  return randomBytes(Math.ceil((bytes * 3) / 4)).toString('base64').slice(0, bytes);
}

/** rsync 3.1 is what CentOS 7 ships and the oldest the transfer options are known to work with. */
export function rsyncAtLeast31(version: string | undefined): boolean {
  const m = /^(\d+)\.(\d+)/.exec(version ?? '');
  if (!m) return false;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > 3 || (major === 3 && minor >= 1);
}

export async function preflight(targets: Difusor[], opts: PreflightOptions, ports: PreflightPorts): Promise<PreflightReport> {
  const data = opts.speed ? probeData(opts.speed.probeBytes) : '';
  const rows = await Promise.all(targets.map((d) => checkOne(d, opts, ports, data)));
  return { neededBytes: opts.neededBytes, difusores: rows, exitCode: rows.every((r) => r.ready) ? 0 : 3 };
}

async function checkOne(d: Difusor, opts: PreflightOptions, ports: PreflightPorts, data: string): Promise<PreflightRow> {
  const now = ports.now ?? (() => performance.now());
  const checks: PreflightCheck[] = [];
  let speed: SpeedEstimate | undefined;
  let takeover: TakeoverView | undefined;
  const http = ports.httpGet(d.public_url, opts.httpTimeoutMs, { home: d.public_url, redirectHosts: d.redirect_hosts });
  let session;
  try {
    const t0 = now();
    session = await ports.connector.open(d);
    const connectMs = now() - t0;
    checks.push({ name: 'ssh', ok: true, detail: d.transport === 'local' ? 'local directory' : `reached with the pinned host key (${d.access} access)` });
    const t1 = now();
    const out = await session.helper('status', []);
    const roundTripMs = now() - t1;
    const parsed = out.code === 0 ? statusOrRefusal(out.stdout, d.id) : undefined;
    if (out.code !== 0) {
      checks.push({ name: 'helper', ok: false, detail: printable(out.stderr.trim()) || `status failed (exit ${out.code})` });
    } else if (parsed instanceof Error) {
      checks.push({ name: 'helper', ok: false, detail: parsed.message });
    } else if (parsed) {
      const status = parsed;
      // A shell account gets the helper inline on every step; a restricted one runs the copy its admin installed.
      const stale = d.access === 'restricted' && status.protocol !== HELPER_PROTOCOL;
      checks.push(
        stale
          ? {
              name: 'helper',
              ok: false,
              detail:
                `the installed helper speaks protocol ${status.protocol ?? 1}, this difusion needs ${HELPER_PROTOCOL}: ` +
                `the difusor's admin reinstalls it (difusion onboard ${d.id} prints it); until then every publish fails there`,
            }
          : { name: 'helper', ok: true, detail: status.live ? `serving ${status.live}` : 'no cut live yet' },
      );
      if (opts.takeover) takeover = await readTakeover(session, d, { live: status.live, notice: status.notice }, opts.takeover);
      checks.push({
        name: 'rsync',
        ok: rsyncAtLeast31(status.rsync),
        detail: status.rsync ? `rsync ${status.rsync}` : 'rsync not found on the difusor',
      });
      checks.push({ name: 'write', ok: status.writable === true, detail: status.writable ? `can write under ${d.path}` : `cannot write under ${d.path}` });
      const freeBytes = (status.freeKb ?? 0) * 1024;
      checks.push({
        name: 'disk',
        ok: freeBytes >= opts.neededBytes,
        detail: `${Math.floor(freeBytes / 1048576)} MB free, ${Math.ceil(opts.neededBytes / 1048576)} MB needed for a whole cut`,
      });
      if (opts.speed && status.writable === true) {
        const t2 = now();
        const sent = await session.helper('throughput', [], { stdin: data, timeoutMs: 120_000 });
        const ms = Math.max(1, now() - t2 - roundTripMs);
        const received = Number(/^received\s+(\d+)/m.exec(sent.stdout)?.[1] ?? NaN);
        if (sent.code !== 0 || received !== data.length) {
          checks.push({ name: 'speed', ok: false, detail: `the timed transfer failed: ${printable(sent.stderr.trim() || `received ${sent.stdout.trim() || 'nothing'}`)}` });
        } else {
          const bytesPerSecond = (received * 1000) / ms;
          speed = estimateSpeed({ connectMs, roundTripMs, bytesPerSecond }, opts.speed, d.compress === true);
          checks.push(speedCheck(speed, opts.speed, d.compress === true));
        }
      }
    }
  } catch (error) {
    checks.push({ name: 'ssh', ok: false, detail: printable(error instanceof Error ? error.message : String(error)) });
  } finally {
    session?.close();
  }
  const answer = await http;
  checks.push({
    name: 'http',
    ok: answer.ok,
    detail: answer.error !== undefined ? `${d.public_url}: ${answer.error}` : `${d.public_url} answered ${answer.status}`,
  });
  return { id: d.id, ready: checks.every((c) => c.ok), checks, ...(speed ? { speed } : {}), ...(takeover ? { takeover } : {}) };
}

/** The status verb's answer, or the error naming the line a forged one could not be read at. */
function statusOrRefusal(stdout: string, difusor: string): HelperStatus | Error {
  try {
    return parseHelperStatus(stdout, difusor);
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

/** When the delta would be live, compressed where the difusor says so, and whether compression would make it sooner. */
export function estimateSpeed(
  link: { connectMs: number; roundTripMs: number; bytesPerSecond: number },
  speed: SpeedOptions,
  compress: boolean,
): SpeedEstimate {
  const compressed = speed.compressedDeltaBytes ?? speed.deltaBytes;
  const wireBytes = compress ? compressed : speed.deltaBytes;
  const predictedSeconds = predictLive({ ...link, deltaBytes: wireBytes });
  const withCompression = predictLive({ ...link, deltaBytes: compressed });
  return {
    bytesPerSecond: link.bytesPerSecond,
    deltaBytes: speed.deltaBytes,
    wireBytes,
    predictedSeconds,
    ...(!compress && withCompression <= predictedSeconds - 1 ? { compressedSeconds: withCompression } : {}),
  };
}

function speedCheck(speed: SpeedEstimate, opts: SpeedOptions, compress: boolean): PreflightCheck {
  const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;
  const rate = `${((speed.bytesPerSecond * 8) / 1e6).toFixed(1)} Mbit/s`;
  const delta = `the newest cut's delta (${mb(speed.deltaBytes)}${compress ? `, ${mb(speed.wireBytes)} compressed` : ''})`;
  const ok = speed.predictedSeconds <= opts.limitSeconds;
  const advice =
    speed.compressedSeconds !== undefined
      ? `; with compress: true it would send ${mb(opts.compressedDeltaBytes ?? speed.deltaBytes)} and be live in ~${speed.compressedSeconds} s`
      : '';
  return {
    name: 'speed',
    ok,
    detail: ok
      ? `${rate}: ${delta} would be live in ~${speed.predictedSeconds} s${advice}`
      : `${rate}: ${delta} would take ~${speed.predictedSeconds} s, beyond the ${opts.limitSeconds} s rule${advice}; ` +
        'give this difusor a faster link, or publish it a smaller cut (see README: time to live)',
  };
}

/**
 * The newest cut's delta: what it changes against the cut before it in the same directory (by content, with
 * the publication's hash cache), or the whole cut when it is the first; and the cut's manifest, as publish makes it.
 */
export async function cutDelta(
  cutDir: string,
  stateDir: string,
  opts: { compressed?: boolean } = {},
): Promise<{ bytes: number; compressedBytes?: number; previous?: string; manifest: Manifest }> {
  const parent = path.dirname(cutDir);
  const cut = path.basename(cutDir);
  const entries = await readdir(parent, { withFileTypes: true }).catch(() => []);
  const previous = newestCut(entries.filter((e) => e.isDirectory() && compareCutIds(e.name, cut) < 0).map((e) => e.name));
  const cache = new HashCache(new StateStore(stateDir).hashCacheFile());
  await cache.load();
  const manifestOf = async (dir: string) => buildManifest(dir, await scanCut(dir), cache);
  const next = await manifestOf(cutDir);
  const before = previous ? await manifestOf(path.join(parent, previous)) : undefined;
  await cache.save().catch(() => undefined);
  const hashes = before ? new Map(before.entries.map((e) => [e.path, e.sha256])) : undefined;
  const changed = next.entries.filter((e) => hashes?.get(e.path) !== e.sha256);
  return {
    bytes: deltaBytes(next.entries, hashes),
    // Reading and deflating the text of the delta is only worth it when a link is timed to use it.
    ...(opts.compressed ? { compressedBytes: await compressedSize(cutDir, changed) } : {}),
    ...(previous ? { previous } : {}),
    manifest: next,
  };
}

const deflate = promisify(deflateRaw);

/** What rsync -z sends for these files: zlib at rsync's default level for the text, the rest as it is. */
async function compressedSize(dir: string, entries: Array<{ path: string; size: number }>): Promise<number> {
  let total = 0;
  for (const e of entries) {
    total += compressible(e.path) ? (await deflate(await readFile(path.join(dir, e.path)), { level: 6 })).length : e.size;
  }
  return total;
}
