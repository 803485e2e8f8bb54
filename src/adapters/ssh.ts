import type { Writable } from 'node:stream';
import ssh2 from 'ssh2';
import type { Client as Ssh2Client, ClientChannel, ConnectConfig } from 'ssh2';
import { fingerprint, parseHostKey } from '../core/registry/hostkey.js';

const { Client } = ssh2;

export interface ExecResult {
  /** -1 when the remote command ended without an exit status (killed by a signal, channel torn down). */
  code: number;
  stdout: string;
  stderr: string;
  /** stdoutTo got its stdoutLimit bytes and the command was stopped there; the rest was never read. */
  stdoutCut?: boolean;
}

export interface ExecOptions {
  stdin?: string | Buffer;
  timeoutMs?: number;
  /** Where stdout goes, byte for byte and with backpressure, instead of into the result (a log file pulled). */
  stdoutTo?: Writable;
  /** With stdoutTo: at most this many bytes go to it, then the command is stopped (stdoutCut). */
  stdoutLimit?: number;
}

/**
 * The most a difusor's answer may hold in memory: a helper's stdout (an inventory of a large cut is tens of
 * MB) and its stderr (a few lines). A difusor is run by a third party; one answering without end is cut off
 * with an error naming the command, not buffered until the publication host runs out of memory.
 */
export const MAX_ANSWER_BYTES = 256 * 1048576;
export const MAX_STDERR_BYTES = 1048576;

export class AnswerTooLargeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AnswerTooLargeError';
  }
}

/** One open SSH connection; every remote step of a run goes through the same one. */
export interface RemoteShell {
  exec(command: string, opts?: ExecOptions): Promise<ExecResult>;
  close(): void;
}

export interface SshTarget {
  host: string;
  port: number;
  user: string;
  /** The pinned OpenSSH public key line from the registry ("ssh-ed25519 AAAA... [comment]"). */
  hostKey: string;
  privateKey: Buffer;
  connectTimeoutMs: number;
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
}

export class HostKeyMismatchError extends Error {
  readonly expected: string;
  readonly offered: string;

  constructor(where: string, expected: string, offered: string) {
    super(
      `${where}: the server offered host key ${offered}, but the registry pins ${expected}. ` +
        'Nothing was sent. This may be a reinstalled server or someone in the middle: confirm the key with ' +
        "the difusor's admin (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on their side) and only then update its host_key.",
    );
    this.name = 'HostKeyMismatchError';
    this.expected = expected;
    this.offered = offered;
  }
}

export type SshFailure = 'refused' | 'timeout' | 'unreachable' | 'auth' | 'closed' | 'other';

export class SshConnectionError extends Error {
  readonly reason: SshFailure;

  constructor(message: string, reason: SshFailure) {
    super(message);
    this.name = 'SshConnectionError';
    this.reason = reason;
  }
}

export class ExecTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExecTimeoutError';
  }
}

/** POSIX single-quote quoting: safe for any byte string except NUL. */
export function shQuote(arg: string): string {
  return `'` + arg.replace(/'/g, `'\\''`) + `'`;
}

export function shCommand(args: string[]): string {
  return args.map(shQuote).join(' ');
}

// OpenSSH allows 10 sessions per connection by default (MaxSessions); stay under it so a
// burst of concurrent execs queues here instead of failing with "open failed".
const MAX_CHANNELS = 8;
const DEFAULT_KEEPALIVE_MS = 5000;
const OPEN_RETRIES = 10;

/** The server-host-key algorithms that can carry a key of this type. */
function hostKeyAlgorithms(type: string): NonNullable<NonNullable<ConnectConfig['algorithms']>['serverHostKey']> {
  // An ssh-rsa key is offered under the SHA-2 signature names by current servers.
  if (type === 'ssh-rsa') return ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];
  return [type as 'ssh-ed25519'];
}

function describeCommand(command: string): string {
  const oneLine = command.replace(/\s+/g, ' ').trim();
  return oneLine.length > 80 ? oneLine.slice(0, 77) + '...' : oneLine;
}

interface Ssh2Error extends Error {
  code?: string | number;
  level?: string;
}

function connectionError(where: string, user: string, err: Ssh2Error, connectTimeoutMs: number): SshConnectionError {
  const code = typeof err.code === 'string' ? err.code : undefined;
  if (code === 'ECONNREFUSED') {
    return new SshConnectionError(`${where}: connection refused (is sshd running and the port right?)`, 'refused');
  }
  if (code === 'ETIMEDOUT' || err.level === 'client-timeout') {
    const seconds = Math.round(connectTimeoutMs / 100) / 10;
    return new SshConnectionError(`${where}: timed out after ${seconds}s waiting for the SSH handshake (${err.message})`, 'timeout');
  }
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || err.level === 'client-dns') {
    return new SshConnectionError(`${where}: host unreachable (${err.message})`, 'unreachable');
  }
  if (/no matching host key/i.test(err.message)) {
    return new SshConnectionError(
      `${where}: the server offers no host key of the pinned type (${err.message}); check host_key with the difusor's admin`,
      'other',
    );
  }
  if (err.level === 'client-authentication') {
    return new SshConnectionError(
      `${where}: authentication failed for user "${user}" (is the publication key in that account's authorized_keys?)`,
      'auth',
    );
  }
  if (code === 'ECONNRESET' || code === 'EPIPE') {
    return new SshConnectionError(`${where}: the connection was closed by the server (${err.message})`, 'closed');
  }
  return new SshConnectionError(`${where}: SSH connection failed: ${err.message}`, 'other');
}

