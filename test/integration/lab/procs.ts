import { readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';

/** Processes the lab started and has not yet seen exit; killed on process exit so a failing test leaves none behind. */
const live = new Set<number>();
const dirs = new Set<string>();
const killLeftovers = () => {
  for (const p of live) killTree(p, 'SIGKILL');
  if (process.env.DIFUSION_LAB_KEEP === '1') return;
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
};

let hooked = false;
// Unhooked when idle so that many test files in one jest process do not pile up exit listeners.
function rehook(): void {
  const needed = live.size > 0 || dirs.size > 0;
  if (needed && !hooked) process.on('exit', killLeftovers);
  if (!needed && hooked) process.off('exit', killLeftovers);
  hooked = needed;
}

/** A lab directory to remove at process exit if the test never stopped its lab. */
export function trackDir(dir: string): void {
  dirs.add(dir);
  rehook();
}

export function untrackDir(dir: string): void {
  dirs.delete(dir);
  rehook();
}

export function track(pid: number): void {
  live.add(pid);
  rehook();
}

export function untrack(pid: number): void {
  live.delete(pid);
  rehook();
}

/** Every descendant of pid, read from /proc (sshd's per-connection children call setsid, so a group kill misses them). */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    // The command name may contain spaces and parentheses; the fields after its last ')' are fixed.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const stack = [pid];
  while (stack.length > 0) {
    for (const child of children.get(stack.pop() as number) ?? []) {
      out.push(child);
      stack.push(child);
    }
  }
  return out;
}

export function killTree(pid: number, signal: NodeJS.Signals): void {
  const all = [pid, ...descendants(pid)];
  for (const p of all) {
    try {
      process.kill(p, signal);
    } catch {
      // Already gone.
    }
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A port that was free on host a moment ago; the caller retries if something takes it first. */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Whether p settled within ms; the timer is cleared so it never keeps the process alive. */
export function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  return Promise.race([p.then(() => true), late]).finally(() => clearTimeout(timer));
}
