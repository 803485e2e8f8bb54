import type { Difusor } from '../registry/types.js';
import type { RedirectScope } from '../shared/egress.js';
import { compareCutIds, newestCut } from '../shared/cut-id.js';
import { parseManifest } from '../shared/manifest.js';
import { MANIFEST_NAME } from '../publish/plan.js';
import { openJournal, type JournalContext, type JournalEntry, type JournalRecord } from '../records/journal.js';
import { acquireLock, describeHolder, isLockHeld } from '../records/lock.js';
import type { StateStore } from '../records/state.js';
import type { PeerCertificate, ProbeFailureKind, ProbeRow } from '../records/probe-row.js';
import { foundLive } from './went-live.js';

export type { PeerCertificate, ProbeFailureKind, ProbeRow } from '../records/probe-row.js';

/**
 * What the public sees: each difusor probed over HTTP(S) as a visitor gets it, through its Apache,
 * CDN or cache — not the files on its disk (that is `verify`).
 *
 * 1. Fetch `MANIFEST.sha256` (no-cache, a cache-busting query on every request) and identify what is
 *    served by the SHA-256 of its bytes: a cut this host published (its copy in the state dir), the
 *    suspension notice (a manifest of index.html and aviso.json), or neither.
 * 2. A cut: fetch a sample of its files — the aggregates always (the files at the cut's root and the
 *    data under datos/ that people and scrapers read: json, csv, html, txt, xml), plus a random set
 *    drawn anew each run; `full`: every file — each streamed through SHA-256, compared with the manifest.
 * 3. Lag the Debian-mirror way: 0 while serving the newest cut that went live; otherwise the time since
 *    the first newer cut went live on any difusor (the journal's switch entries; a rollback withdraws,
 *    for each difusor it moved, the cuts newer than the one it went back to).
 * 4. A suspended difusor must show the notice: /aviso.json names it, every other path answers 503 with
 *    the notice's page and `Cache-Control: no-store`.
 * A difusor fails on lag beyond the limit, a differing file, no answer, a bad certificate, a manifest
 * this host never published, a missing notice, or a redirect away from itself (src/core/shared/egress.ts: only its
 * own origin, http to https on its host, and the registry's redirect_hosts are followed). The command
 * journals failures with their detail for the operator and keeps the result; what is shown to the public
 * is the state and PUBLIC_WORDING, never an error text, address or port.
 */


/**
 * What the public reads for each kind (the roster, the public board): fixed sentences. The journal's error
 * names addresses and ports, some inside the institute's network; none of it is ever shown outside.
 */
export const PUBLIC_WORDING: Readonly<Record<ProbeFailureKind, string>> = {
  lag: 'Muestra un corte anterior al más reciente.',
  differs: 'Algunos archivos no coinciden con los publicados por el instituto.',
  down: 'No responde.',
  certificate: 'Su certificado de seguridad no es válido.',
  'notice-missing': 'No muestra el aviso de suspensión.',
  'unknown-cut': 'Muestra contenido que el instituto no publicó.',
  redirect: 'Envía a los visitantes a otro sitio.',
};

/** A difusor's probe result as the public may see it: the state and the fixed wording, nothing else. */
export interface PublicProbeState {
  id: string;
  state: 'ok' | 'falla';
  kinds: ProbeFailureKind[];
  wording: string[];
  at: string;
}

export function publicProbeState(row: Pick<ProbeRow, 'id' | 'ok' | 'kinds'>, at: string): PublicProbeState {
  const kinds = row.kinds.filter((k): k is ProbeFailureKind => Object.hasOwn(PUBLIC_WORDING, k));
  return { id: row.id, state: row.ok ? 'ok' : 'falla', kinds, wording: kinds.map((k) => PUBLIC_WORDING[k]), at };
}

/** The largest MANIFEST.sha256 read (the state dir's largest is far below) and the largest aviso.json. */
export const MAX_MANIFEST_BYTES = 64 * 1048576;
export const MAX_AVISO_BYTES = 64 * 1024;


