import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Difusor } from '../core/registry/types.js';
import { parseHostKey } from '../core/registry/hostkey.js';

/**
 * The OpenSSH side (used by rsync): a config and a known_hosts written for one run, so the pinned
 * host key is enforced exactly as on the ssh2 side and nothing from ~/.ssh is consulted.
 */
export interface OpenSshRun {
  configFile: string;
  aliasOf(difusor: Difusor): string;
  /**
   * Starts a master connection to the difusor in the background, so rsync's ssh later rides on it
   * (ControlPath) instead of doing a handshake of its own when the transfer should start. Without it,
   * rsync's ssh simply connects by itself. `ready` settles true once it listens, false if it cannot.
   */
  startMaster(difusor: Difusor): { stop(): void; ready(timeoutMs: number): Promise<boolean> };
  dispose(): Promise<void>;
}

export function hostAlias(difusor: Difusor): string {
  return `difusor-${difusor.id}`;
}

function quoteConfig(value: string): string {
  if (/["\n\r]/.test(value)) throw new Error(`cannot use ${JSON.stringify(value)} in an ssh_config`);
  return `"${value}"`;
}

/** The known_hosts file: one line per difusor, keyed by its alias (HostKeyAlias), holding only its pinned key. */
export function formatKnownHosts(difusores: Difusor[]): string {
  return difusores
    .filter((d) => d.transport === 'ssh' && d.host_key)
    .map((d) => {
      const key = parseHostKey(d.host_key as string);
      if (typeof key === 'string') throw new Error(`difusor ${d.id}: host_key: ${key}`);
      return `${hostAlias(d)} ${key.type} ${key.blob.toString('base64')}\n`;
    })
    .join('');
}

export function formatSshConfig(args: {
  difusores: Difusor[];
  knownHostsFile: string;
  identityFile?: string;
  connectTimeoutS: number;
  keepaliveS?: number;
  keepaliveCount?: number;
  /** Where master connections listen (%n: the alias), when the run keeps them. */
  controlPath?: string;
}): string {
  const blocks = args.difusores
    .filter((d) => d.transport === 'ssh')
    .map((d) => {
      const key = parseHostKey(d.host_key as string);
      const keyType = typeof key === 'string' ? 'ssh-ed25519' : key.type;
      // An RSA key is offered under the SHA-2 signature names by OpenSSH 8.8 and later; the key is the same.
      const algorithms = keyType === 'ssh-rsa' ? 'rsa-sha2-512,rsa-sha2-256,ssh-rsa' : keyType;
      const lines = [
        `Host ${hostAlias(d)}`,
        `  HostName ${d.host}`,
        `  Port ${d.port}`,
        `  User ${d.user}`,
        `  HostKeyAlias ${hostAlias(d)}`,
        `  HostKeyAlgorithms ${algorithms}`,
      ];
      return lines.join('\n');
    });
  const common = [
    'Host *',
    `  UserKnownHostsFile ${quoteConfig(args.knownHostsFile)}`,
    '  GlobalKnownHostsFile /dev/null',
    // Never trust on first use and never ask: a difusor that offers another key gets nothing.
    '  StrictHostKeyChecking yes',
    '  UpdateHostKeys no',
    '  CheckHostIP no',
    '  BatchMode yes',
    '  PasswordAuthentication no',
    '  KbdInteractiveAuthentication no',
    ...(args.identityFile ? [`  IdentityFile ${quoteConfig(args.identityFile)}`, '  IdentitiesOnly yes'] : []),
    `  ConnectTimeout ${args.connectTimeoutS}`,
    `  ServerAliveInterval ${args.keepaliveS ?? 5}`,
    `  ServerAliveCountMax ${args.keepaliveCount ?? 3}`,
    // JPEG and zip do not compress; AES-GCM runs on the CPU's AES instructions, cheaper than the default.
    '  Compression no',
    '  Ciphers aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr',
    '  ForwardAgent no',
    '  ForwardX11 no',
    '  ClearAllForwardings yes',
    // Clients use a master when one is up and connect by themselves otherwise; only startMaster makes one.
    '  ControlMaster no',
    ...(args.controlPath ? [`  ControlPath ${quoteConfig(args.controlPath)}`] : []),
    '  LogLevel ERROR',
  ];
  return [...blocks, common.join('\n')].join('\n\n') + '\n';
}

export async function prepareOpenSsh(args: {
  difusores: Difusor[];
  identityFile?: string;
  connectTimeoutS: number;
  keepaliveS?: number;
  keepaliveCount?: number;
}): Promise<OpenSshRun> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'difusion-ssh-'));
  const knownHostsFile = path.join(dir, 'known_hosts');
  const configFile = path.join(dir, 'ssh_config');
  await writeFile(knownHostsFile, formatKnownHosts(args.difusores), { mode: 0o600 });
  await writeFile(configFile, formatSshConfig({ ...args, knownHostsFile, controlPath: path.join(dir, '%n.sock') }), { mode: 0o600 });
  const masters = new Set<ChildProcess>();
  return {
    configFile,
    aliasOf: hostAlias,
    startMaster(difusor) {
      // -N: no command, so a restricted account's forced command never runs for the master itself.
      const child = spawn('ssh', ['-F', configFile, '-M', '-N', '-o', 'ControlMaster=yes', '-o', 'ControlPersist=no', hostAlias(difusor)], {
        stdio: 'ignore',
      });
      let exited = false;
      child.on('error', () => undefined);
      masters.add(child);
      child.once('exit', () => {
        exited = true;
        masters.delete(child);
      });
      const socket = path.join(dir, `${hostAlias(difusor)}.sock`);
      return {
        stop: () => void child.kill('SIGTERM'),
        async ready(timeoutMs) {
          const deadline = Date.now() + timeoutMs;
          while (!exited && Date.now() < deadline) {
            if (existsSync(socket)) return true;
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
          return !exited && existsSync(socket);
        },
      };
    },
    dispose: async () => {
      for (const child of masters) child.kill('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
