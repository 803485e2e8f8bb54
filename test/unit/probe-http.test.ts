import { createHash } from 'node:crypto';
import http from 'node:http';
import type { LookupFunction, AddressInfo } from 'node:net';
import { createProbeHttp, guardedLookup, httpGet } from '../../src/adapters/http.js';

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
    } else if (path === '/away') {
      // Where a test says, with a body that never ends: a redirect's body is never read.
      res.writeHead(302, { location: String(new URL(req.url ?? '/', 'http://x').searchParams.get('to')) });
      const chunk = Buffer.alloc(1 << 16, 97);
      const pump = (): void => {
        while (res.write(chunk));
        res.once('drain', pump);
      };
      pump();
    } else if (path === '/loop') {
      res.writeHead(302, { location: '/loop' });
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
    expect(answer).toMatchObject({ tooLarge: true, error: 'longer than 67108864 bytes' });
    expect(answer.body).toBeUndefined();
    // A body past the size the caller knows is not read further either.
    const sized = await h.get(`${base}/endless`, { maxBytes: 1000 });
    expect(sized).toMatchObject({ tooLarge: true, error: 'longer than 1000 bytes' });
    expect(sized.bytes).toBeLessThan(2 << 20);
  } finally {
    await h.close();
  }
}, 30_000);

/** An internal service: nothing the probe does may reach it. */
let internal: http.Server;
let internalUrl: string;
const internalHits: string[] = [];
/** A CDN a registry may list for a difusor. */
let cdn: http.Server;
let cdnPort: number;

