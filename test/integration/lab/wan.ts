/**
 * A lab WAN: the difusores' sshd run inside a network namespace of their own, reached from here through
 * a veth pair, with this side's egress (what we send them) shaped by tc htb: one class for the shared
 * uplink, and optionally a thin class of its own for one difusor. The kernel here has no netem, so
 * latency and stalls stay the TCP proxy's job; this gives real bandwidth limits and real link cuts
 * (the veth taken down: packets vanish, nobody sends a reset).
 *
 * Addresses are a private /24 used only on that veth; the namespace name and the subnet carry the pid,
 * so parallel runs never collide. Namespaces are removed on stop() and, if a test dies first, at exit.
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { startLab, type Lab } from './sshd.js';

const run = promisify(execFile);
/** namespace → its subnet, whose routes (blackholes of drop()) live in our namespace and must go too. */
const live = new Map<string, string>();
let hooked = false;

function removeLeftovers(): void {
  for (const [ns, subnet] of live) {
    for (const args of [['netns', 'del', ns], ['route', 'flush', 'root', `${subnet}.0/24`]]) {
      try {
        execFileSync('ip', args, { stdio: 'ignore' });
      } catch {
        // Already gone.
      }
    }
  }
}

async function ip(...args: string[]): Promise<void> {
  await run('ip', args).catch((error: Error & { stderr?: string }) => {
    throw new Error(`ip ${args.join(' ')}: ${error.stderr?.trim() || error.message}`);
  });
}

async function tc(...args: string[]): Promise<void> {
  await run('tc', args).catch((error: Error & { stderr?: string }) => {
    throw new Error(`tc ${args.join(' ')}: ${error.stderr?.trim() || error.message}`);
  });
}

export interface Shape {
  /** The uplink every difusor shares, in Mbit/s. */
  uplinkMbit: number;
  /** One difusor on a thin link of its own (inside the uplink), in Mbit/s. */
  thin?: { id: string; mbit: number };
}

export interface WanLab extends Lab {
  namespace: string;
  /** The veth end on this side: its egress is what we send to the difusores. */
  device: string;
  /** Our address on the veth. */
  localAddress: string;
  /** Replaces the shaping (htb) on the link; undefined removes it. */
  shape(shape: Shape | undefined): Promise<void>;
  /** Takes the link down (packets dropped, no reset) or brings it back. */
  setLink(up: boolean): Promise<void>;
  /** Drops everything we send to one difusor (a blackhole route: no reset, no error on the wire), or stops. */
  drop(id: string, on: boolean): Promise<void>;
  /** Bytes sent so far through the thin class (what the thin difusor received), from tc's counters. */
  thinSentBytes(): Promise<number>;
}

let counter = 0;

/** A /24 that no interface here uses, derived from the pid so parallel runs pick different ones. */
async function freeSubnet(): Promise<string> {
  const { stdout } = await run('ip', ['-o', '-4', 'addr', 'show']);
  for (let attempt = 0; attempt < 200; attempt++) {
    const n = (process.pid * 7 + counter * 13 + attempt) % 40_000;
    const subnet = `10.${100 + Math.floor(n / 256) % 150}.${n % 256}`;
    if (!stdout.includes(` ${subnet}.`)) return subnet;
  }
  throw new Error('no free 10.x.y.0/24 for the lab WAN');
}

export async function startWanLab(opts: { difusores: number; shape?: Shape; baseDir?: string }): Promise<WanLab> {
  counter++;
  const tag = `${process.pid}${String.fromCharCode(96 + (counter % 26))}`;
  const namespace = `difusion-wan-${tag}`;
  // Interface names are at most 15 characters.
  const device = `dw${tag}h`.slice(0, 15);
  const peer = `dw${tag}n`.slice(0, 15);
  const subnet = await freeSubnet();
  const localAddress = `${subnet}.1`;
  const hosts = Array.from({ length: opts.difusores }, (_, i) => `${subnet}.${11 + i}`);

  await ip('netns', 'add', namespace);
  live.set(namespace, subnet);
  if (!hooked) {
    process.on('exit', removeLeftovers);
    hooked = true;
  }
  const inNs = (...args: string[]): Promise<void> => ip('netns', 'exec', namespace, 'ip', ...args);
  let lab: Lab | undefined;
  const removeNamespace = async (): Promise<void> => {
    // Deleting the namespace deletes its veth end, and with it ours.
    await ip('netns', 'del', namespace).catch(() => undefined);
    await ip('link', 'del', device).catch(() => undefined);
    await ip('route', 'flush', 'root', `${subnet}.0/24`).catch(() => undefined);
    live.delete(namespace);
  };
  try {
    await ip('link', 'add', device, 'type', 'veth', 'peer', 'name', peer, 'netns', namespace);
    await ip('addr', 'add', `${localAddress}/24`, 'dev', device);
    await ip('link', 'set', device, 'up');
    await inNs('link', 'set', 'lo', 'up');
    for (const host of hosts) await inNs('addr', 'add', `${host}/24`, 'dev', peer);
    await inNs('link', 'set', peer, 'up');

    lab = await startLab({
      difusores: opts.difusores,
      baseDir: opts.baseDir,
      hosts,
      placement: { exec: ['ip', 'netns', 'exec', namespace], port: 22 },
    });
    const started = lab;

    const shape = async (s: Shape | undefined): Promise<void> => {
      await tc('qdisc', 'del', 'dev', device, 'root').catch(() => undefined);
      if (!s) return;
      const rate = `${s.uplinkMbit}mbit`;
      await tc('qdisc', 'add', 'dev', device, 'root', 'handle', '1:', 'htb', 'default', '10');
      await tc('class', 'add', 'dev', device, 'parent', '1:', 'classid', '1:1', 'htb', 'rate', rate, 'ceil', rate);
      await tc('class', 'add', 'dev', device, 'parent', '1:1', 'classid', '1:10', 'htb', 'rate', rate, 'ceil', rate);
      if (s.thin) {
        const thin = `${s.thin.mbit}mbit`;
        await tc('class', 'add', 'dev', device, 'parent', '1:1', 'classid', '1:20', 'htb', 'rate', thin, 'ceil', thin);
        const host = started.difusor(s.thin.id).host;
        await tc('filter', 'add', 'dev', device, 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32', 'match', 'ip', 'dst', `${host}/32`, 'flowid', '1:20');
      }
    };
    await shape(opts.shape);

    return {
      ...started,
      namespace,
      device,
      localAddress,
      shape,
      setLink: (up) => ip('link', 'set', device, up ? 'up' : 'down'),
      drop: (id, on) => ip('route', on ? 'add' : 'del', 'blackhole', `${started.difusor(id).host}/32`),
      async thinSentBytes() {
        const { stdout } = await run('tc', ['-s', 'class', 'show', 'dev', device, 'classid', '1:20']);
        return Number(/Sent (\d+) bytes/.exec(stdout)?.[1] ?? 0);
      },
      async stop() {
        try {
          await started.stop();
        } finally {
          await removeNamespace();
        }
      },
    };
  } catch (error) {
    await lab?.stop().catch(() => undefined);
    await removeNamespace();
    throw error;
  }
}