export function connectSsh(target: SshTarget): Promise<RemoteShell> {
  const where = `${target.host}:${target.port}`;
  const pinned = parseHostKey(target.hostKey);
  if (typeof pinned === 'string') {
    return Promise.reject(new Error(`${where}: the pinned host_key is not usable: ${pinned}`));
  }

  return new Promise((resolve, reject) => {
    const client = new Client();
    let offered: string | undefined;
    let settled = false;

    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      client.end();
      reject(err);
    };

    client.once('ready', () => {
      if (settled) return;
      settled = true;
      client.removeAllListeners('error');
      client.removeAllListeners('close');
      resolve(new Ssh2Shell(client, where));
    });
    client.on('error', (err: Ssh2Error) => {
      if (offered !== undefined) fail(new HostKeyMismatchError(where, fingerprint(pinned.blob), offered));
      else fail(connectionError(where, target.user, err, target.connectTimeoutMs));
    });
    client.on('close', () => fail(new SshConnectionError(`${where}: the connection closed before the SSH session was ready`, 'closed')));

    client.connect({
      host: target.host,
      port: target.port,
      username: target.user,
      privateKey: target.privateKey,
      readyTimeout: target.connectTimeoutMs,
      keepaliveInterval: target.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_MS,
      keepaliveCountMax: target.keepaliveCountMax ?? 3,
      // Ask only for the pinned key's type, so the comparison below is with the key the server is meant to show.
      algorithms: { serverHostKey: hostKeyAlgorithms(pinned.type) },
      // Returning false aborts the key exchange, so a wrong server never sees our credentials.
      hostVerifier: (key: Buffer) => {
        if (key.equals(pinned.blob)) return true;
        offered = fingerprint(key);
        return false;
      },
    });
  });
}

class Ssh2Shell implements RemoteShell {
  private closedBecause: string | undefined;
  private readonly pending = new Set<(err: Error) => void>();
  private readonly waiting: Array<() => void> = [];
  private active = 0;

  constructor(
    private readonly client: Ssh2Client,
    private readonly where: string,
  ) {
    client.on('error', (err: Error) => this.lost(`connection to ${where} lost: ${err.message}`));
    client.on('close', () => this.lost(`connection to ${where} closed`));
  }

  exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    if (this.closedBecause) return Promise.reject(new Error(this.closedBecause));
    return new Promise<void>((resolve) => {
      if (this.active < MAX_CHANNELS) {
        this.active++;
        resolve();
      } else {
        this.waiting.push(resolve);
      }
    })
      .then(() => this.run(command, opts))
      .finally(() => {
        const next = this.waiting.shift();
        if (next) next();
        else this.active--;
      });
  }

  close(): void {
    this.lost(`connection to ${this.where} was closed by difusion`);
    this.client.end();
  }

  private lost(reason: string): void {
    if (this.closedBecause) return;
    this.closedBecause = reason;
    for (const rejectExec of [...this.pending]) rejectExec(new Error(reason));
    this.pending.clear();
  }

  private run(command: string, opts: ExecOptions): Promise<ExecResult> {
    if (this.closedBecause) return Promise.reject(new Error(this.closedBecause));
    return new Promise((resolve, reject) => {
      const channelRun = new ChannelRun(this.client, this.where, command, opts, {
        ended: (err, result) => {
          this.pending.delete(channelRun.abort);
          if (err) reject(err);
          else resolve(result as ExecResult);
        },
        connectionLost: (reason) => {
          this.lost(reason);
          return this.closedBecause as string;
        },
      });
      this.pending.add(channelRun.abort);
      channelRun.start();
    });
  }
}

/** What one command's channel tells its connection. */
interface ChannelRunEvents {
  /** Once: the command's result, or why it has none. */
  ended(err: Error | undefined, result?: ExecResult): void;
  /** ssh2 found the connection gone: every exec on it ends; returns why, as the connection names it. */
  connectionLost(reason: string): string;
}

/**
 * One command on its own channel: the channel opened (again, while sshd frees a session slot), the command
 * stopped at its timeout, stdout and stderr kept within their caps (or stdout passed on to stdoutTo up to
 * stdoutLimit, with backpressure), stdin sent and then EOF. It ends once: at the channel's close or the first failure.
 */
class ChannelRun {
  private channel: ClientChannel | undefined;
  private timer: NodeJS.Timeout | undefined;
  private done = false;
  private readonly stdout: Buffer[] = [];
  private readonly stderr: Buffer[] = [];
  private code: number | null = null;
  private stdoutBytes = 0;
  private stderrBytes = 0;
  private stdoutCut = false;

