import { manifestText, sha256Hex } from '../../src/core/shared/manifest.js';
import {
  chooseSample,
  fileUrl,
  failureSignature,
  isAggregate,
  lagSeconds,
  probeDifusores,
  probeJournalRecords,
  publicProbeState,
  wentLiveTimes,
  PUBLIC_WORDING,
  MAX_MANIFEST_BYTES,
  type ProbeFailureKind,
  type HttpAnswer,
  type ProbeHttp,
  type ProbeOptions,
} from '../../src/core/probe/probe.js';
import type { JournalEntry } from '../../src/core/records/journal.js';
import type { Difusor } from '../../src/core/registry/types.js';

const C1 = '20220605_2015_PREP_DGO';
const C2 = '20220605_2030_PREP_DGO';
const C3 = '20220605_2045_PREP_DGO';

function entry(fields: Partial<JournalEntry>): JournalEntry {
  return { seq: 1, at: '2022-06-06T01:16:00.000Z', run: 'r', operator: 'o', command: 'c', phase: 'switch', result: 'ok', prev: '0'.repeat(64), ...fields };
}

describe('lag the Debian-mirror way', () => {
  const wentLive = new Map([
    [C1, new Date('2022-06-06T01:16:00Z')],
    [C2, new Date('2022-06-06T01:31:00Z')],
    [C3, new Date('2022-06-06T01:46:00Z')],
  ]);
  test('0 while serving the newest cut that went live, however old it is', () => {
    expect(lagSeconds(C3, wentLive, new Date('2022-06-06T05:00:00Z'))).toBe(0);
  });
  test('otherwise the time since the first newer cut went live, not the newest', () => {
    expect(lagSeconds(C1, wentLive, new Date('2022-06-06T01:32:30Z'))).toBe(90);
    expect(lagSeconds(C2, wentLive, new Date('2022-06-06T01:46:45Z'))).toBe(45);
  });
  test('a newer cut that never went live anywhere does not count', () => {
    expect(lagSeconds(C2, new Map([[C2, new Date('2022-06-06T01:31:00Z')]]), new Date('2022-06-06T03:00:00Z'))).toBe(0);
  });
  test('went live: the earliest switch of the cut, switchedAt over the entry time, failures and other phases ignored', () => {
    const times = wentLiveTimes([
      entry({ cut: C2, at: '2022-06-06T01:31:05Z' }),
      entry({ cut: C2, at: '2022-06-06T01:31:09Z', detail: { switchedAt: '2022-06-06T01:31:01.500Z', lateSeconds: 0 } }),
      entry({ cut: C3, at: '2022-06-06T01:40:00Z', result: 'failed' }),
      entry({ cut: C3, at: '2022-06-06T01:40:00Z', phase: 'stage' }),
    ]);
    expect([...times.entries()]).toEqual([[C2, new Date('2022-06-06T01:31:01.500Z')]]);
  });
  test('a rollback withdraws the newer cuts: a difusor on the cut it went back to is not late; a new switch counts again', () => {
    const switched = [entry({ cut: C1, at: '2022-06-06T01:16:00Z' }), entry({ cut: C2, at: '2022-06-06T01:31:00Z' })];
    const rolledBack = [...switched, entry({ phase: 'rollback', difusor: 'd1', cut: C1, at: '2022-06-06T01:40:00Z', detail: { cut: C1, from: C2 } })];
    expect(lagSeconds(C1, wentLiveTimes(rolledBack, 'd1'), new Date('2022-06-06T02:00:00Z'))).toBe(0);
    expect(lagSeconds(C1, wentLiveTimes(switched, 'd1'), new Date('2022-06-06T02:00:00Z'))).toBe(1740);
    const forward = [...rolledBack, entry({ cut: C3, at: '2022-06-06T01:50:00Z' })];
    expect(lagSeconds(C1, wentLiveTimes(forward, 'd1'), new Date('2022-06-06T01:51:00Z'))).toBe(60);
    const failed = [...switched, entry({ phase: 'rollback', result: 'failed', difusor: 'd1', cut: C1 })];
    expect(wentLiveTimes(failed, 'd1').has(C2)).toBe(true);
  });
  test('a rollback --only withdraws the newer cut for the difusores it moved, not for the others still due to serve it', async () => {
    const journal = [
      entry({ difusor: 'd1', cut: C1, at: '2022-06-06T01:16:00Z' }),
      entry({ difusor: 'd1', cut: C2, at: '2022-06-06T01:31:00Z' }),
      entry({ difusor: 'd2', cut: C2, at: '2022-06-06T01:31:00Z' }),
      entry({ phase: 'rollback', difusor: 'd1', cut: C1, at: '2022-06-06T01:40:00Z', detail: { cut: C1, from: C2 } }),
    ];
    const at = new Date('2022-06-06T02:00:00Z');
    expect(lagSeconds(C1, wentLiveTimes(journal, 'd1'), at)).toBe(0);
    // d2 was not rolled back: still on C1 (its admin pointed it back, say), it is 29 minutes late.
    expect(lagSeconds(C1, wentLiveTimes(journal, 'd2'), at)).toBe(1740);
    expect(wentLiveTimes(journal).has(C2)).toBe(true);
    // Through the probe: the same C1 served by both, only d2 fails as lag; the newest live cut is still C2.
    const pages = Object.fromEntries(
      Object.entries(CUT_FILES[C1]!).map(([p, body]) => [`/${p}`, { status: 200, body }]).concat([['/MANIFEST.sha256', { status: 200, body: manifestOf(C1) }]]),
    );
    const report = await probeDifusores([difusor('d1'), difusor('d2')], { ...OPTS, now: at }, {
      http: fakeHttp(pages),
      knowledge: { ...knowledge, wentLive: (id) => wentLiveTimes(journal, id) },
    });
    expect(report.difusores.map((r) => [r.id, r.ok, r.lagSeconds])).toEqual([['d1', true, 0], ['d2', false, 1740]]);
    expect(report.newest).toBe(C2);
  });
});

