import { execa } from 'execa';
import { SKIP_COMPRESS } from '../core/publish/compression.js';
import type { RsyncResult } from '../core/difusor-port.js';

/** Where rsync writes: a local directory, or a difusor reached through the run's ssh_config. */
export type RsyncDestination =
  | { kind: 'local'; root: string }
  | { kind: 'ssh'; alias: string; sshConfigFile: string; remoteRsyncPath: string };

export interface RsyncRequest {
  sourceDir: string;
  cut: string;
  destination: RsyncDestination;
  ioTimeoutS: number;
  /** The source holds exactly the files to send (a hard-link tree), so no --files-from list is needed. */
  wholeSource?: boolean;
  /** Progress lines cost CPU on both ends of the pipe: only when someone shows them. */
  progress?: boolean;
  /** zlib on the text (HTML, JSON, CSV); never on what is already compressed. */
  compress?: boolean;
  /** Into this run's incoming directory, .staging/<cut>.in-<token>/, rather than the staging itself. */
  incoming?: string;
}


/**
 * The transfer's command line, pure so it can be tested string for string.
 * The manifest has already decided what changed, so:
 * --files-from lists only those files; --ignore-times sends each even when size and mtime match
 * (a regenerated aggregate can keep both); --whole-file skips the delta search that changed JPEGs
 * and rewritten pages never benefit from.
 */
export function formatRsyncArgs(req: RsyncRequest): string[] {
  const args = [
    '--recursive',
    '--times',
    '--perms',
    '--chmod=D755,F644',
    '--whole-file',
    '--ignore-times',
    ...(req.wholeSource ? [] : ['--files-from=-', '--from0']),
    ...(req.compress ? ['--compress', `--skip-compress=${SKIP_COMPRESS}`] : []),
    `--timeout=${req.ioTimeoutS}`,
    '--stats',
    ...(req.progress === false ? [] : ['--info=progress2']),
  ];
  const source = req.sourceDir.endsWith('/') ? req.sourceDir : `${req.sourceDir}/`;
  const into = `.staging/${req.cut}${req.incoming === undefined ? '' : `.in-${req.incoming}`}/`;
  if (req.destination.kind === 'local') {
    return [...args, source, `${req.destination.root}/${into}`];
  }
  return [
    ...args,
    '--rsh',
    `ssh -F '${req.destination.sshConfigFile.replace(/'/g, '')}'`,
    '--rsync-path',
    req.destination.remoteRsyncPath,
    source,
    `${req.destination.alias}:${into}`,
  ];
}

export type { RsyncResult } from '../core/difusor-port.js';

export class RsyncError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | undefined,
  ) {
    super(message);
    this.name = 'RsyncError';
  }
}

const EXIT_MEANING: Record<number, string> = {
  5: 'error starting the client-server protocol',
  10: 'error in socket I/O',
  11: 'error in file I/O (is the disk full?)',
  12: 'error in the rsync protocol data stream (connection lost?)',
  20: 'interrupted',
  23: 'some files could not be transferred',
  24: 'some source files vanished during the transfer',
  30: 'timeout in data send/receive',
  35: 'timeout waiting for the daemon connection',
  255: 'ssh failed (host key, authentication or connection)',
};

export function parseRsyncStats(stdout: string): RsyncResult {
  const number = (label: string): number => {
    const m = new RegExp(`${label}: ([\\d,.]+)`).exec(stdout);
    return m ? Number((m[1] as string).replace(/[,.]/g, '')) : 0;
  };
  return { bytesSent: number('Total bytes sent'), filesSent: number('Number of regular files transferred') };
}

export async function runRsync(
  req: RsyncRequest,
  files: string[],
  opts: { timeoutMs: number; onProgress?: (bytes: number, percent: number) => void; signal?: AbortSignal },
): Promise<RsyncResult> {
  const child = execa('rsync', formatRsyncArgs({ ...req, progress: opts.onProgress !== undefined }), {
    input: req.wholeSource ? '' : Buffer.from(files.map((f) => `${f}\0`).join('')),
    reject: false,
    timeout: opts.timeoutMs,
    forceKillAfterDelay: 2000,
    cancelSignal: opts.signal,
    env: { LC_ALL: 'C' },
    stripFinalNewline: false,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (opts.onProgress) {
    child.stdout?.on('data', (chunk: Buffer) => {
      // Only the newest progress line matters; parsing the whole chunk costs node CPU during the transfer.
      const text = chunk.toString('latin1');
      const m = /([\d,]+)\s+(\d+)%/.exec(text.slice(text.lastIndexOf('\r', text.length - 2) + 1));
      if (m) opts.onProgress?.(Number((m[1] as string).replace(/,/g, '')), Number(m[2]));
    });
  }
  const result = await child;
  if (result.timedOut) throw new RsyncError(`rsync timed out after ${Math.round(opts.timeoutMs / 1000)} s and was killed`, undefined);
  if (result.exitCode !== 0) {
    const code = result.exitCode;
    const stderr = String(result.stderr);
    // OpenSSH's own words for a link that went silent; rsync's exit code only says ssh failed.
    const silent = /Timeout, server \S+ not responding/.exec(stderr);
    const meaning = silent
      ? 'the link went silent: no answer to the SSH keepalives'
      : /connection unexpectedly closed/.test(stderr)
        ? 'the connection was lost mid-transfer: closed, or silent past the SSH keepalives'
        : code === undefined
        ? `killed by ${result.signal ?? 'a signal'}`
        : (EXIT_MEANING[code] ?? 'failed');
    const detail = silent ? silent[0] : stderr.trim().split('\n').slice(-3).join(' | ');
    // 23 and 24 leave a partial copy: for a publication that is a failure, never a warning.
    throw new RsyncError(`rsync exit ${code ?? '-'} (${meaning})${detail ? `: ${detail}` : ''}`, code);
  }
  return parseRsyncStats(String(result.stdout));
}
