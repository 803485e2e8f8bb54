import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Difusor, Registry } from '../registry/types.js';
import { compareCutIds, isCutId, newestCut, parseCutId } from '../shared/cut-id.js';
import { wallToInstant } from '../registry/window.js';
import type { DifusorRecord, ProbeRecord } from '../records/state.js';
import type { DifusorConnector } from '../difusor-port.js';
import { badAnswer, printable } from './helper-answer.js';

/** One row of `difusion status`: what the difusor serves, how far behind it is, how it last went. */
export interface DifusorStatusRow {
  id: string;
  name: string;
  state: 'active' | 'suspended' | 'unreachable';
  live?: string;
  /** The notice `current` shows while the difusor is suspended (its notices/<stamp>). */
  notice?: string;
  releases: string[];
  freeKb?: number;
  /** Published cuts newer than the live one. */
  lagCuts?: number;
  lagMinutes?: number;
  lastResult?: DifusorRecord['lastResult'];
  /** What the last `probe` saw over HTTP. */
  probe?: LastProbe;
  error?: string;
}

export interface LastProbe {
  at: string;
  ok: boolean;
  kinds: string[];
  cut?: string;
  notice?: boolean;
  lagSeconds?: number;
}

export function lastProbe(record: ProbeRecord | undefined): LastProbe | undefined {
  if (!record) return undefined;
  const { row } = record;
  return {
    at: record.at,
    ok: row.ok,
    kinds: row.kinds,
    ...(row.cut ? { cut: row.cut } : {}),
    ...(row.notice ? { notice: true } : {}),
    ...(row.lagSeconds !== undefined ? { lagSeconds: row.lagSeconds } : {}),
  };
}

export interface StatusReport {
  newest?: string;
  difusores: DifusorStatusRow[];
  /** The journals whose switches counted as published, when more than this host's (`--journal`). */
  journals?: Array<{ file: string; host: string; entries: number; own: boolean; head?: string }>;
}

/** templates/difusion-helper.sh's HELPER_PROTOCOL: what this client expects an installed helper to speak. */
export const HELPER_PROTOCOL = 5;

export interface HelperStatus {
  /** The helper's HELPER_PROTOCOL; a helper installed before it had one says nothing. */
  protocol?: number;
  live?: string;
  currentInvalid: boolean;
  releases: string[];
  freeKb?: number;
  rsync?: string;
  writable?: boolean;
  /** current -> notices/<stamp>: the stamp. */
  notice?: string;
  aviso: boolean;
}

// A notice's stamp, as cutoff names notices/<stamp> (enforcement/notice.ts STAMP_PATTERN, which publish cannot import).
const NOTICE_STAMP = /^\d{8}_\d{6}$/;

/** What each line of the status verb may say (the helper's own output); any other value is a forged answer. */
const STATUS_VALUES: Record<string, { valid(value: string): boolean; what: string }> = {
  live: { valid: (v) => isCutId(v), what: 'a live that is not a cut id' },
  release: { valid: (v) => isCutId(v), what: 'a release that is not a cut id' },
  notice: { valid: (v) => NOTICE_STAMP.test(v), what: 'a notice that is not a stamp YYYYMMDD_HHMMSS' },
  free: { valid: (v) => /^\d{0,18}$/.test(v), what: 'a free that is not a number of KB' },
  protocol: { valid: (v) => /^\d{1,6}$/.test(v), what: 'a protocol that is not a number' },
  // Empty when the difusor has no rsync: said by preflight's rsync check.
  rsync: { valid: (v) => /^[A-Za-z0-9.+~-]{0,32}$/.test(v), what: 'an rsync version that is not one' },
  writable: { valid: (v) => v === 'yes' || v === 'no', what: 'a writable that is not yes or no' },
};

/**
 * The status verb's answer. Every value is checked against what the helper writes (a cut id, a stamp, a number):
 * a difusor's admin may forge it, and what it says is shown to the operator, journalled and compared. A line that
 * does not fit is refused naming the difusor (when given) and the line, escaped. Unknown keys (a newer helper) are
 * passed over.
 */