describe('the sample', () => {
  const files = ['index.html', 'datos/resumen.json', 'datos/DGO_GUB_2022.csv', 'datos/DGO_GUB_2022.zip', 'casillas/0001-B.html', 'actas/0001-B_A.jpg', 'actas/0001-B_B.jpg', 'actas/0002-B_A.jpg'];
  test('aggregates: the root files and the data under datos/, not the zip or the images', () => {
    expect(files.filter(isAggregate)).toEqual(['index.html', 'datos/resumen.json', 'datos/DGO_GUB_2022.csv']);
  });
  test('always the aggregates, plus a random set that changes with the draw', () => {
    const first = chooseSample(files, 2, () => 0);
    const last = chooseSample(files, 2, () => 0.999);
    expect(first.slice(0, 3)).toEqual(['index.html', 'datos/resumen.json', 'datos/DGO_GUB_2022.csv']);
    expect(first).toHaveLength(5);
    expect(new Set(first.slice(3))).not.toEqual(new Set(last.slice(3)));
  });
  test('the random files are distinct, however the draw falls', () => {
    for (const draw of [() => 0, () => 0.999, () => 0.5]) {
      const extra = chooseSample(files, 4, draw).slice(3);
      expect(new Set(extra).size).toBe(4);
      expect(extra.every((f) => !isAggregate(f))).toBe(true);
    }
  });
  test('asking for more than there is gives every file once', () => {
    expect(chooseSample(files, 50).sort()).toEqual([...files].sort());
  });
  test('URLs: every segment encoded, the cache-busting query on each', () => {
    expect(fileUrl('https://prep.ujed.mx/prep', 'datos/año #1.csv', 'r1-7')).toBe('https://prep.ujed.mx/prep/datos/a%C3%B1o%20%231.csv?difusion-probe=r1-7');
  });
});

/** A difusor over HTTP, as a map from path to status and body. */
type FakePage =
  | { status: number; body: string; headers?: Record<string, string> }
  | { error: string; certificateError?: boolean; tooLarge?: boolean }
  | { redirect: string; location: string };
function fakeHttp(pages: Record<string, FakePage>): ProbeHttp & { urls: string[]; asked: Array<Parameters<ProbeHttp['get']>[1]> } {
  const urls: string[] = [];
  const asked: Array<Parameters<ProbeHttp['get']>[1]> = [];
  return {
    urls,
    asked,
    async get(url, opts = {}): Promise<HttpAnswer> {
      urls.push(url);
      asked.push(opts);
      const u = new URL(url);
      const page = pages[u.pathname];
      if (!page) return { status: 404, headers: {}, bytes: 9, sha256: sha256Hex('not found'), totalMs: 1, ttfbMs: 1 };
      if ('redirect' in page) return { status: 302, headers: { location: page.location }, bytes: 0, totalMs: 1, redirect: page.redirect, location: page.location };
      if ('error' in page) return { headers: {}, bytes: 0, totalMs: 1, error: page.error, certificateError: page.certificateError, tooLarge: page.tooLarge };
      return {
        status: page.status,
        headers: page.headers ?? {},
        bytes: page.body.length,
        sha256: sha256Hex(page.body),
        body: opts.keepBody ? Buffer.from(page.body) : undefined,
        totalMs: 2,
        ttfbMs: 1,
        certificate: u.protocol === 'https:' ? { validTo: '2022-06-15T00:00:00.000Z' } : undefined,
      };
    },
  };
}