/** One GET as the probe needs it: status, the body's SHA-256 (streamed), times, the peer certificate. */
export interface HttpAnswer {
  status?: number;
  /** Lower-case header names. */
  headers: Record<string, string | undefined>;
  sha256?: string;
  bytes: number;
  /** Only when asked for (manifests, aviso.json): small documents. */
  body?: Buffer;
  ttfbMs?: number;
  totalMs: number;
  error?: string;
  /** The request failed on the server's certificate (expired, self-signed, wrong name). */
  certificateError?: boolean;
  certificate?: PeerCertificate;
  /** A redirect not followed: "sends visitors to HOST" or "redirects in a loop"; `location` as sent (cut short). */
  redirect?: string;
  location?: string;
  /** The body ran past maxBytes: it was not read further (with `error`). */
  tooLarge?: boolean;
}

/** What the probe asks of HTTP; src/adapters/http.ts implements it with undici. */
export interface ProbeHttp {
  /**
   * GET with `Cache-Control: no-cache`; the body is hashed as it streams and kept only with keepBody; past
   * maxBytes it is not read further. Redirects are followed only as `scope` allows (default: the URL's origin).
   */
  get(url: string, opts?: { keepBody?: boolean; maxBytes?: number; scope?: RedirectScope; statusOnly?: boolean }): Promise<HttpAnswer>;
}

export interface ProbeKnowledge {
  /** The published cut whose MANIFEST.sha256 has these bytes, from the copies in the state dir. */
  cutOfManifest(digest: string, bytes: number): Promise<string | undefined>;
  /** The manifest's file hashes of that cut. */
  manifestHashes(cut: string, digest: string): Promise<Map<string, string> | undefined>;
  /** When each cut first went live, as it counts for this difusor's lag (its own rollbacks withdraw newer cuts). */
  wentLive(difusor: string): Map<string, Date>;
  /** Each file's size in that cut, when the state dir has it: a body longer is not read past it. */
  fileSizes?(cut: string): Promise<Map<string, number> | undefined>;
}

export interface ProbeOptions {
  maxLagSeconds: number;
  full: boolean;
  /** Random files per difusor on top of the aggregates. */
  sampleSize: number;
  /** Difusores probed at once. */
  concurrency: number;
  /** Files fetched at once from one difusor. */
  filesPerDifusor: number;
  /** The run's clock: lag is measured against it. */
  now: Date;
  /** The real time: TLS judged the certificate against it, so days left are counted from it too. */
  certificateNow: Date;
  /** Unique per run; with a counter it makes every URL unique, past any cache. */
  token: string;
}

export interface ProbePorts {
  http: ProbeHttp;
  knowledge: ProbeKnowledge;
  random?: () => number;
  monotonicMs?: () => number;
}


export interface ProbeReport {
  at: string;
  newest?: string;
  maxLagSeconds: number;
  full: boolean;
  difusores: ProbeRow[];
  /** 0 every difusor passed, 6 one or more failed. */
  exitCode: 0 | 6;
}

export const CERTIFICATE_WARN_DAYS = 14;
export const AVISO_NAME = 'aviso.json';
const DATA_FORMATS = /\.(json|csv|html?|txt|xml)$/i;

/** The files every probe fetches: the cut's root files and the data under datos/. */
export function isAggregate(file: string): boolean {
  return !file.includes('/') || (/^datos\/[^/]+$/.test(file) && DATA_FORMATS.test(file));
}

/** The aggregates plus `size` other files drawn at random, so successive runs cover different files. */
export function chooseSample(files: string[], size: number, random: () => number = Math.random): string[] {
  return sampleOf(partition(files), size, random);
}

interface Partition {
  aggregates: string[];
  others: string[];
}

function partition(files: Iterable<string>): Partition {
  const out: Partition = { aggregates: [], others: [] };
  for (const f of files) (isAggregate(f) ? out.aggregates : out.others).push(f);
  return out;
}

