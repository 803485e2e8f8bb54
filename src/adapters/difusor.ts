import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { Difusor, Registry } from '../core/registry/types.js';
import { MAX_ANSWER_BYTES, connectSsh, shCommand, type RemoteShell } from './ssh.js';
import { prepareOpenSsh, type OpenSshRun } from './openssh.js';
import { runRsync, type RsyncRequest } from './rsync.js';
import type { DifusorConnector, DifusorSession, OpenOptions } from '../core/difusor-port.js';

export type { DifusorConnector, DifusorSession, HelperOutput, OpenOptions, TransferOptions } from '../core/difusor-port.js';
import { SendTrees } from './send-tree.js';

let cachedScript: string | undefined;
export function helperScript(): string {
  cachedScript ??= readFileSync(new URL('../../templates/difusion-helper.sh', import.meta.url), 'utf8');
  return cachedScript;
}

const TOKEN = /^[A-Za-z0-9_.,=/:+-]+$/;

/** What the remote side runs for a verb: the inline helper on a shell account, plain tokens on a restricted one. */
export function helperCommand(difusor: Difusor, verb: string, args: string[]): string {
  if (difusor.access === 'restricted') {
    for (const token of [verb, ...args]) {
      if (!TOKEN.test(token)) throw new Error(`cannot send ${JSON.stringify(token)} to a restricted account`);
    }
    return [verb, ...args].join(' ');
  }
  return shCommand(['sh', '-c', helperScript(), 'difusion-helper', difusor.path, verb, ...args]);
}

/** rsync's remote command: the helper's rsync verb, so the receiving end is checked like every other step. */
export function remoteRsyncPath(difusor: Difusor): string {
  if (difusor.access === 'restricted') return 'rsync';
  return shCommand(['sh', '-c', helperScript(), 'difusion-helper', difusor.path, 'rsync']);
}

export class IdentityFileError extends Error {}

/** A private key others can read is a key others may have copied: refuse it. */
export async function readIdentity(file: string | undefined): Promise<Buffer> {
  if (!file) {
    throw new IdentityFileError('publication.ssh.identity_file is not set: ssh difusores need the institute\'s private key');
  }
  const st = await stat(file).catch(() => {
    throw new IdentityFileError(`identity file ${file} cannot be read`);
  });
  if ((st.mode & 0o077) !== 0) {
    throw new IdentityFileError(
      `identity file ${file} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${file}`,
    );
  }
  return readFile(file);
}

const MINUTE = 60_000;
const DEFAULT_KEEPALIVE_S = 5;
const DEFAULT_KEEPALIVE_COUNT = 3;
const MASTER_WAIT_MS = 3000;

/**
 * How fast a dead link is noticed. A link that drops without a word (no RST: a cut cable, a frozen
 * router) is seen only by keepalives: interval × count without an answer ends the connection, on the
 * helper's ssh2 connection and on rsync's OpenSSH alike; rsync's own --timeout backs them up.
 */
export interface LinkTimeouts {
  /** The whole transfer to one difusor (default 30 min). */
  transferTimeoutMs?: number;
  /** Keepalive interval in seconds (default 5) and unanswered ones before giving up (default 3). */
  keepaliveS?: number;
  keepaliveCount?: number;
  /** rsync --timeout: seconds without any I/O (default max(30, 3 × connect_timeout_s)). */
  ioTimeoutS?: number;
  /** rsync -z with --skip-compress for every difusor, whatever its `compress` says (the bench's comparison). */
  compress?: boolean;
  /**
   * Open rsync's OpenSSH connection alongside each session (default true). Commands that never send a
   * cut (status, verify, preflight, report) say false: a second handshake per difusor buys them nothing.
   */
  rsyncAlongside?: boolean;
}

const NO_MASTER: ReturnType<OpenSshRun['startMaster']> = { stop: () => undefined, ready: async () => false };