const CUT_FILES: Record<string, Record<string, string>> = {
  [C1]: { 'index.html': 'Corte 20:15', 'datos/resumen.json': '{"c":1}', 'actas/0001-B_A.jpg': 'jpeg-1' },
  [C2]: { 'index.html': 'Corte 20:30', 'datos/resumen.json': '{"c":2}', 'actas/0001-B_A.jpg': 'jpeg-1' },
};
const manifestOf = (cut: string): string => manifestText(Object.entries(CUT_FILES[cut]!).map(([path, body]) => ({ path, sha256: sha256Hex(body) })));
const pagesOf = (cut: string): Record<string, { status: number; body: string }> => ({
  '/MANIFEST.sha256': { status: 200, body: manifestOf(cut) },
  ...Object.fromEntries(Object.entries(CUT_FILES[cut]!).map(([path, body]) => [`/${path}`, { status: 200, body }])),
});

const knowledge = {
  async cutOfManifest(digest: string) {
    return Object.keys(CUT_FILES).find((cut) => sha256Hex(manifestOf(cut)) === digest);
  },
  async manifestHashes(cut: string) {
    return new Map(Object.entries(CUT_FILES[cut]!).map(([path, body]) => [path, sha256Hex(body)]));
  },
  wentLive: () =>
    new Map([
      [C1, new Date('2022-06-06T01:16:00Z')],
      [C2, new Date('2022-06-06T01:31:00Z')],
    ]),
};

const OPTS: ProbeOptions = {
  maxLagSeconds: 60,
  full: false,
  sampleSize: 8,
  concurrency: 4,
  filesPerDifusor: 2,
  now: new Date('2022-06-06T01:32:00Z'),
  certificateNow: new Date('2022-06-06T00:00:00Z'),
  token: 'run1',
};

function difusor(id: string, fields: Partial<Difusor> = {}): Difusor {
  return { id, name: `Difusor ${id}`, transport: 'ssh', port: 22, path: `/srv/${id}`, public_url: `http://${id}.test/`, status: 'active', access: 'shell', ...fields };
}

async function probeWith(pages: Parameters<typeof fakeHttp>[0], d: Difusor = difusor('d1'), opts: Partial<ProbeOptions> = {}) {
  const http = fakeHttp(pages);
  const report = await probeDifusores([d], { ...OPTS, ...opts }, { http, knowledge });
  return { row: report.difusores[0]!, report, urls: http.urls };
}