/** Floyd's draw of `size` distinct files: as many random numbers as files wanted, whatever the cut's size. */
function sampleOf({ aggregates, others }: Partition, size: number, random: () => number): string[] {
  if (size >= others.length) return [...aggregates, ...others];
  const picked = new Set<number>();
  for (let j = others.length - size; j < others.length; j++) {
    const t = Math.floor(random() * (j + 1));
    picked.add(picked.has(t) ? j : t);
  }
  return [...aggregates, ...[...picked].map((i) => others[i] as string)];
}

/** Per parsed manifest (one per cut and run, however many difusores serve it), its files split once. */
const partitions = new WeakMap<Map<string, string>, Partition>();

/**
 * The time each cut first went live, as it counts for one difusor: the earliest switch of that cut on any
 * difusor (or the earliest a publish found it live there, see foundLive). A rollback of this difusor withdraws the cuts newer than the one it went back to (the institute
 * chose that cut for it); a `rollback --only` of others leaves them counting here. A later switch puts a cut
 * live again. Without a difusor: switches only, what went live anywhere.
 */
export function wentLiveTimes(entries: JournalEntry[], difusor?: string): Map<string, Date> {
  const out = new Map<string, Date>();
  for (const e of entries) {
    if (!e.cut || !(e.result === 'ok' || foundLive(e))) continue;
    if (e.phase === 'rollback') {
      if (difusor === undefined || (e.difusor !== undefined && e.difusor !== difusor)) continue;
      for (const cut of [...out.keys()]) if (compareCutIds(cut, e.cut) > 0) out.delete(cut);
      continue;
    }
    if (e.phase !== 'switch' && !foundLive(e)) continue;
    const switchedAt = typeof e.detail?.switchedAt === 'string' ? e.detail.switchedAt : e.at;
    const at = new Date(switchedAt);
    if (Number.isNaN(at.getTime())) continue;
    const known = out.get(e.cut);
    if (!known || at < known) out.set(e.cut, at);
  }
  return out;
}

/** 0 while nothing newer went live; else seconds since the first newer cut did. */
export function lagSeconds(served: string, wentLive: Map<string, Date>, now: Date): number {
  let first: number | undefined;
  for (const [cut, at] of wentLive) {
    if (compareCutIds(cut, served) > 0) first = Math.min(first ?? Infinity, at.getTime());
  }
  return first === undefined ? 0 : Math.max(0, Math.round((now.getTime() - first) / 1000));
}

/** The URL of a file below the difusor's public URL, every segment encoded, with the cache-busting query. */
export function fileUrl(publicUrl: string, file: string, bust: string): string {
  const base = publicUrl.endsWith('/') ? publicUrl : `${publicUrl}/`;
  const encoded = file.split('/').map(encodeURIComponent).join('/');
  return `${base}${encoded}?difusion-probe=${encodeURIComponent(bust)}`;
}

export async function probeDifusores(targets: Difusor[], opts: ProbeOptions, ports: ProbePorts): Promise<ProbeReport> {
  const rows = new Map<string, ProbeRow>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < targets.length) {
      const d = targets[next++] as Difusor;
      rows.set(d.id, await probeOne(d, opts, ports));
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency, targets.length)) }, worker));
  const difusores = targets.map((d) => rows.get(d.id) as ProbeRow);
  return {
    at: opts.now.toISOString(),
    newest: newestCut(targets.flatMap((d) => [...ports.knowledge.wentLive(d.id).keys()])),
    maxLagSeconds: opts.maxLagSeconds,
    full: opts.full,
    difusores,
    exitCode: difusores.every((r) => r.ok) ? 0 : 6,
  };
}

