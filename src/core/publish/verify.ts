import type { Difusor } from '../registry/types.js';
import { manifestText, parseManifest, sha256Hex } from '../shared/manifest.js';
import { MANIFEST_NAME, SIGNATURE_NAME, parseVerify } from './plan.js';
import type { DifusorConnector } from '../difusor-port.js';
import { printable } from '../shared/printable.js';

/**
 * Re-checks the live release of each difusor against the manifest this host published for that cut:
 * the manifest itself, the exact file list and sizes, and with `full` every file's SHA-256 on the
 * difusor. Every file that differs is named.
 */
export interface VerifyRow {
  id: string;
  result: 'ok' | 'differs' | 'unreachable' | 'unknown-cut';
  live?: string;
  checkedFiles: number;
  differences: string[];
  error?: string;
}

export interface VerifyReport {
  full: boolean;
  difusores: VerifyRow[];
  /** 0 all whole, 6 differences found, 3 some could not be checked. */
  exitCode: 0 | 3 | 6;
}

export interface VerifyPorts {
  connector: DifusorConnector;
  /** The manifest text this host published for a cut, if it still holds it. */
  manifestOf(cut: string): Promise<string | undefined>;
}

export function compareRelease(
  manifestText_: string,
  report: { checkExit: number; failures: string[]; files: Map<string, number>; others: string[] },
  sizes?: Map<string, number>,
): string[] {
  const hashes = parseManifest(manifestText_);
  const differences: string[] = [];
  for (const failure of report.failures) {
    // sha256sum's closing tally ("WARNING: 1 computed checksum did NOT match") repeats what the lines above say.
    if (/^(sha256sum: )?WARNING: /.test(failure)) continue;
    differences.push(failure.replace(/^sha256sum: /, ''));
  }
  for (const other of report.others) differences.push(`${other}: not a regular file`);
  for (const name of hashes.keys()) {
    if (!report.files.has(name)) differences.push(`${name}: missing`);
    else if (sizes?.has(name) && sizes.get(name) !== report.files.get(name)) {
      differences.push(`${name}: ${report.files.get(name)} bytes, expected ${sizes.get(name)}`);
    }
  }
  for (const name of report.files.keys()) {
    if (!hashes.has(name) && name !== MANIFEST_NAME && name !== SIGNATURE_NAME) differences.push(`${name}: not in the manifest`);
  }
  return [...new Set(differences)];
}

export async function verifyDifusores(
  targets: Difusor[],
  opts: { full: boolean; concurrency: number; sizesOf?(cut: string): Promise<Map<string, number> | undefined> },
  ports: VerifyPorts,
): Promise<VerifyReport> {
  const rows: VerifyRow[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < targets.length) {
      const d = targets[next++] as Difusor;
      rows.push(await verifyOne(d, opts, ports));
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency, targets.length)) }, worker));
  const ordered = targets.map((d) => rows.find((r) => r.id === d.id) as VerifyRow);
  const exitCode = ordered.some((r) => r.result === 'differs')
    ? 6
    : ordered.some((r) => r.result !== 'ok')
      ? 3
      : 0;
  return { full: opts.full, difusores: ordered, exitCode };
}

async function verifyOne(
  d: Difusor,
  opts: { full: boolean; sizesOf?(cut: string): Promise<Map<string, number> | undefined> },
  ports: VerifyPorts,
): Promise<VerifyRow> {
  const row: VerifyRow = { id: d.id, result: 'ok', checkedFiles: 0, differences: [] };
  let session;
  try {
    session = await ports.connector.open(d);
    const status = await session.helper('status', []);
    const live = /^live (.+)$/m.exec(status.stdout)?.[1];
    if (!live) {
      row.result = 'differs';
      row.differences.push('current does not point to a release');
      return row;
    }
    row.live = live;
    const text = await ports.manifestOf(live);
    if (text === undefined) {
      row.result = 'unknown-cut';
      row.error = `this host holds no manifest for ${live}; it cannot vouch for it`;
      return row;
    }
    const hashes = parseManifest(text);
    const lines =
      manifestText([{ path: MANIFEST_NAME, sha256: sha256Hex(text) }]) +
      (opts.full ? manifestText([...hashes].map(([path, sha256]) => ({ path, sha256 }))) : '');
    const out = await session.helper('audit', [live], { stdin: lines, timeoutMs: 30 * 60_000 });
    if (out.code !== 0) throw new Error(printable(out.stderr.trim().slice(0, 400)) || `audit failed (exit ${out.code})`);
    const report = parseVerify(out.stdout);
    row.checkedFiles = opts.full ? hashes.size : 0;
    row.differences = compareRelease(text, report, await opts.sizesOf?.(live));
    if (row.differences.length > 0) row.result = 'differs';
    return row;
  } catch (error) {
    row.result = 'unreachable';
    row.error = error instanceof Error ? error.message : String(error);
    return row;
  } finally {
    session?.close();
  }
}