  constructor(
    private readonly client: Ssh2Client,
    private readonly where: string,
    private readonly command: string,
    private readonly opts: ExecOptions,
    private readonly events: ChannelRunEvents,
  ) {}

  start(): void {
    this.startTimeout();
    this.open(1);
  }

  /** Ends the run with `err`, stopping the command if its channel is open. */
  readonly abort = (err: Error): void => {
    if (this.channel) stopCommand(this.channel);
    this.finish(err);
  };

  private startTimeout(): void {
    const ms = this.opts.timeoutMs;
    if (ms === undefined) return;
    this.timer = setTimeout(() => {
      this.abort(new ExecTimeoutError(`${this.where}: "${describeCommand(this.command)}" did not finish within ${Math.round(ms / 100) / 10}s; its channel was closed`));
    }, ms);
  }

  private open(attempt: number): void {
    if (this.done) return;
    try {
      this.client.exec(this.command, (err, ch) => this.opened(attempt, err, ch));
    } catch (err) {
      // ssh2 throws "Not connected" when the socket is gone but its close event has not come yet.
      this.finish(new Error(this.events.connectionLost(`connection to ${this.where} lost: ${(err as Error).message}`)));
    }
  }

  private opened(attempt: number, err: Error | undefined, ch: ClientChannel): void {
    if (err && /open failed/i.test(err.message) && attempt < OPEN_RETRIES && !this.done) {
      // sshd frees a session slot a moment after the channel closes; a refusal right then is not final.
      setTimeout(() => this.open(attempt + 1), 20 * attempt);
      return;
    }
    if (err) {
      this.finish(new Error(`${this.where}: could not start "${describeCommand(this.command)}": ${err.message}`));
      return;
    }
    if (this.done) {
      // Timed out or lost while the channel was opening.
      ch.close();
      return;
    }
    this.collect(ch);
  }

  private collect(ch: ClientChannel): void {
    this.channel = ch;
    ch.on('data', (chunk: Buffer) => this.onStdout(ch, chunk));
    ch.stderr.on('data', (chunk: Buffer) => this.onStderr(chunk));
    ch.on('exit', (exitCode: number | null) => {
      this.code = exitCode;
    });
    ch.on('close', () => this.finish(undefined, this.result()));
    // Always send EOF, or a command that reads stdin would wait forever.
    if (this.opts.stdin !== undefined) ch.end(this.opts.stdin);
    else ch.end();
  }

  private onStdout(ch: ClientChannel, chunk: Buffer): void {
    if (this.done || this.stdoutCut) return;
    this.stdoutBytes += chunk.length;
    const sink = this.opts.stdoutTo;
    if (!sink) {
      if (this.stdoutBytes > MAX_ANSWER_BYTES) this.tooLarge('stdout', MAX_ANSWER_BYTES);
      else this.stdout.push(chunk);
      return;
    }
    const limit = this.opts.stdoutLimit ?? Infinity;
    if (this.stdoutBytes >= limit) {
      this.cutAtLimit(ch, sink, chunk, limit);
      return;
    }
    if (!sink.write(chunk)) {
      ch.pause();
      sink.once('drain', () => ch.resume());
    }
  }

  /** What was asked for has come (a live log grew since it was listed): the rest waits for the next pull. */
  private cutAtLimit(ch: ClientChannel, sink: Writable, chunk: Buffer, limit: number): void {
    this.stdoutCut = true;
    const wanted = chunk.subarray(0, chunk.length - (this.stdoutBytes - limit));
    if (wanted.length > 0) sink.write(wanted);
    stopCommand(ch);
  }

  private onStderr(chunk: Buffer): void {
    if (this.done) return;
    this.stderrBytes += chunk.length;
    if (this.stderrBytes > MAX_STDERR_BYTES) this.tooLarge('stderr', MAX_STDERR_BYTES);
    else this.stderr.push(chunk);
  }

  private tooLarge(stream: 'stdout' | 'stderr', max: number): void {
    this.abort(new AnswerTooLargeError(`${this.where}: "${describeCommand(this.command)}" wrote more than ${max} bytes to ${stream}; a difusor's answer is capped there, the command was stopped`));
  }

  private result(): ExecResult {
    return {
      code: typeof this.code === 'number' ? this.code : -1,
      stdout: Buffer.concat(this.stdout).toString('utf8'),
      stderr: Buffer.concat(this.stderr).toString('utf8'),
      ...(this.stdoutCut ? { stdoutCut: true } : {}),
    };
  }

  private finish(err: Error | undefined, result?: ExecResult): void {
    if (this.done) return;
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
    this.events.ended(err, result);
  }
}

/** Servers that honour the signal request stop the command; the others at least lose its channel. */
function stopCommand(ch: ClientChannel): void {
  try {
    ch.signal('TERM');
    ch.close();
  } catch {
    // The connection is already gone: its close ends the command.
  }
}