describe('probing one difusor', () => {
  test('the newest cut, every file intact: passes with lag 0, every request past caches', async () => {
    const { row, report, urls } = await probeWith(pagesOf(C2));
    expect(row).toMatchObject({ ok: true, cut: C2, lagSeconds: 0, filesChecked: 3, differing: [], status: 200, kinds: [] });
    expect(report.exitCode).toBe(0);
    expect(report.newest).toBe(C2);
    expect(new Set(urls).size).toBe(urls.length);
    expect(urls.every((u) => /\?difusion-probe=run1-\d+$/.test(u))).toBe(true);
  });
  test('an older cut within the limit passes, beyond it fails as lag', async () => {
    expect((await probeWith(pagesOf(C1))).row).toMatchObject({ ok: true, cut: C1, lagSeconds: 60 });
    const late = await probeWith(pagesOf(C1), difusor('d1'), { now: new Date('2022-06-06T01:33:01Z') });
    expect(late.row).toMatchObject({ ok: false, kinds: ['lag'], lagSeconds: 121 });
    expect(late.row.error).toMatch(/121 s behind a newer cut \(limit 60 s\); `difusion verify --only d1` tells a stale disk from a cache in front$/);
    expect(late.report.exitCode).toBe(6);
  });
  test('a file edited in place, and one missing, are named', async () => {
    const pages = { ...pagesOf(C2), '/datos/resumen.json': { status: 200, body: '{"c":99}' } } as Record<string, { status: number; body: string }>;
    delete pages['/actas/0001-B_A.jpg'];
    const { row } = await probeWith(pages);
    expect(row.kinds).toEqual(['differs']);
    expect(row.differing).toEqual([expect.stringMatching(/^actas\/0001-B_A\.jpg: HTTP 404/), expect.stringMatching(/^datos\/resumen\.json: content differs/)]);
  });
  test('no answer is down; a refused certificate is its own kind', async () => {
    const down = (await probeWith({ '/MANIFEST.sha256': { error: 'ECONNREFUSED: connect ECONNREFUSED' } })).row;
    expect(down).toMatchObject({ ok: false, kinds: ['down'] });
    expect(down.error).toBe('http://d1.test/: ECONNREFUSED: connect ECONNREFUSED; check its web server and public_url in the registry');
    expect((await probeWith({ '/MANIFEST.sha256': { status: 404, body: 'nf' } })).row.error).toBe(
      'http://d1.test/MANIFEST.sha256 answered 404, not 200; is public_url the address that serves `current`?',
    );
    const cert = await probeWith({ '/MANIFEST.sha256': { error: 'certificate refused: CERT_HAS_EXPIRED', certificateError: true } });
    expect(cert.row).toMatchObject({ ok: false, kinds: ['certificate'] });
    expect(cert.row.error).toMatch(/CERT_HAS_EXPIRED; its admin must renew or fix the certificate \(a private CA: trust it with NODE_EXTRA_CA_CERTS=FILE\)$/);
  });
  test('a manifest this host never published is an unknown cut', async () => {
    const { row } = await probeWith({ '/MANIFEST.sha256': { status: 200, body: manifestText([{ path: 'index.html', sha256: sha256Hex('other') }]) } });
    expect(row).toMatchObject({ ok: false, kinds: ['unknown-cut'] });
  });
  test('a certificate close to expiry warns without failing', async () => {
    const { row } = await probeWith(pagesOf(C2), difusor('d1', { public_url: 'https://d1.test/' }));
    expect(row.ok).toBe(true);
    expect(row.certificate?.daysLeft).toBe(9);
    expect(row.warnings[0]).toMatch(/certificate expires in 9 day/);
  });
});

describe('a suspended difusor', () => {
  const aviso = JSON.stringify({ aviso: 'suspension', difusor: 'd1', name: 'Difusor d1', reason: 'alteró los datos', at: '2022-06-05T21:10:00-05:00' });
  const page = '<!doctype html><p>Aviso</p>';
  const noticeManifest = manifestText([
    { path: 'aviso.json', sha256: sha256Hex(aviso) },
    { path: 'index.html', sha256: sha256Hex(page) },
  ]);
  const notice = {
    '/MANIFEST.sha256': { status: 200, body: noticeManifest },
    '/aviso.json': { status: 200, body: aviso },
    '/': { status: 503, body: page, headers: { 'cache-control': 'no-store' } },
    '/index.html': { status: 503, body: page, headers: { 'cache-control': 'no-store' } },
    '/datos/': { status: 503, body: page, headers: { 'cache-control': 'no-store' } },
  };
  const suspended = difusor('d1', { status: 'suspended' });

  test('showing the notice on every path passes', async () => {
    const { row } = await probeWith(notice, suspended);
    expect(row).toMatchObject({ ok: true, kinds: [], notice: { reason: 'alteró los datos' } });
  });
  test('the notice without the vhost rule (index.html answered 200, data 404) is a missing notice', async () => {
    const { row } = await probeWith({ ...notice, '/index.html': { status: 200, body: page }, '/datos/': { status: 404, body: 'nf' } }, suspended);
    expect(row.kinds).toEqual(['notice-missing']);
    expect(row.differing).toEqual(expect.arrayContaining(['/index.html: HTTP 200, not the notice\'s 503', '/datos/: HTTP 404, not the notice\'s 503']));
  });
  test('the notice served cacheable (no-store dropped, or only max-age) is a missing notice: a cache would keep it or what it hid', async () => {
    const cacheable = { ...notice, '/datos/': { status: 503, body: page, headers: { 'cache-control': 'public, max-age=30' } }, '/': { status: 503, body: page } };
    const { row } = await probeWith(cacheable, suspended);
    expect(row.kinds).toEqual(['notice-missing']);
    expect(row.differing).toEqual([
      "/: the notice's 503 without Cache-Control: no-store (none)",
      "/datos/: the notice's 503 without Cache-Control: no-store (public, max-age=30)",
    ]);
    expect((await probeWith({ ...notice, '/': { status: 503, body: page, headers: { 'cache-control': 'public, no-store' } } }, suspended)).row.ok).toBe(true);
  });
  test('pointed back at a cut by its admin: the notice is missing', async () => {
    const { row } = await probeWith(pagesOf(C2), suspended);
    expect(row).toMatchObject({ ok: false, kinds: ['notice-missing'], cut: C2 });
  });
  test('down while suspended: down, and the notice is missing', async () => {
    const { row } = await probeWith({ '/MANIFEST.sha256': { error: 'ECONNREFUSED' } }, suspended);
    expect(row.kinds).toEqual(['down', 'notice-missing']);
  });
  test('an active difusor showing a notice is not serving the publication', async () => {
    const { row } = await probeWith(notice);
    expect(row.kinds).toEqual(['unknown-cut']);
  });
});