export function parseHelperStatus(stdout: string, difusor?: string): HelperStatus {
  const status: HelperStatus = { currentInvalid: false, releases: [], aviso: false };
  const from = { verb: 'status', ...(difusor !== undefined ? { difusor } : {}) };
  for (const line of stdout.split('\n')) {
    const space = line.indexOf(' ');
    const key = space < 0 ? line : line.slice(0, space);
    const value = space < 0 ? '' : line.slice(space + 1);
    const rule = Object.hasOwn(STATUS_VALUES, key) ? STATUS_VALUES[key] : undefined;
    if (rule && !rule.valid(value)) throw badAnswer(from, rule.what, line);
    if (key === 'live') status.live = value;
    else if (key === 'current-invalid') status.currentInvalid = true;
    else if (key === 'release') status.releases.push(value);
    else if (key === 'free') status.freeKb = Number(value);
    else if (key === 'rsync') status.rsync = value;
    else if (key === 'protocol') status.protocol = Number(value);
    else if (key === 'writable') status.writable = value === 'yes';
    else if (key === 'notice') {
      status.notice = value;
      status.aviso = true;
    }
  }
  return status;
}

/** The cuts this host has published: the manifests it keeps. */
export async function publishedCuts(stateDir: string): Promise<string[]> {
  const names = await readdir(path.join(stateDir, 'cuts')).catch(() => [] as string[]);
  return names.filter((n) => parseCutId(n)).sort(compareCutIds);
}

/** This host's published cuts and those another host published, once each, in cut order. */
function withOthers(own: string[], others: string[]): string[] {
  return [...new Set([...own, ...others.filter((c) => parseCutId(c))])].sort(compareCutIds);
}

export function lagOf(live: string | undefined, published: string[], timeZone: string): { cuts?: number; minutes?: number } {
  const newest = newestCut(published);
  if (!newest) return {};
  if (!live || !parseCutId(live)) return { cuts: published.length };
  const cuts = published.filter((c) => compareCutIds(c, live) > 0).length;
  const at = (c: string): number => wallToInstant((parseCutId(c) as { wall: string }).wall, timeZone).getTime();
  return { cuts, minutes: Math.max(0, Math.round((at(newest) - at(live)) / 60_000)) };
}

export async function gatherStatus(args: {
  registry: Registry;
  targets: Difusor[];
  connector: DifusorConnector;
  readRecord(id: string): Promise<DifusorRecord>;
  readProbe?(id: string): Promise<ProbeRecord | undefined>;
  timeoutMs: number;
  /** Cuts the other host's journal says it switched difusores to (the alternate site): published too. */
  alsoPublished?: string[];
}): Promise<StatusReport> {
  const { registry, targets } = args;
  const published = withOthers(await publishedCuts(registry.publication.state_dir), args.alsoPublished ?? []);
  const rows = await Promise.all(
    targets.map(async (d): Promise<DifusorStatusRow> => {
      const record = await args.readRecord(d.id);
      const row: DifusorStatusRow = { id: d.id, name: d.name, state: d.status, releases: [], lastResult: record.lastResult };
      const probe = lastProbe(await args.readProbe?.(d.id));
      if (probe) row.probe = probe;
      try {
        const session = await withTimeout(args.connector.open(d), args.timeoutMs, `no answer within ${args.timeoutMs / 1000} s`);
        try {
          const out = await session.helper('status', [], { timeoutMs: args.timeoutMs });
          if (out.code !== 0) throw new Error(printable(out.stderr.trim()) || `status failed (exit ${out.code})`);
          const status = parseHelperStatus(out.stdout, d.id);
          row.live = status.live;
          row.notice = status.notice;
          row.releases = status.releases;
          row.freeKb = status.freeKb;
          if (status.currentInvalid) row.error = 'current is not a symlink into releases/';
        } finally {
          session.close();
        }
      } catch (error) {
        row.state = 'unreachable';
        row.error = error instanceof Error ? error.message : String(error);
        row.live = record.live;
      }
      if (row.state !== 'unreachable') row.error ??= suspensionMismatch(d, row.notice);
      // A suspended difusor serves its notice on purpose: it is not behind on any cut.
      if (row.notice || d.status === 'suspended') return row;
      const lag = lagOf(row.live, published, registry.publication.timezone);
      row.lagCuts = lag.cuts;
      row.lagMinutes = lag.minutes;
      return row;
    }),
  );
  return { newest: newestCut(published), difusores: rows };
}

/** The registry and the difusor disagree about a suspension: the operator must learn it and what to run. */
export function suspensionMismatch(d: Pick<Difusor, 'id' | 'status'>, notice: string | undefined): string | undefined {
  if (d.status === 'suspended' && !notice) return `suspended, but the notice is NOT in place: run difusion cutoff ${d.id} again (the next publish tries too)`;
  if (d.status === 'active' && notice) return `shows the notice ${notice} though the registry says active: run difusion reinstate ${d.id}`;
  return undefined;
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
