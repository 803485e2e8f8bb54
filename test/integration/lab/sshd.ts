/**
 * The test lab: real OpenSSH servers on loopback, one per difusor, each with its own address,
 * port, host key and base directory, all reachable with one throw-away client key.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { closeSync, existsSync, openSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { canConnect, descendants, freePort, isAlive, killTree, settlesWithin, sleep, track, trackDir, untrack, untrackDir } from './procs.js';

const run = promisify(execFile);
const SSHD = '/usr/sbin/sshd';
const START_TIMEOUT_MS = 10_000;

export interface LabDifusor {
  id: string;
  host: string;
  port: number;
  user: 'root';
  /** The host's public key line, as pinned in the registry. */
  hostKey: string;
  hostKeyFile: string;
  /** Registry `path`: the difusor's base directory (releases/, current, .staging/ go below it). */
  path: string;
  /** This difusor's own directory in the lab (config, keys, log, `path`). */
  dir: string;
  /** sshd reads this one file; rewrite it to test restricted (command=...) access. */
  authorizedKeysFile: string;
  /** $HOME of remote sessions (root's real home has a slow .bashrc). */
  home: string;
  /** sshd's own log (-e), useful when a test fails. */
  logFile: string;
  publicUrl: string;
  readonly sshdPid: number;
  /** Kills the listener and every session it forked, as if the server went down. */
  stop(): Promise<void>;
  /** Starts it again on the same address, port and host key. */
  start(): Promise<void>;
}

type Plain = Record<string, unknown>;

export interface RegistryOverrides {
  /** Merged into `publication` (one level deep: `ssh`, `window`); a key set to undefined is removed. */
  publication?: Plain;
  /** Merged into the difusor with that id; a key set to undefined is removed. */
  difusores?: Record<string, Plain>;
  /** Only these lab difusores, in this order. */
  only?: string[];
  /** Appended after the lab difusores (e.g. a `transport: local` one). */
  extra?: Plain[];
}

export interface Lab {
  dir: string;
  difusores: LabDifusor[];
  clientKeyFile: string;
  clientKey: Buffer;
  /** The client's public key line (what an authorized_keys line carries). */
  clientPublicKey: string;
  stateDir: string;
  registryYaml(overrides?: RegistryOverrides): string;
  /** known_hosts text pinning every lab difusor ("[host]:port key"), for OpenSSH's client and rsync -e ssh. */
  knownHosts(): string;
  /** Writes registryYaml() to `<dir>/difusores.yaml` (or `file`) and returns its path. */
  writeRegistry(overrides?: RegistryOverrides, file?: string): Promise<string>;
  difusor(id: string): LabDifusor;
  stop(): Promise<void>;
}

async function keygen(file: string, comment: string): Promise<string> {
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
  await chmod(file, 0o600);
  return (await readFile(file + '.pub', 'utf8')).trim();
}

function merge(base: Plain, over: Plain | undefined, depth = 1): Plain {
  const out: Plain = { ...base };
  for (const [key, value] of Object.entries(over ?? {})) {
    if (value === undefined) {
      delete out[key];
    } else if (
      depth > 0 &&
      typeof value === 'object' &&
      value !== null &&
      !Array.isArray(value) &&
      typeof out[key] === 'object' &&
      out[key] !== null &&
      !Array.isArray(out[key])
    ) {
      out[key] = merge(out[key] as Plain, value as Plain, depth - 1);
    } else {
      out[key] = value;
    }
  }
  return out;
}