describe('journal records', () => {
  test('one incident per failing difusor with kinds, lag and the first 20 files, then a summary', async () => {
    const http = fakeHttp(pagesOf(C1));
    const report = await probeDifusores([difusor('d1'), difusor('d2')], { ...OPTS, now: new Date('2022-06-06T01:35:00Z') }, { http, knowledge });
    const records = probeJournalRecords(report);
    expect(records).toEqual([
      expect.objectContaining({ phase: 'probe', result: 'failed', difusor: 'd1', cut: C1, detail: expect.objectContaining({ kinds: ['lag'], lagSeconds: 240, status: 200 }) }),
      expect.objectContaining({ phase: 'probe', result: 'failed', difusor: 'd2', cut: C1 }),
      expect.objectContaining({ phase: 'probe', result: 'info', detail: expect.objectContaining({ failed: ['d1', 'd2'], newest: C2 }) }),
    ]);
    expect(records[2]!.difusor).toBeUndefined();
    expect(failureSignature(report)).not.toBe(failureSignature({ ...report, difusores: [] }));
  });
});

describe('what the operator reads', () => {
  test('a table on a terminal, plain lines for cron: cut, lag, files, differing named, status, times, certificate', async () => {
    const { probeTable, probeLines } = await import('../../src/ui/probe-view.js');
    const pages = { ...pagesOf(C1), '/datos/resumen.json': { status: 200, body: 'x' } };
    const http = fakeHttp(pages);
    const report = await probeDifusores([difusor('d1', { public_url: 'https://d1.test/' })], { ...OPTS, now: new Date('2022-06-06T01:33:00Z') }, { http, knowledge });
    const table = probeTable(report, 'America/Mexico_City');
    expect(table).toMatch(/^probe at 2022-06-05 20:33:00 · newest live cut 20220605_2030_PREP_DGO · max lag 60 s/);
    expect(table).toMatch(/difusor +result +cut seen +lag +files +differing +status +ttfb +total +cert/);
    expect(table).toMatch(/d1 +FAIL lag,differs +20220605_2015_PREP_DGO +120 s +3 +1 +200 +1 ms +\d+ ms +9 d \(!\)/);
    expect(table).toMatch(/d1: differs: datos\/resumen\.json: content differs/);
    const lines = probeLines(report, 'America/Mexico_City');
    expect(lines[0]).toMatch(/^2022-06-05 20:33:00 {2}d1 {2}FAIL lag,differs {2}cut=20220605_2015_PREP_DGO lag=120s files=3 differing=1 status=200 ttfb=1ms total=\d+ms cert=9d$/);
    expect(lines.slice(1).join('\n')).toMatch(/warning: certificate expires in 9 day/);
  });
});

