import { isCutId } from '../shared/cut-id.js';
import { isLeaseName } from '../shared/host-name.js';
import type { Manifest, ManifestEntry } from '../shared/manifest.js';
import { badAnswer, isHelperTime, printable, shownLine, type AnswerSource } from './helper-answer.js';

/** What `prepare` reported about a difusor: its live cut and the release the new one can share files with. */
export interface PrepareReport {
  live?: string;
  base?: string;
  /** SHA-256 of the base release's MANIFEST.sha256, when it has one. */
  baseManifestDigest?: string;
  freeKb?: number;
  /**
   * prepare --stage built .staging/<cut> itself (a new release): the files below are then the staging's,
   * the base's files whose hashes the two manifests agree on, linked, and the new manifest.
   */
  staged?: string;
  /** Regular files of the base release (or of the staging, when staged): path → size. */
  files: Map<string, number>;
  /** Anything in the base release that is neither a file nor a directory (never linked, always dropped). */
  others: string[];
  /** The cut a rollback holds this difusor on, recorded there for every publication host (.lease/hold). */
  hold?: DifusorHold;
  /** The last such hold, lifted by a publish by name (the difusor is not held). */
  lifted?: DifusorHold;
}

/** A rollback's hold as the difusor keeps it: the cut, the host and run that set (or lifted) it, and when (the difusor's epoch s). */
export interface DifusorHold {
  cut: string;
  host: string;
  run: string;
  since: number;
}

/**
 * "CUT HOST RUN SINCE" of a hold or lifted line, checked as the helper checks what it writes (a cut id, lease names,
 * a time of at most 12 digits); anything else is an error naming the line (`from` says whose answer it is).
 */
export function parseHoldWords(value: string, from: AnswerSource = { verb: 'prepare' }, key = 'hold'): DifusorHold {
  const [cut, host, run, since, ...rest] = value.split(' ');
  if (cut === undefined || !isCutId(cut) || !isLeaseName(host ?? '') || !isLeaseName(run ?? '') || !isHelperTime(since) || rest.length > 0) {
    throw badAnswer(from, `a ${key} line that is not "${key} CUT HOST RUN SINCE"`, `${key} ${value}`);
  }
  return { cut, host: host as string, run: run as string, since: Number(since) };
}

export interface InventoryReport {
  files: Map<string, number>;
  others: string[];
}

function parseInventoryLine(line: string, into: InventoryReport): boolean {
  if (line.startsWith('f ')) {
    const space = line.indexOf(' ', 2);
    if (space < 0) return false;
    into.files.set(line.slice(space + 1), Number(line.slice(2, space)));
    return true;
  }
  if (line.startsWith('o ')) {
    into.others.push(line.slice(2));
    return true;
  }
  return false;
}

const MANIFEST_DIGEST = /^[0-9a-f]{64}$/;
const KB = /^\d{1,15}$/;

/**
 * prepare's (and inspect's) answer. What the client acts on or shows is checked as the helper writes it: live, base
 * and staged are cut ids (a difusor showing a notice has no live line: status names the notice), the base's manifest
 * digest is SHA-256 hex, free space is digits (or unknown), a hold or lifted line is whole. Anything else is an error naming
 * the difusor (`from`), the verb and the line, shown escaped. Lines of keys it does not know are left for a newer
 * client.
 */
export function parsePrepare(stdout: string, from: AnswerSource = { verb: 'prepare' }): PrepareReport {
  const report: PrepareReport = { files: new Map(), others: [] };
  const cutOf = (key: string, value: string): string => {
    if (!isCutId(value)) throw badAnswer(from, `a ${key} that is not a cut id`, `${key} ${value}`);
    return value;
  };
  for (const line of stdout.split('\n')) {
    if (line === '' || parseInventoryLine(line, report)) continue;
    const space = line.indexOf(' ');
    const [key, value] = space < 0 ? [line, ''] : [line.slice(0, space), line.slice(space + 1)];
    if (key === 'live') report.live = cutOf(key, value);
    else if (key === 'base') report.base = cutOf(key, value);
    else if (key === 'staged') report.staged = cutOf(key, value);
    else if (key === 'manifest') {
      if (!MANIFEST_DIGEST.test(value)) throw badAnswer(from, 'a manifest digest that is not SHA-256 hex', line);
      report.baseManifestDigest = value;
    } else if (key === 'free') {
      // df may print nothing on an odd file system: the free space is then unknown, not refused.
      if (value === '') continue;
      if (!KB.test(value)) throw badAnswer(from, 'a free space that is not a number of KB', line);
      report.freeKb = Number(value);
    } else if (key === 'hold' || key === 'lifted') report[key] = parseHoldWords(value, from, key);
  }
  return report;
}

export interface VerifyReport extends InventoryReport {
  checkExit: number;
  /** The difusor's own check of MANIFEST.sha256.sig, when the institute's public key is installed there. */
  signature?: 'ok' | 'bad' | 'missing' | 'unchecked';
  /** sha256sum's complaints, one per file that failed. */
  failures: string[];
}

// What a cut refuses in a file's name (publish/cut.ts): a path holding one is never the institute's.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const SIGNATURE_STATES: ReadonlySet<string> = new Set(['ok', 'bad', 'missing', 'unchecked']);

/**
 * verify's (and audit's) answer. The difusor writes all of it: sha256sum's complaints (`x` lines, which quote file
 * names) are kept escaped; an inventory path holding a control character (which no cut can hold) is kept escaped,
 * so it is reported as not in the manifest without reaching a terminal or the journal raw; a line of a known key
 * that does not read as the helper writes it (a size that is not digits, an unknown signature state) is a failure
 * naming the line, escaped: the release is then not verified.
 */