class Sshd implements LabDifusor {
  readonly user = 'root' as const;
  port = 0;
  hostKey = '';
  publicUrl: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    readonly id: string,
    readonly host: string,
    readonly dir: string,
    private readonly place: Placement = {},
  ) {
    this.publicUrl = `http://${host}/`;
  }

  get path(): string {
    return join(this.dir, 'www');
  }
  get hostKeyFile(): string {
    return join(this.dir, 'ssh_host_ed25519_key');
  }
  get authorizedKeysFile(): string {
    return join(this.dir, 'authorized_keys');
  }
  get logFile(): string {
    return join(this.dir, 'sshd.log');
  }
  get configFile(): string {
    return join(this.dir, 'sshd_config');
  }
  get home(): string {
    return join(this.dir, 'home');
  }
  get sshdPid(): number {
    return this.child?.pid ?? -1;
  }

  async init(clientPublicKey: string): Promise<void> {
    await mkdir(this.path, { recursive: true });
    await mkdir(this.home, { recursive: true });
    this.hostKey = await keygen(this.hostKeyFile, `lab-${this.id}`);
    await writeFile(this.authorizedKeysFile, clientPublicKey + '\n', { mode: 0o600 });
    if (this.place.port !== undefined) {
      // An address of a namespace of our own: nobody else can hold its port.
      this.port = this.place.port;
      await this.start();
      return;
    }
    // The port is only free until someone else binds it; a lost race shows as sshd failing to bind.
    for (let attempt = 1; ; attempt++) {
      this.port = await freePort(this.host);
      try {
        await this.start();
        return;
      } catch (err) {
        if (attempt >= 5 || !/Address already in use/.test(String(err))) throw err;
      }
    }
  }

  private config(): string {
    return [
      `ListenAddress ${this.host}:${this.port}`,
      `HostKey ${this.hostKeyFile}`,
      `PidFile ${join(this.dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${this.authorizedKeysFile}`,
      // authorized_keys lives in the lab dir, not in a home directory sshd knows how to check.
      'StrictModes no',
      'UsePAM no',
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UseDNS no',
      'PrintMotd no',
      // Tests open many connections at once; the default 10:30:100 starts dropping them early.
      'MaxStartups 100',
      'Subsystem sftp internal-sftp',
      'LogLevel VERBOSE',
      // Debian's bash sources ~/.bashrc for ssh commands, and this machine's root one runs pyenv
      // (~0.5 s per exec); a home of the difusor's own keeps sessions as lean as a server account's.
      `SetEnv HOME=${this.home}`,
      '',
    ].join('\n');
  }

  async start(): Promise<void> {
    if (this.child && isAlive(this.sshdPid)) return;
    await mkdir('/run/sshd', { recursive: true });
    await writeFile(this.configFile, this.config());
    const logStart = existsSync(this.logFile) ? statSync(this.logFile).size : 0;
    const log = openSync(this.logFile, 'a');
    const [command, ...prefix] = [...(this.place.exec ?? []), SSHD];
    const child = spawn(command as string, [...prefix, '-D', '-e', '-f', this.configFile], { stdio: ['ignore', log, log] });
    closeSync(log);
    this.child = child;
    if (child.pid === undefined) throw new Error(`${this.id}: could not start ${SSHD}`);
    const pid = child.pid;
    track(pid);
    // A forgotten stop() must not keep jest alive; the exit hook still kills it.
    child.unref();
    let gone = false;
    this.exited = new Promise((resolve) => {
      child.once('exit', () => {
        gone = true;
        untrack(pid);
        resolve();
      });
    });

    // Our sshd's own "listening" line, so a port taken by someone else is not mistaken for ours.
    const listening = `Server listening on ${this.host} port ${this.port}`;
    const ownLog = () => readFileSync(this.logFile).subarray(logStart).toString('utf8');
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline && !gone) {
      if (ownLog().includes(listening) && (await canConnect(this.host, this.port)) && !gone) return;
      await sleep(50);
    }
    const tail = ownLog().split('\n').slice(-15).join('\n');
    if (!gone) killTree(pid, 'SIGKILL');
    throw new Error(`${this.id}: sshd on ${this.host}:${this.port} did not start accepting connections:\n${tail}`);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child?.pid) return;
    this.child = undefined;
    const pid = child.pid;
    const sessions = isAlive(pid) ? descendants(pid) : [];
    killTree(pid, 'SIGTERM');
    if (!(await settlesWithin(this.exited, 5000))) killTree(pid, 'SIGKILL');
    for (const p of sessions) {
      if (isAlive(p)) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // Gone meanwhile.
        }
      }
    }
    await this.exited;
  }
}

