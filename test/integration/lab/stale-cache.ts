/**
 * A caching reverse proxy gone wrong, as a misconfigured CDN is: it keeps the first answer for each path
 * forever, ignoring the query string and the client's Cache-Control. Lab-only, on loopback.
 */
import http from 'node:http';
import { freePort } from './procs.js';

export interface StaleCache {
  url: string;
  /** Paths answered from the cache so far. */
  hits: number;
  close(): Promise<void>;
}

export async function startStaleCache(origin: string): Promise<StaleCache> {
  const kept = new Map<string, { status: number; headers: http.IncomingHttpHeaders; body: Buffer }>();
  const state = { hits: 0 };
  const fetchOrigin = (path: string) =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
      http
        .get(new URL(path, origin), { agent: false }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        })
        .on('error', reject);
    });
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const cached = kept.get(path);
    const answer = cached ? Promise.resolve(cached) : fetchOrigin(path);
    if (cached) state.hits++;
    answer.then(
      (a) => {
        kept.set(path, a);
        const { 'transfer-encoding': _te, connection: _c, 'keep-alive': _k, ...headers } = a.headers;
        res.writeHead(a.status, { ...headers, 'content-length': a.body.length, age: '600' });
        res.end(a.body);
      },
      () => {
        res.writeHead(502);
        res.end();
      },
    );
  });
  const port = await freePort('127.0.0.1');
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port }, resolve));
  return {
    url: `http://127.0.0.1:${port}/`,
    get hits() {
      return state.hits;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