beforeAll(async () => {
  internal = http.createServer((req, res) => {
    internalHits.push(req.url ?? '');
    res.end('admin');
  });
  await new Promise<void>((resolve) => internal.listen(0, '127.0.0.77', resolve));
  internalUrl = `http://127.0.0.77:${(internal.address() as AddressInfo).port}`;
  cdn = http.createServer((_req, res) => res.end('contenido del corte'));
  await new Promise<void>((resolve) => cdn.listen(0, '127.0.0.2', resolve));
  cdnPort = (cdn.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((resolve) => internal.close(resolve));
  await new Promise((resolve) => cdn.close(resolve));
});

const away = (to: string): string => `${base}/away?to=${encodeURIComponent(to)}`;

describe('redirects stay home', () => {
  test('to another host, an internal address, a loopback port, file:, ftp:: not followed, the host named, nothing sent there', async () => {
    const h = client();
    try {
      for (const [to, why] of [
        ['http://otro.example.net/resultados', 'sends visitors to otro.example.net'],
        [`${internalUrl}/internal-admin?delete=all`, `sends visitors to ${new URL(internalUrl).host}`],
        [`http://localhost:${new URL(internalUrl).port}/`, `sends visitors to localhost:${new URL(internalUrl).port}`],
        [`http://127.0.0.1:${new URL(internalUrl).port}/`, `sends visitors to 127.0.0.1:${new URL(internalUrl).port}`],
        ['file:///etc/passwd', 'sends visitors to a file: address'],
        ['ftp://127.0.0.77/pub', 'sends visitors to a ftp: address'],
        ['data:text/plain,hola', 'sends visitors to a data: address'],
      ]) {
        const answer = await h.get(away(to as string), { scope: { home: `${base}/` } });
        expect(answer).toMatchObject({ status: 302, redirect: why, location: to, bytes: 0 });
        expect(answer.sha256).toBeUndefined();
      }
    } finally {
      await h.close();
    }
    expect(internalHits).toEqual([]);
  });

  test('in a loop: stopped, named as a loop', async () => {
    const h = client();
    try {
      const answer = await h.get(`${base}/loop?difusion-probe=l-1`);
      expect(answer.redirect).toBe('redirects in a loop (more than 5 redirects)');
    } finally {
      await h.close();
    }
  });

  test('to a host the registry lists for the difusor: followed; without it, refused', async () => {
    const h = client();
    try {
      const to = `http://127.0.0.2:${cdnPort}/file`;
      const listed = await h.get(away(to), { scope: { home: `${base}/`, redirectHosts: ['127.0.0.2'] } });
      expect(listed).toMatchObject({ status: 200, bytes: 19 });
      expect(listed.redirect).toBeUndefined();
      expect((await h.get(away(to), { scope: { home: `${base}/` } })).redirect).toBe(`sends visitors to 127.0.0.2:${cdnPort}`);
    } finally {
      await h.close();
    }
  });

  test("preflight's check follows the same rules and never reads the body", async () => {
    expect(await httpGet(`${base}/file`, 2000, { home: `${base}/` })).toEqual({ ok: true, status: 200 });
    expect(await httpGet(`${base}/endless`, 2000, { home: `${base}/` })).toEqual({ ok: true, status: 200 });
    const refused = await httpGet(away(`${internalUrl}/internal-admin`), 2000, { home: `${base}/` });
    expect(refused).toMatchObject({ ok: false, status: 302 });
    expect(refused.error).toMatch(/^sends visitors to 127\.0\.0\.77:\d+ \(Location: http:\/\/127\.0\.0\.77:\d+\/internal-admin\)$/);
    expect(internalHits).toEqual([]);
  });
});

describe('no private address by surprise', () => {
  /** A resolver answering from a table, as a difusor's DNS would: there is no DNS server in the lab. */
  const dnsOf = (table: Record<string, string[]>): LookupFunction & { asked: string[] } => {
    const asked: string[] = [];
    const lookup = ((hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
      asked.push(hostname);
      const addresses = (table[hostname] ?? []).map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
      if (addresses.length === 0) return callback(Object.assign(new Error(`${hostname} not found`), { code: 'ENOTFOUND' }));
      return options.all ? callback(null, addresses) : callback(null, addresses[0]!.address, addresses[0]!.family);
    }) as unknown as LookupFunction & { asked: string[] };
    lookup.asked = asked;
    return lookup;
  };

  test('a DNS name answering a private address is refused at the connection, even when the registry lists it', async () => {
    const port = new URL(internalUrl).port;
    const lookup = dnsOf({ 'cdn.lab.test': ['127.0.0.77'], 'mirror.lab.test': ['203.0.113.7', '::ffff:127.0.0.77'] });
    const h = createProbeHttp({ connectTimeoutMs: 2000, headersTimeoutMs: 500, bodyTimeoutMs: 500, totalTimeoutMs: 10_000, connectionsPerOrigin: 2, lookup });
    try {
      const viaRedirect = await h.get(away(`http://cdn.lab.test:${port}/internal-admin`), { scope: { home: `${base}/`, redirectHosts: ['cdn.lab.test'] } });
      expect(viaRedirect.error).toMatch(/EINTERNALADDRESS: cdn\.lab\.test resolves to 127\.0\.0\.77, an address inside a private network; refused/);
      expect(viaRedirect.redirect).toBe(`sends visitors to cdn.lab.test:${port}, a name for an address inside a private network`);
      const direct = await h.get(`http://mirror.lab.test:${port}/MANIFEST.sha256`);
      expect(direct.error).toMatch(/mirror\.lab\.test resolves to ::ffff:127\.0\.0\.77/);
      expect(lookup.asked).toEqual(expect.arrayContaining(['cdn.lab.test', 'mirror.lab.test']));
    } finally {
      await h.close();
    }
    expect(internalHits).toEqual([]);
  });

  test('the guard answers what it checked, in the shape asked for; a public answer passes', async () => {
    const guarded = guardedLookup(
      dnsOf({
        'prep.example.mx': ['203.0.113.7', '2001:db8::7'],
        'rebind.example.net': ['169.254.169.254'],
        localhost: ['127.0.0.1', '::1'],
        'odd.localhost': ['10.0.0.1'],
      }),
    );
    const ask = (host: string, all: boolean): Promise<unknown[]> =>
      new Promise((resolve) => guarded(host, { all }, (...args: unknown[]) => resolve(args)));
    expect(await ask('prep.example.mx', false)).toEqual([null, '203.0.113.7', 4]);
    expect(await ask('prep.example.mx', true)).toEqual([null, [{ address: '203.0.113.7', family: 4 }, { address: '2001:db8::7', family: 6 }]]);
    const [error] = (await ask('rebind.example.net', true)) as [Error & { code: string }];
    expect(error.code).toBe('EINTERNALADDRESS');
    // The registry's own loopback mirror (http://localhost/prep/): this host answers it, not a difusor's DNS.
    expect(await ask('localhost', false)).toEqual([null, '127.0.0.1', 4]);
    expect(((await ask('odd.localhost', false)) as [Error & { code: string }])[0].code).toBe('EINTERNALADDRESS');
    const [missing] = (await ask('nowhere.example', false)) as [Error & { code: string }];
    expect(missing.code).toBe('ENOTFOUND');
  });

  test('a loopback mirror named localhost in the registry is reached', async () => {
    const h = client();
    try {
      expect(await h.get(`http://localhost:${new URL(base).port}/file`)).toMatchObject({ status: 200, bytes: 19 });
    } finally {
      await h.close();
    }
  });
});
