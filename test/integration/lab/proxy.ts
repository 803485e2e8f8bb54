/**
 * A TCP proxy for bad-day tests. The kernel here has no netem, so stalls, latency and link cuts
 * are made in user space between the client and a lab server.
 */
import net from 'node:net';
import { freePort } from './procs.js';

export interface Proxy {
  host: string;
  port: number;
  /** Holds every byte in both directions (connections stay open, nothing flows), new connections included. */
  stall(): void;
  /** Delivers what was held and lets data flow again. */
  resume(): void;
  /** Destroys every open connection, as a dropped link would; the proxy keeps accepting. */
  cut(): void;
  /** Cuts every connection (as cut() does) once this many more bytes have gone server to client. */
  cutAfterDown(bytes: number): void;
  /** Adds this one-way delay to every chunk, in both directions. */
  setLatency(ms: number): void;
  /** Bytes delivered so far, client to server and server to client. */
  readonly bytes: { up: number; down: number };
  /** Connections accepted so far. */
  readonly connections: number;
  close(): Promise<void>;
}

interface Direction {
  from: net.Socket;
  to: net.Socket;
  held: Buffer[];
  ended: boolean;
  /** When the last delayed chunk is due, so chunks keep their order under latency. */
  due: number;
  count: (n: number) => void;
}

export async function startProxy(target: { host: string; port: number }, opts: { host?: string } = {}): Promise<Proxy> {
  const host = opts.host ?? '127.0.0.2';
  let stalled = false;
  let latencyMs = 0;
  let connections = 0;
  const bytes = { up: 0, down: 0 };
  let cutAtDown = Infinity;
  const sockets = new Set<net.Socket>();
  const directions = new Set<Direction>();

  const deliver = (d: Direction, chunk: Buffer) => {
    const write = () => {
      if (d.to.destroyed) return;
      d.count(chunk.length);
      if (!d.to.write(chunk)) {
        d.from.pause();
        d.to.once('drain', () => {
          if (!stalled) d.from.resume();
        });
      }
    };
    if (latencyMs <= 0) return write();
    d.due = Math.max(Date.now() + latencyMs, d.due);
    setTimeout(write, d.due - Date.now());
  };

  const finish = (d: Direction) => {
    const end = () => {
      if (!d.to.destroyed) d.to.end();
    };
    if (latencyMs > 0) setTimeout(end, Math.max(0, d.due - Date.now()));
    else end();
  };

  const pump = (d: Direction) => {
    directions.add(d);
    d.from.on('data', (chunk: Buffer) => {
      if (stalled) {
        d.held.push(chunk);
        d.from.pause();
        return;
      }
      deliver(d, chunk);
    });
    d.from.on('end', () => {
      d.ended = true;
      if (!stalled && d.held.length === 0) finish(d);
    });
    d.from.on('close', () => directions.delete(d));
  };

  const track = (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
  };

  const server = net.createServer((client) => {
    connections++;
    const upstream = net.connect({ host: target.host, port: target.port });
    track(client);
    track(upstream);
    const kill = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', kill);
    upstream.on('close', kill);
    pump({ from: client, to: upstream, held: [], ended: false, due: 0, count: (n) => (bytes.up += n) });
    pump({
      from: upstream,
      to: client,
      held: [],
      ended: false,
      due: 0,
      count: (n) => {
        bytes.down += n;
        if (bytes.down >= cutAtDown) {
          cutAtDown = Infinity;
          for (const s of sockets) s.destroy();
        }
      },
    });
  });

  let port = 0;
  for (let attempt = 1; ; attempt++) {
    port = await freePort(host);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host, port, exclusive: true }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      break;
    } catch (err) {
      if (attempt >= 5 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    }
  }

  return {
    host,
    port,
    bytes,
    get connections() {
      return connections;
    },
    stall() {
      stalled = true;
    },
    resume() {
      stalled = false;
      for (const d of directions) {
        const held = d.held.splice(0);
        for (const chunk of held) deliver(d, chunk);
        if (d.ended) finish(d);
        else d.from.resume();
      }
    },
    cut() {
      for (const s of sockets) s.destroy();
    },
    cutAfterDown(n: number) {
      cutAtDown = bytes.down + n;
    },
    setLatency(ms: number) {
      latencyMs = ms;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