async function probeOne(d: Difusor, opts: ProbeOptions, ports: ProbePorts): Promise<ProbeRow> {
  const clock = ports.monotonicMs ?? (() => performance.now());
  const started = clock();
  let requests = 0;
  const url = (file: string): string => fileUrl(d.public_url, file, `${opts.token}-${++requests}`);
  const scope: RedirectScope = { home: d.public_url, redirectHosts: d.redirect_hosts };
  const get = (file: string, extra: { keepBody?: boolean; maxBytes?: number } = {}): Promise<HttpAnswer> => ports.http.get(url(file), { ...extra, scope });
  const row: ProbeRow = {
    id: d.id,
    name: d.name,
    registryStatus: d.status,
    ok: false,
    kinds: [],
    filesChecked: 0,
    differing: [],
    bytes: 0,
    totalMs: 0,
    warnings: [],
  };
  const fail = (kind: ProbeFailureKind, error?: string): void => {
    if (!row.kinds.includes(kind)) row.kinds.push(kind);
    if (error && !row.error) row.error = error;
  };

  const manifest = await get(MANIFEST_NAME, { keepBody: true, maxBytes: MAX_MANIFEST_BYTES });
  row.status = manifest.status;
  row.ttfbMs = manifest.ttfbMs;
  row.bytes += manifest.bytes;
  if (manifest.certificate) {
    const daysLeft = Math.floor((Date.parse(manifest.certificate.validTo) - opts.certificateNow.getTime()) / 86_400_000);
    row.certificate = { ...manifest.certificate, daysLeft };
    if (daysLeft < CERTIFICATE_WARN_DAYS) row.warnings.push(`certificate expires in ${daysLeft} day(s) (${manifest.certificate.validTo})`);
  }

  const suspended = d.status === 'suspended';
  if (manifest.redirect) {
    fail('redirect', `${d.public_url}: ${manifest.redirect} (Location: ${manifest.location}); a difusor serves the results itself (a CDN of its own: list its host under redirect_hosts)`);
  } else if (manifest.tooLarge) {
    fail('unknown-cut', `${d.public_url.replace(/\/?$/, '/')}${MANIFEST_NAME} is longer than ${MAX_MANIFEST_BYTES} bytes, not a manifest this host published`);
  } else if (manifest.certificateError) {
    fail('certificate', `${d.public_url}: ${manifest.error}; its admin must renew or fix the certificate (a private CA: trust it with NODE_EXTRA_CA_CERTS=FILE)`);
  } else if (manifest.error !== undefined) fail('down', `${d.public_url}: ${manifest.error}; check its web server and public_url in the registry`);
  else if (manifest.status !== 200 || !manifest.body || !manifest.sha256) {
    fail('down', `${d.public_url.replace(/\/?$/, '/')}${MANIFEST_NAME} answered ${manifest.status}, not 200; is public_url the address that serves \`current\`?`);
  } else {
    const cut = await ports.knowledge.cutOfManifest(manifest.sha256, manifest.body.length);
    if (cut) {
      row.cut = cut;
      row.lagSeconds = lagSeconds(cut, ports.knowledge.wentLive(d.id), opts.now);
      if (suspended) fail('notice-missing', `suspended, but serves cut ${cut} instead of the notice`);
      else {
        if (row.lagSeconds > opts.maxLagSeconds) {
          fail(
            'lag',
            `serves ${cut}, ${row.lagSeconds} s behind a newer cut (limit ${opts.maxLagSeconds} s); \`difusion verify --only ${d.id}\` tells a stale disk from a cache in front`,
          );
        }
        await checkFiles(cut, manifest.sha256, row, opts, ports, get, fail);
      }
    } else {
      const listed = parseManifest(manifest.body.toString('utf8'));
      if (listed.has(AVISO_NAME) && listed.has('index.html')) {
        await checkNotice(d, listed, row, get, fail);
        if (!suspended) fail('unknown-cut', `shows a suspension notice but is active in the registry (run \`difusion reinstate ${d.id}\`)`);
      } else {
        fail(
          'unknown-cut',
          `serves a ${MANIFEST_NAME} (sha256 ${manifest.sha256.slice(0, 12)}…) that matches no cut this host published; \`difusion verify --only ${d.id}\` shows what its disk holds`,
        );
      }
    }
  }
  if (suspended && row.kinds.length > 0) fail('notice-missing');
  row.ok = row.kinds.length === 0;
  row.totalMs = Math.round(clock() - started);
  return row;
}

type Fail = (kind: ProbeFailureKind, error?: string) => void;
type Get = (file: string, extra?: { keepBody?: boolean; maxBytes?: number }) => Promise<HttpAnswer>;

