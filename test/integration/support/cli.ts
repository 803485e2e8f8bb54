import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** The repository root: bin/dev.js resolves the oclif config from here. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export interface CliExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliRun {
  child: ChildProcess;
  pid: number;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first stdout line matching re (rejects if the process ends first). */
  line(re: RegExp): Promise<string>;
  /** Settles once the process is gone and reaped (a zombie still answers kill(pid, 0)). */
  exited: Promise<CliExit>;
  /** Signals the whole process group: node, and the ssh and rsync it spawned. */
  signal(sig: NodeJS.Signals): void;
}

/**
 * The real CLI as its own process group, as cron or an operator's shell runs it, without a TTY (plain
 * timestamped lines). bin/dev.js's shebang is `node --loader ts-node/esm`; the same flags are given here.
 */
export function spawnCli(args: string[], env: Record<string, string> = {}): CliRun {
  const child = spawn(process.execPath, ['--loader', 'ts-node/esm', '--no-warnings', 'bin/dev.js', ...args], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', ...env },
  });
  if (child.pid === undefined) throw new Error('could not spawn the CLI');
  const pid = child.pid;
  let out = '';
  let err = '';
  let buffered = '';
  const waiters: Array<{ re: RegExp; resolve: (line: string) => void; reject: (e: Error) => void }> = [];
  const seen: string[] = [];
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    out += chunk;
    buffered += chunk;
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    for (const line of parts) {
      seen.push(line);
      for (const w of [...waiters]) {
        if (w.re.test(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  });
  child.stderr?.on('data', (chunk: string) => {
    err += chunk;
  });
  const exited = new Promise<CliExit>((resolve) => {
    child.once('close', (code, signal) => {
      for (const w of waiters.splice(0)) {
        w.reject(new Error(`CLI ended (code ${code}, signal ${signal}) before a line matching ${w.re}\n${out}\n${err}`));
      }
      resolve({ code, signal, stdout: out, stderr: err });
    });
  });
  return {
    child,
    pid,
    stdout: () => out,
    stderr: () => err,
    exited,
    line(re) {
      const found = seen.find((l) => re.test(l));
      if (found !== undefined) return Promise.resolve(found);
      if (child.exitCode !== null || child.signalCode !== null) {
        return Promise.reject(new Error(`CLI already ended before a line matching ${re}\n${out}\n${err}`));
      }
      return new Promise((resolve, reject) => waiters.push({ re, resolve, reject }));
    },
    signal(sig) {
      try {
        process.kill(-pid, sig);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
      }
    },
  };
}

/** Runs the CLI to the end. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliExit> {
  return spawnCli(args, env).exited;
}

/** Prints what a CLI run said, for a failing expectation. */
export function show(run: CliExit): string {
  return `exit ${run.code} signal ${run.signal}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`;
}