/** Where a lab's sshd run: by default 127.0.0.x with free ports; a WAN lab gives its namespace's addresses. */
export interface Placement {
  /** Runs sshd through this (e.g. ['ip', 'netns', 'exec', NAME]); `ip netns exec` execs, so the pid stays sshd's. */
  exec?: string[];
  port?: number;
}

export async function startLab(opts: { difusores: number; baseDir?: string; hosts?: string[]; placement?: Placement }): Promise<Lab> {
  if (opts.difusores < 1 || opts.difusores > 200) throw new Error('a lab holds 1 to 200 difusores');
  const dir = opts.baseDir ?? (await mkdtemp(join(tmpdir(), 'difusion-lab-')));
  await mkdir(dir, { recursive: true });
  trackDir(dir);
  // Apache runs as www-data and must be able to walk down to a difusor's files.
  await chmod(dir, 0o755);
  const clientKeyFile = join(dir, 'client_ed25519');
  const stateDir = join(dir, 'state');

  const sshds: Sshd[] = [];
  const stopAll = async () => {
    await Promise.all(sshds.map((s) => s.stop()));
  };
  try {
    const clientPublicKey = await keygen(clientKeyFile, 'difusion-lab-client');
    const clientKey = await readFile(clientKeyFile);
    for (let i = 1; i <= opts.difusores; i++) {
      sshds.push(new Sshd(`d${i}`, opts.hosts?.[i - 1] ?? `127.0.0.${10 + i}`, join(dir, `d${i}`), opts.placement));
    }
    await Promise.all(sshds.map((s) => s.init(clientPublicKey)));

    const registryYaml = (overrides: RegistryOverrides = {}): string => {
      const publication = merge(
        {
          timezone: 'America/Mexico_City',
          window: { start: '2022-06-05T20:00', end: '2022-06-06T20:00' },
          keep_releases: 5,
          concurrency: 8,
          ssh: { identity_file: clientKeyFile, connect_timeout_s: 10 },
          state_dir: stateDir,
        },
        overrides.publication,
      );
      const chosen = overrides.only ? overrides.only.map((id) => lab.difusor(id)) : sshds;
      const difusores = chosen.map((d, n) =>
        merge(
          {
            id: d.id,
            name: `Difusor de prueba ${n + 1}`,
            host: d.host,
            port: d.port,
            user: d.user,
            host_key: d.hostKey,
            path: d.path,
            public_url: d.publicUrl,
          },
          overrides.difusores?.[d.id],
          0,
        ),
      );
      return stringify({ version: 1, publication, difusores: [...difusores, ...(overrides.extra ?? [])] }, { lineWidth: 0 });
    };

    const lab: Lab = {
      dir,
      difusores: sshds,
      clientKeyFile,
      clientKey,
      clientPublicKey,
      stateDir,
      registryYaml,
      // OpenSSH names a host on port 22 without brackets and port.
      knownHosts: () => sshds.map((d) => `${d.port === 22 ? d.host : `[${d.host}]:${d.port}`} ${d.hostKey}\n`).join(''),
      async writeRegistry(overrides, file = join(dir, 'difusores.yaml')) {
        await writeFile(file, registryYaml(overrides));
        return file;
      },
      difusor(id) {
        const found = sshds.find((d) => d.id === id);
        if (!found) throw new Error(`no lab difusor "${id}" (have ${sshds.map((d) => d.id).join(', ')})`);
        return found;
      },
      async stop() {
        await stopAll();
        // DIFUSION_LAB_KEEP=1 leaves the files for a post-mortem.
        if (process.env.DIFUSION_LAB_KEEP !== '1') await rm(dir, { recursive: true, force: true });
        untrackDir(dir);
      },
    };
    return lab;
  } catch (err) {
    await stopAll();
    if (process.env.DIFUSION_LAB_KEEP !== '1') await rm(dir, { recursive: true, force: true });
    untrackDir(dir);
    throw err;
  }
}

export async function withLab<T>(difusores: number, fn: (lab: Lab) => Promise<T>): Promise<T> {
  const lab = await startLab({ difusores });
  try {
    return await fn(lab);
  } finally {
    await lab.stop();
  }
}
