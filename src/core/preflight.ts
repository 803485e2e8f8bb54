import type { Difusor } from './types.js';
import { parseHelperStatus } from './status.js';
import type { DifusorConnector } from '../ports/difusor.js';

/** What preflight asks of HTTP: a GET with a deadline, reporting status or the reason it failed. */
export interface HttpResult {
  ok: boolean;
  status?: number;
  error?: string;
  body?: string;
}

/** Readiness of one difusor, check by check, before election night (or before a run). */
export interface PreflightCheck {
  name: 'ssh' | 'helper' | 'rsync' | 'write' | 'disk' | 'http';
  ok: boolean;
  detail: string;
}

export interface PreflightRow {
  id: string;
  ready: boolean;
  checks: PreflightCheck[];
}

export interface PreflightReport {
  neededBytes: number;
  difusores: PreflightRow[];
  exitCode: 0 | 3;
}

export interface PreflightPorts {
  connector: DifusorConnector;
  httpGet(url: string, timeoutMs: number): Promise<HttpResult>;
}

/** rsync 3.1 is what CentOS 7 ships and the oldest the transfer options are known to work with. */
export function rsyncAtLeast31(version: string | undefined): boolean {
  const m = /^(\d+)\.(\d+)/.exec(version ?? '');
  if (!m) return false;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > 3 || (major === 3 && minor >= 1);
}

export async function preflight(
  targets: Difusor[],
  opts: { neededBytes: number; httpTimeoutMs: number },
  ports: PreflightPorts,
): Promise<PreflightReport> {
  const rows = await Promise.all(targets.map((d) => checkOne(d, opts, ports)));
  return { neededBytes: opts.neededBytes, difusores: rows, exitCode: rows.every((r) => r.ready) ? 0 : 3 };
}

async function checkOne(d: Difusor, opts: { neededBytes: number; httpTimeoutMs: number }, ports: PreflightPorts): Promise<PreflightRow> {
  const checks: PreflightCheck[] = [];
  const http = ports.httpGet(d.public_url, opts.httpTimeoutMs);
  let session;
  try {
    session = await ports.connector.open(d);
    checks.push({ name: 'ssh', ok: true, detail: d.transport === 'local' ? 'local directory' : `reached with the pinned host key (${d.access} access)` });
    const out = await session.helper('status', []);
    if (out.code !== 0) {
      checks.push({ name: 'helper', ok: false, detail: out.stderr.trim() || `status failed (exit ${out.code})` });
    } else {
      const status = parseHelperStatus(out.stdout);
      checks.push({ name: 'helper', ok: true, detail: status.live ? `serving ${status.live}` : 'no cut live yet' });
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
    }
  } catch (error) {
    checks.push({ name: 'ssh', ok: false, detail: error instanceof Error ? error.message : String(error) });
  } finally {
    session?.close();
  }
  const answer = await http;
  checks.push({
    name: 'http',
    ok: answer.ok,
    detail: answer.status !== undefined ? `${d.public_url} answered ${answer.status}` : `${d.public_url}: ${answer.error}`,
  });
  return { id: d.id, ready: checks.every((c) => c.ok), checks };
}