export async function createConnector(registry: Registry, targets: Difusor[], opts: LinkTimeouts = {}): Promise<DifusorConnector> {
  const trees = new SendTrees(path.join(registry.publication.state_dir, 'send'));
  // The source rsync reads: a tree of exactly the files to send where it can be linked, else the cut with a list.
  const source = async (sourceDir: string, files: string[]): Promise<Pick<RsyncRequest, 'sourceDir' | 'wholeSource'>> => {
    const tree = await trees.tree(sourceDir, files);
    return tree ? { sourceDir: tree, wholeSource: true } : { sourceDir, wholeSource: false };
  };
  const sshTargets = targets.filter((d) => d.transport === 'ssh');
  const connectTimeoutS = registry.publication.ssh.connect_timeout_s;
  let privateKey: Buffer | undefined;
  let openssh: OpenSshRun | undefined;
  if (sshTargets.length > 0) {
    privateKey = await readIdentity(registry.publication.ssh.identity_file);
    openssh = await prepareOpenSsh({
      difusores: sshTargets,
      identityFile: registry.publication.ssh.identity_file,
      connectTimeoutS,
      keepaliveS: opts.keepaliveS ?? DEFAULT_KEEPALIVE_S,
      keepaliveCount: opts.keepaliveCount ?? DEFAULT_KEEPALIVE_COUNT,
    });
  }
  const transferTimeoutMs = opts.transferTimeoutMs ?? 30 * MINUTE;
  const ioTimeoutS = opts.ioTimeoutS ?? Math.max(30, connectTimeoutS * 3);

  const open = async (difusor: Difusor, openOpts: OpenOptions = {}): Promise<DifusorSession> => {
    if (difusor.transport === 'local') return localSession(difusor, transferTimeoutMs, source);
    // rsync's own connection is made while the helper's is set up and prepare runs, not when the transfer should start;
    // when no transfer is expected, rsync (if it runs after all) connects by itself.
    const ahead = opts.rsyncAlongside !== false && openOpts.expectTransfer !== false;
    const master = ahead ? (openssh as OpenSshRun).startMaster(difusor) : NO_MASTER;
    const shell = await connectSsh({
      host: difusor.host as string,
      port: difusor.port,
      user: difusor.user as string,
      hostKey: difusor.host_key as string,
      privateKey: privateKey as Buffer,
      connectTimeoutMs: connectTimeoutS * 1000,
      keepaliveIntervalMs: (opts.keepaliveS ?? DEFAULT_KEEPALIVE_S) * 1000,
      keepaliveCountMax: opts.keepaliveCount ?? DEFAULT_KEEPALIVE_COUNT,
    }).catch((error: Error) => {
      master.stop();
      throw error;
    });
    return sshSession(difusor, shell, openssh as OpenSshRun, { ioTimeoutS, transferTimeoutMs, compress: opts.compress ?? difusor.compress === true }, source, master);
  };
  return {
    open,
    dispose: async () => {
      await openssh?.dispose();
      await trees.dispose();
    },
  };
}

function sshSession(
  difusor: Difusor,
  shell: RemoteShell,
  openssh: OpenSshRun,
  limits: { ioTimeoutS: number; transferTimeoutMs: number; compress?: boolean },
  source: SourceChooser,
  master: ReturnType<OpenSshRun['startMaster']>,
): DifusorSession {
  return {
    helper: (verb, args, opts = {}) =>
      shell.exec(helperCommand(difusor, verb, args), { stdin: opts.stdin ?? '', timeoutMs: opts.timeoutMs ?? 5 * MINUTE }),
    helperToStream: (verb, args, sink, opts = {}) =>
      shell.exec(helperCommand(difusor, verb, args), { stdin: '', stdoutTo: sink, stdoutLimit: opts.limit, timeoutMs: opts.timeoutMs ?? limits.transferTimeoutMs }),
    transfer: async (sourceDir, cut, files, onProgress, { incoming, signal } = {}) => {
      // A master still in its handshake is nearer than a handshake of rsync's own; a dead one is not waited for.
      const [from] = await Promise.all([source(sourceDir, files), master.ready(MASTER_WAIT_MS)]);
      return runRsync(
        {
          ...from,
          cut,
          incoming,
          ioTimeoutS: limits.ioTimeoutS,
          compress: limits.compress,
          destination: {
            kind: 'ssh',
            alias: openssh.aliasOf(difusor),
            sshConfigFile: openssh.configFile,
            remoteRsyncPath: remoteRsyncPath(difusor),
          },
        },
        files,
        { timeoutMs: limits.transferTimeoutMs, onProgress, signal },
      );
    },
    close: () => {
      master.stop();
      shell.close();
    },
  };
}

type SourceChooser = (sourceDir: string, files: string[]) => Promise<Pick<RsyncRequest, 'sourceDir' | 'wholeSource'>>;

function localSession(difusor: Difusor, transferTimeoutMs: number, source: SourceChooser): DifusorSession {
  return {
    helper: async (verb, args, opts = {}) => {
      // A local mirror is a directory of ours: create it when publishing, where a remote one is the
      // difusor's to provide; a dry run sees a missing one as a fresh difusor and creates nothing.
      // The lease is taken before prepare: the first thing a publish writes there.
      if (verb === 'prepare' || (verb === 'lease' && args[0] === 'take')) await mkdir(difusor.path, { recursive: true });
      else if (verb === 'inspect' && !existsSync(difusor.path)) return { code: 0, stdout: '', stderr: '' };
      const r = await execa('sh', ['-c', helperScript(), 'difusion-helper', difusor.path, verb, ...args], {
        input: opts.stdin ?? '',
        reject: false,
        timeout: opts.timeoutMs ?? 5 * MINUTE,
        env: { LC_ALL: 'C' },
        stripFinalNewline: false,
        maxBuffer: MAX_ANSWER_BYTES,
      });
      if (r.isMaxBuffer) {
        return { code: -1, stdout: '', stderr: `difusion: "${verb}" wrote more than ${MAX_ANSWER_BYTES} bytes; its answer is capped there, the command was stopped` };
      }
      return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
    },
    transfer: async (sourceDir, cut, files, onProgress, { incoming, signal } = {}) => {
      // The helper's rsync verb makes .staging for an incoming directory on an ssh difusor; here rsync writes directly.
      if (incoming !== undefined) await mkdir(path.join(difusor.path, '.staging'), { recursive: true });
      return runRsync(
        { ...(await source(sourceDir, files)), cut, incoming, ioTimeoutS: 60, destination: { kind: 'local', root: difusor.path } },
        files,
        { timeoutMs: transferTimeoutMs, onProgress, signal },
      );
    },
    close: () => undefined,
  };
}