describe('a difusor sending its visitors elsewhere', () => {
  const elsewhere = { redirect: 'sends visitors to 127.0.0.77:8877', location: 'http://127.0.0.77:8877/internal-admin?delete=all' };
  test('every request carries the rules of this difusor: its public_url and the hosts the registry lists for it', async () => {
    const http = fakeHttp(pagesOf(C2));
    await probeDifusores([difusor('d1', { redirect_hosts: ['cdn.example.net'] })], OPTS, { http, knowledge });
    expect(http.asked.length).toBeGreaterThan(1);
    for (const opts of http.asked) expect(opts?.scope).toEqual({ home: 'http://d1.test/', redirectHosts: ['cdn.example.net'] });
    expect(http.asked[0]).toMatchObject({ keepBody: true, maxBytes: MAX_MANIFEST_BYTES });
  });
  test('the manifest redirected away fails as redirect, naming where it points; no file is fetched after', async () => {
    const { row, urls } = await probeWith({ ...pagesOf(C2), '/MANIFEST.sha256': elsewhere });
    expect(row).toMatchObject({ ok: false, kinds: ['redirect'], status: 302 });
    expect(row.error).toBe(
      'http://d1.test/: sends visitors to 127.0.0.77:8877 (Location: http://127.0.0.77:8877/internal-admin?delete=all); a difusor serves the results itself (a CDN of its own: list its host under redirect_hosts)',
    );
    expect(urls).toHaveLength(1);
  });
  test('one file redirected away: redirect too, the file named', async () => {
    const { row } = await probeWith({ ...pagesOf(C2), '/datos/resumen.json': elsewhere });
    expect(row.kinds).toEqual(['redirect']);
    expect(row.error).toMatch(/^datos\/resumen\.json: sends visitors to 127\.0\.0\.77:8877/);
  });
  test('a suspended difusor redirecting its notice away fails as redirect and notice-missing', async () => {
    const noticePages = { '/MANIFEST.sha256': { status: 200, body: manifestText([{ path: 'aviso.json', sha256: sha256Hex('{}') }, { path: 'index.html', sha256: sha256Hex('aviso') }]) }, '/aviso.json': elsewhere };
    const { row } = await probeWith(noticePages, difusor('d1', { status: 'suspended' }));
    expect(row.kinds).toEqual(expect.arrayContaining(['redirect', 'notice-missing']));
  });
});

describe('bodies read no further than known', () => {
  test("each file is asked for at most its size in the cut; a longer one differs, not read on", async () => {
    const sized = { ...knowledge, fileSizes: async (cut: string) => new Map(Object.entries(CUT_FILES[cut]!).map(([path, body]) => [path, body.length])) };
    const http = fakeHttp({ ...pagesOf(C2), '/datos/resumen.json': { error: 'longer than 7 bytes', tooLarge: true } });
    const report = await probeDifusores([difusor('d1')], OPTS, { http, knowledge: sized });
    const byFile = new Map(http.urls.map((u, i) => [new URL(u).pathname, http.asked[i]]));
    expect(byFile.get('/index.html')).toMatchObject({ maxBytes: 'Corte 20:30'.length });
    expect(report.difusores[0]).toMatchObject({ ok: false, kinds: ['differs'] });
    expect(report.difusores[0]!.differing).toEqual([`datos/resumen.json: content differs (longer than its 7 bytes in ${C2}; not read further)`]);
  });
  test('a manifest past the stated maximum is not one this host published', async () => {
    const { row } = await probeWith({ '/MANIFEST.sha256': { error: `longer than ${MAX_MANIFEST_BYTES} bytes`, tooLarge: true } });
    expect(row.kinds).toEqual(['unknown-cut']);
  });
});

describe('what the public sees', () => {
  test('a fixed sentence for every kind, and only the state: never an address, port or error text', async () => {
    const kinds: ProbeFailureKind[] = ['lag', 'differs', 'down', 'certificate', 'notice-missing', 'unknown-cut', 'redirect'];
    expect(Object.keys(PUBLIC_WORDING).sort()).toEqual([...kinds].sort());
    for (const kind of kinds) expect(PUBLIC_WORDING[kind]).toMatch(/^[A-ZÁÉÍÓÚÑ][^0-9:/]*\.$/);
    const { row } = await probeWith({ ...pagesOf(C2), '/MANIFEST.sha256': { redirect: 'sends visitors to 10.0.0.5:8080', location: 'http://10.0.0.5:8080/admin' } });
    const shown = publicProbeState(row, '2022-06-05T20:32:00-05:00');
    expect(shown).toEqual({ id: 'd1', state: 'falla', kinds: ['redirect'], wording: ['Envía a los visitantes a otro sitio.'], at: '2022-06-05T20:32:00-05:00' });
    expect(JSON.stringify(shown)).not.toMatch(/10\.0\.0\.5|8080|admin|sends/);
    expect(publicProbeState((await probeWith(pagesOf(C2))).row, 'x')).toMatchObject({ state: 'ok', kinds: [], wording: [] });
  });
});
