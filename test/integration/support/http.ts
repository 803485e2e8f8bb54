import http from 'node:http';

export interface Reply {
  status: number;
  cacheControl?: string;
  body: string;
}

/** One GET on a fresh connection, as a visitor's browser would open it; never throws (status -1 on a network error). */
export function get(url: string): Promise<Reply> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, cacheControl: res.headers['cache-control'], body: Buffer.concat(chunks).toString() }));
      res.on('error', () => resolve({ status: -1, body: '' }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (error) => resolve({ status: -1, body: error.message }));
  });
}

/** The "Corte: dd/mm/yyyy HH:MM" a cut's page carries, as the cut id's YYYYMMDD_HHMM. */
export function stampOf(body: string): string | undefined {
  const m = /Corte:? (\d\d)\/(\d\d)\/(\d{4}) (\d\d):(\d\d)/.exec(body);
  return m ? `${m[3]}${m[2]}${m[1]}_${m[4]}${m[5]}` : undefined;
}