export function parseVerify(stdout: string): VerifyReport {
  const report: VerifyReport = { checkExit: -1, failures: [], files: new Map(), others: [] };
  const read: InventoryReport = { files: new Map(), others: [] };
  for (const line of stdout.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('f ') && !/^f \d{1,18} ./.test(line)) report.failures.push(`an inventory line that is not "f SIZE PATH": ${shownLine(line)}`);
    else if (parseInventoryLine(line, read)) continue;
    else if (line.startsWith('check ')) {
      const exit = line.slice(6);
      if (/^\d{1,3}$/.test(exit)) report.checkExit = Number(exit);
      else report.failures.push(`a check that is not an exit code: ${shownLine(line)}`);
    } else if (line.startsWith('x ')) report.failures.push(printable(line.slice(2)));
    else if (line.startsWith('signature ')) {
      const state = line.slice(10);
      if (SIGNATURE_STATES.has(state)) report.signature = state as VerifyReport['signature'];
      else report.failures.push(`a signature state that is not ok, bad, missing or unchecked: ${shownLine(line)}`);
    }
  }
  const shown = (name: string): string => (CONTROL.test(name) ? printable(name) : name);
  for (const [name, size] of read.files) report.files.set(shown(name), size);
  report.others = read.others.map(printable);
  return report;
}

export const MANIFEST_NAME = 'MANIFEST.sha256';
export const SIGNATURE_NAME = 'MANIFEST.sha256.sig';

export type PlanKind =
  /** The cut is live and whole: nothing to do. */
  | 'up-to-date'
  /** releases/<cut> is whole but not live: only the switch is missing. */
  | 'switch-only'
  /** A new release, staged beside the live one. */
  | 'new-release'
  /** releases/<cut> exists but differs from the manifest: repair it file by file. */
  | 'repair';

export interface TransferPlan {
  kind: PlanKind;
  /** The release unchanged files are hard-linked from. */
  base?: string;
  linked: number;
  send: ManifestEntry[];
  /** Paths of the base to remove from the linked copy (and, on repair, from the release). */
  drop: string[];
  bytesToSend: number;
}

/**
 * Decides, by content, what each difusor needs. A base file is shared only when the base's manifest
 * is one this host wrote (its digest matches a manifest we keep) and says the same hash, and the
 * file on the difusor still has the expected size; anything else is sent again.
 */
export function planTransfer(args: {
  cut: string;
  manifest: Manifest;
  report: PrepareReport;
  /** Hashes of the base release by path, when this host holds that release's manifest. */
  baseHashes?: Map<string, string>;
  signed: boolean;
}): TransferPlan {
  const { cut, manifest, report } = args;
  const base = report.base;
  const trusted = base !== undefined && args.baseHashes !== undefined;
  const wanted = new Set(manifest.entries.map((e) => e.path));
  const extras = new Set([MANIFEST_NAME, ...(args.signed ? [SIGNATURE_NAME] : [])]);

  const send: ManifestEntry[] = [];
  let linked = 0;
  for (const entry of manifest.entries) {
    const shared = trusted && args.baseHashes?.get(entry.path) === entry.sha256 && report.files.get(entry.path) === entry.size;
    if (shared) linked++;
    else send.push(entry);
  }
  const sending = new Set(send.map((e) => e.path));
  const drop = [
    ...[...report.files.keys()].filter((p) => !wanted.has(p) || sending.has(p) || extras.has(p)),
    ...report.others,
  ];
  const bytesToSend = send.reduce((n, e) => n + e.size, 0);

  const sameContent =
    base === cut &&
    report.baseManifestDigest === manifest.digest &&
    send.length === 0 &&
    report.others.length === 0 &&
    [...report.files.keys()].every((p) => wanted.has(p) || extras.has(p)) &&
    [...extras].every((p) => report.files.has(p));
  if (sameContent) {
    return { kind: report.live === cut ? 'up-to-date' : 'switch-only', base, linked, send: [], drop: [], bytesToSend: 0 };
  }
  return { kind: base === cut ? 'repair' : 'new-release', base: trusted ? base : undefined, linked, send, drop: trusted ? drop : [], bytesToSend };
}

/**
 * What a staging built by prepare holds that the cut does not: the helper keeps only the manifest's paths,
 * so anything else means a helper that does not do what it says, and the difusor is not published to.
 */
export function strangersInStaging(manifest: Manifest, report: PrepareReport, signed: boolean): string[] {
  const expected = new Set([...manifest.entries.map((e) => e.path), MANIFEST_NAME, ...(signed ? [SIGNATURE_NAME] : [])]);
  return [
    ...report.others.map((p) => `${p}: not a regular file`),
    ...[...report.files.keys()].filter((p) => !expected.has(p)).map((p) => `${p}: not in the manifest`),
  ];
}

/** The staging must hold exactly the manifest's files (plus the manifest), with the manifest's sizes. */
export function checkInventory(manifest: Manifest, inventory: InventoryReport, signed: boolean): string[] {
  const problems: string[] = [];
  for (const other of inventory.others) problems.push(`${other}: not a regular file`);
  for (const entry of manifest.entries) {
    const size = inventory.files.get(entry.path);
    if (size === undefined) problems.push(`${entry.path}: missing`);
    else if (size !== entry.size) problems.push(`${entry.path}: ${size} bytes, expected ${entry.size}`);
  }
  const expected = new Set([...manifest.entries.map((e) => e.path), MANIFEST_NAME, ...(signed ? [SIGNATURE_NAME] : [])]);
  for (const p of inventory.files.keys()) if (!expected.has(p)) problems.push(`${p}: not in the manifest`);
  if (!inventory.files.has(MANIFEST_NAME)) problems.push(`${MANIFEST_NAME}: missing`);
  return problems;
}