async function checkFiles(cut: string, digest: string, row: ProbeRow, opts: ProbeOptions, ports: ProbePorts, get: Get, fail: Fail): Promise<void> {
  const hashes = await ports.knowledge.manifestHashes(cut, digest);
  const sizes = await ports.knowledge.fileSizes?.(cut);
  if (!hashes) {
    fail('unknown-cut', `this host's manifest of ${cut} could not be read back`);
    return;
  }
  let split = partitions.get(hashes);
  if (!split) {
    split = partition(hashes.keys());
    partitions.set(hashes, split);
  }
  const files = opts.full ? [...hashes.keys()] : sampleOf(split, opts.sampleSize, ports.random ?? Math.random);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const file = files[next++] as string;
      const size = sizes?.get(file);
      const answer = await get(file, size === undefined ? {} : { maxBytes: size });
      row.filesChecked++;
      row.bytes += answer.bytes;
      if (answer.redirect) {
        fail('redirect', `${file}: ${answer.redirect} (Location: ${answer.location})`);
      } else if (answer.tooLarge) {
        row.differing.push(`${file}: content differs (longer than its ${size} bytes in ${cut}; not read further)`);
      } else if (answer.error !== undefined) {
        fail(answer.certificateError ? 'certificate' : 'down', `${file}: ${answer.error}`);
      } else if (answer.status !== 200) {
        row.differing.push(`${file}: HTTP ${answer.status}`);
      } else if (answer.sha256 !== hashes.get(file)) {
        row.differing.push(`${file}: content differs (${answer.bytes} bytes, sha256 ${answer.sha256?.slice(0, 12)}…)`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.filesPerDifusor, files.length)) }, worker));
  row.differing.sort();
  if (row.differing.length > 0) fail('differs', `${row.differing.length} of ${row.filesChecked} files differ from ${cut}`);
}

/** The notice as the contract has it: /aviso.json names the difusor, every other path is the notice, 503, no-store. */
async function checkNotice(d: Difusor, listed: Map<string, string>, row: ProbeRow, get: Get, fail: Fail): Promise<void> {
  const aviso = await get(AVISO_NAME, { keepBody: true, maxBytes: MAX_AVISO_BYTES });
  row.filesChecked++;
  row.bytes += aviso.bytes;
  if (aviso.redirect) fail('redirect', `/${AVISO_NAME}: ${aviso.redirect} (Location: ${aviso.location})`);
  if (aviso.status !== 200 || !aviso.body) row.differing.push(`/${AVISO_NAME}: ${aviso.redirect ?? aviso.error ?? `HTTP ${aviso.status}`}`);
  else if (aviso.sha256 !== listed.get(AVISO_NAME)) row.differing.push(`/${AVISO_NAME}: content differs from the notice's manifest`);
  else {
    try {
      const notice = JSON.parse(aviso.body.toString('utf8')) as { aviso?: unknown; difusor?: unknown; at?: unknown; reason?: unknown };
      row.notice = { at: typeof notice.at === 'string' ? notice.at : undefined, reason: typeof notice.reason === 'string' ? notice.reason : undefined };
      if (notice.aviso !== 'suspension') row.differing.push(`/${AVISO_NAME}: not a suspension notice`);
      else if (notice.difusor !== d.id) row.differing.push(`/${AVISO_NAME}: names difusor ${JSON.stringify(notice.difusor)}, not ${d.id}`);
    } catch {
      row.differing.push(`/${AVISO_NAME}: not JSON`);
    }
  }
  // The page itself, a path a visitor would type, and a data path a scraper would fetch.
  for (const file of ['', 'index.html', 'datos/']) {
    const answer = await get(file);
    row.filesChecked++;
    row.bytes += answer.bytes;
    const shown = `/${file}`;
    if (answer.redirect) {
      fail('redirect', `${shown}: ${answer.redirect} (Location: ${answer.location})`);
      row.differing.push(`${shown}: ${answer.redirect}`);
    } else if (answer.error !== undefined) row.differing.push(`${shown}: ${answer.error}`);
    else if (answer.status !== 503) row.differing.push(`${shown}: HTTP ${answer.status}, not the notice's 503`);
    else if (answer.sha256 !== listed.get('index.html')) row.differing.push(`${shown}: 503 but not the notice's page`);
    // Without no-store a cache in front keeps the notice after the reinstatement, or keeps the results it replaced.
    else if (!/(^|,)\s*no-store\s*(,|$)/i.test(answer.headers['cache-control'] ?? '')) {
      row.differing.push(`${shown}: the notice's 503 without Cache-Control: no-store (${answer.headers['cache-control'] ?? 'none'})`);
    }
  }
  if (row.differing.length > 0) fail('notice-missing', `the notice is not shown on every path: ${row.differing[0]}`);
}

