import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createProbeHttp } from '../../src/ports/http.js';

/** The probe's HTTP adapter against a real server on loopback that misbehaves on request. */
let server: http.Server;
let base: string;
const seen: Array<{ url: string; cacheControl?: string }> = [];
const sockets = new Set<import('node:net').Socket>();

beforeAll(async () => {
  server = http.createServer((req, res) => {
    seen.push({ url: req.url ?? '', cacheControl: req.headers['cache-control'] });
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/twice') {
      res.setHeader('cache-control', ['public, max-age=30', 'no-store']);
      res.end('aviso');
    } else if (path === '/file') {
      res.end('contenido del corte');
    } else if (path === '/moved') {
      res.writeHead(301, { location: '/file' });
      res.end();
    } else if (path === '/endless') {
      // A "manifest" that never ends: the adapter must stop keeping it.
      const chunk = Buffer.alloc(1 << 20, 97);
      const pump = (): void => {
        while (res.write(chunk));
        res.once('drain', pump);
      };
      pump();
    } else if (path === '/trickle') {
      // A byte every 100 ms: each gap well inside the body timeout, the whole far beyond any deadline.
      res.writeHead(200, { 'content-length': '100000' });
      const drip = setInterval(() => (res.destroyed ? clearInterval(drip) : res.write('.')), 100);
      res.on('close', () => clearInterval(drip));
    } else if (path === '/stall-body') {
      res.writeHead(200, { 'content-length': '100' });
      res.write('only a part');
    } else if (path === '/stall-headers') {
      // Nothing, ever.
    } else {
      res.writeHead(404);
      res.end('no');
    }
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((resolve) => server.close(resolve));
});

const client = (totalTimeoutMs = 60_000) => createProbeHttp({ connectTimeoutMs: 2000, headersTimeoutMs: 500, bodyTimeoutMs: 500, totalTimeoutMs, connectionsPerOrigin: 2 });

test('a body is hashed as it streams; no-cache is asked for; a redirect is followed with the cache-busting query kept', async () => {
  const h = client();
  try {
    const direct = await h.get(`${base}/file?difusion-probe=a-1`);
    expect(direct).toMatchObject({ status: 200, bytes: 19, sha256: createHash('sha256').update('contenido del corte').digest('hex') });
    expect(direct.body).toBeUndefined();
    expect(direct.ttfbMs).toBeLessThanOrEqual(direct.totalMs);
    const moved = await h.get(`${base}/moved?difusion-probe=a-2`, { keepBody: true });
    expect(moved).toMatchObject({ status: 200, sha256: direct.sha256 });
    expect(moved.body?.toString()).toBe('contenido del corte');
    expect(seen.slice(-2).map((s) => s.url)).toEqual(['/moved?difusion-probe=a-2', '/file?difusion-probe=a-2']);
    expect(seen.every((s) => s.cacheControl === 'no-cache')).toBe(true);
  } finally {
    await h.close();
  }
});

test('a header sent twice is read as one list, not as its last line', async () => {
  const h = client();
  try {
    expect((await h.get(`${base}/twice`)).headers['cache-control']).toBe('public, max-age=30, no-store');
  } finally {
    await h.close();
  }
});

test('a stalled body, silent headers and a closed port are errors that say which, never a hang', async () => {
  const h = client();
  try {
    expect((await h.get(`${base}/stall-body`)).error).toMatch(/body stalled/);
    expect((await h.get(`${base}/stall-headers`)).error).toMatch(/no response headers/);
    const short = client(2000);
    const trickle = await short.get(`${base}/trickle`).finally(() => short.close());
    expect(trickle.error).toMatch(/no complete answer within 2 s/);
    expect(trickle.totalMs).toBeLessThan(10_000);
    const closed = await h.get('http://127.0.0.1:1/MANIFEST.sha256');
    expect(closed.error).toMatch(/ECONNREFUSED/);
    expect(closed.certificateError).toBe(false);
  } finally {
    await h.close();
  }
}, 20_000);

test('a document kept in memory that will not end is cut off, not held', async () => {
  const h = client();
  try {
    const answer = await h.get(`${base}/endless`, { keepBody: true });
    expect(answer.error).toMatch(/more than 64 MB, not a manifest/);
    expect(answer.body).toBeUndefined();
  } finally {
    await h.close();
  }
}, 30_000);