/** The journal entries of a probe run: one per failing difusor (an incident), then one summary. */
export function probeJournalRecords(report: ProbeReport): JournalRecord[] {
  const incidents: JournalRecord[] = report.difusores
    .filter((r) => !r.ok)
    .map((r) => ({
      phase: 'probe',
      result: 'failed',
      difusor: r.id,
      ...(r.cut ? { cut: r.cut } : {}),
      ...(r.error ? { error: r.error } : {}),
      detail: {
        kinds: r.kinds,
        ...(r.lagSeconds !== undefined ? { lagSeconds: r.lagSeconds } : {}),
        ...(r.differing.length > 0 ? { files: r.differing.slice(0, 20) } : {}),
        ...(r.status !== undefined ? { status: r.status } : {}),
        ...(r.error ? { error: r.error } : {}),
      },
    }));
  const summary: JournalRecord = {
    phase: 'probe',
    result: 'info',
    detail: {
      difusores: report.difusores.length,
      failed: report.difusores.filter((r) => !r.ok).map((r) => r.id),
      newest: report.newest ?? null,
      maxLagSeconds: report.maxLagSeconds,
      full: report.full,
    },
  };
  return [...incidents, summary];
}

/** What a watch round compares with the previous one: a new, changed or lifted failure is news to journal. */
export function failureSignature(report: ProbeReport): string {
  return JSON.stringify(report.difusores.filter((r) => !r.ok).map((r) => [r.id, r.cut ?? null, r.kinds]));
}

export interface KeepResult {
  journaled: number;
  /** Set when another run held the lock past the wait: the incidents wait in the state dir for the next probe. */
  deferredBy?: string;
}

/**
 * Journals the run's incidents (with any an earlier probe had to leave aside) under the state lock, and
 * writes each difusor's last result. A publish holding the lock is waited for; past `lockWaitMs` the
 * incidents are kept for the next probe rather than written to a journal another run is appending to.
 */
export async function keepProbe(
  report: ProbeReport,
  ctx: { state: StateStore; journal: JournalContext; journalThisRun: boolean; lockWaitMs: number },
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
): Promise<KeepResult> {
  const { state } = ctx;
  const earlier = await state.readUnjournaled();
  const fresh = ctx.journalThisRun ? probeJournalRecords(report).map((r) => ({ ...r, detail: { ...r.detail, probedAt: report.at } })) : [];
  const records = [...earlier, ...fresh];
  const result: KeepResult = { journaled: 0 };
  if (records.length > 0) {
    const deadline = Date.now() + ctx.lockWaitMs;
    for (;;) {
      const lock = await acquireLock(state.dir, { runId: ctx.journal.run, command: ctx.journal.command });
      if (!isLockHeld(lock)) {
        try {
          const journal = await openJournal(state.dir, ctx.journal);
          for (const record of records) await journal.append(record);
          if (earlier.length > 0) await state.saveUnjournaled([]);
          result.journaled = records.length;
        } finally {
          await lock.release();
        }
        break;
      }
      if (Date.now() >= deadline) {
        await state.saveUnjournaled(records);
        result.deferredBy = describeHolder(lock.held);
        break;
      }
      await sleep(250);
    }
  }
  await Promise.all(report.difusores.map((row) => state.saveProbe(row.id, { at: report.at, run: ctx.journal.run, row })));
  return result;
}
