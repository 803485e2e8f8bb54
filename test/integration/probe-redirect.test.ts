import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo, type LookupFunction } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startLab, type Lab } from './lab/sshd.js';
import { makeLabCertificates, type LabCertificates } from './lab/tls.js';
import { writeCut } from '../../bench/prep-cut.js';
import { publish } from './support/publish.js';
import { runCli, show } from './support/cli.js';
import { readJournal } from '../../src/core/records/journal.js';
import { loadRegistry } from '../../src/core/registry/registry.js';
import { StateStore } from '../../src/core/records/state.js';
import { PUBLIC_WORDING, probeDifusores, publicProbeState, wentLiveTimes, type ProbeReport, type ProbeRow } from '../../src/core/probe/probe.js';
import type { Difusor } from '../../src/core/registry/types.js';
import { createProbeHttp } from '../../src/adapters/http.js';

/**
 * A difusor that redirects its visitors, on the lab: its web server is a small node server on 127.0.0.3 that
 * serves the lab difusor's `current` from disk under /serve/ and, under every other first segment, redirects
 * as that case says. Two internal stand-ins (127.0.0.77 and a port of 127.0.0.1) play the services inside the
 * institute's network: they must receive nothing, whatever the difusor answers.
 */

const T = 240_000;
const C1 = '20220605_2015_PREP_DGO';

let lab: Lab;
let cuts: string;
let difusorRoot: string;
const servers: net.Server[] = [];
const internalHits: string[] = [];
let internalA: string;
let internalB: string;
let front: string;
let cdn: string;

async function listen(server: net.Server, host: string): Promise<string> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return `${host}:${(server.address() as AddressInfo).port}`;
}

async function serveFile(res: http.ServerResponse, file: string): Promise<void> {
  const bytes = await readFile(path.join(difusorRoot, 'current', file)).catch(() => undefined);
  if (!bytes) {
    res.writeHead(404);
    res.end('no');
    return;
  }
  res.end(bytes);
}

function redirect(res: http.ServerResponse, location: string): void {
  res.writeHead(302, { location });
  res.end('moved');
}

/** What each case of the difusor does with a request for `file`. */
function behave(name: string, file: string, res: http.ServerResponse): void {
  const targets: Record<string, string> = {
    'other-host': `http://otro.example.net/${file}`,
    private: `http://${internalA}/internal-admin?delete=all`,
    'loopback-port': `http://localhost:${internalB.split(':')[1]}/`,
    file: 'file:///etc/passwd',
    ftp: `ftp://${internalA}/pub`,
    loop: `/loop/${file}`,
    same: `/serve/${file}`,
    cdn: `http://${cdn}/${file}`,
    dns: `http://cdn.lab.test:${internalA.split(':')[1]}/${file}`,
  };
  if (name === 'serve') void serveFile(res, file);
  else if (targets[name]) redirect(res, targets[name] as string);
  else {
    res.writeHead(404);
    res.end();
  }
}

beforeAll(async () => {
  lab = await startLab({ difusores: 1 });
  difusorRoot = lab.difusor('d1').path;
  cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-probe-redirect-'));
  await writeCut(path.join(cuts, C1), C1, { casillas: 12, counted: 6, imageBytes: 2_000, seed: 'redirect' });
  expect((await publish(await lab.writeRegistry(), path.join(cuts, C1))).exitCode).toBe(0);

  const record: http.RequestListener = (req, res) => {
    internalHits.push(`${req.headers.host ?? ''}${req.url ?? ''}`);
    res.end('panel de administración');
  };
  internalA = await listen(http.createServer(record), '127.0.0.77');
  internalB = await listen(http.createServer(record), '127.0.0.1');
  cdn = await listen(
    http.createServer((req, res) => void serveFile(res, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.slice(1)))),
    '127.0.0.4',
  );
  front = await listen(
    http.createServer((req, res) => {
      const [, name = '', ...rest] = new URL(req.url ?? '/', 'http://x').pathname.split('/');
      behave(name, decodeURIComponent(rest.join('/')), res);
    }),
    '127.0.0.3',
  );
}, T);

afterAll(async () => {
  for (const s of servers) await new Promise((resolve) => s.close(resolve));
  await lab?.stop();
  if (cuts) await rm(cuts, { recursive: true, force: true });
}, T);

/** The probe in this process, so a test can answer DNS for it: there is no DNS server in the lab. */
async function probeHere(cases: Array<{ id: string; path: string; redirect_hosts?: string[]; host?: string }>, lookup?: LookupFunction): Promise<ProbeReport> {
  const loaded = await loadRegistry(await lab.writeRegistry());
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
  const d1 = loaded.registry.difusores[0] as Difusor;
  const targets = cases.map(
    (c): Difusor => ({ ...d1, id: c.id, public_url: `http://${c.host ?? front}/${c.path}/`, ...(c.redirect_hosts ? { redirect_hosts: c.redirect_hosts } : {}) }),
  );
  const state = new StateStore(lab.stateDir);
  const journal = await readJournal(lab.stateDir);
  const http = createProbeHttp({ connectTimeoutMs: 5000, headersTimeoutMs: 10_000, bodyTimeoutMs: 10_000, totalTimeoutMs: 30_000, connectionsPerOrigin: 2, lookup });
  try {
    return await probeDifusores(
      targets,
      { maxLagSeconds: 60, full: false, sampleSize: 4, concurrency: 4, filesPerDifusor: 2, now: new Date(), certificateNow: new Date(), token: 'redirect' },
      {
        http,
        knowledge: {
          cutOfManifest: (digest, bytes) => state.cutWithManifest(digest, bytes),
          manifestHashes: (cut, digest) => state.manifestHashes(cut, digest),
          fileSizes: (cut) => state.sizesOf(cut),
          wentLive: (id) => wentLiveTimes(journal, id),
        },
      },
    );
  } finally {
    await http.close();
  }
}

const rowOf = (report: ProbeReport, id: string): ProbeRow => report.difusores.find((r) => r.id === id) as ProbeRow;

test('the issue as found: a difusor redirecting every request to an internal admin URL fails as redirect; the internal service receives nothing', async () => {
  const registry = await lab.writeRegistry({ difusores: { d1: { public_url: `http://${front}/private/` } } });
  const run = await runCli(['probe', '--registry', registry, '--json']);
  expect(run.code).toBe(6);
  const row = (JSON.parse(run.stdout) as ProbeReport).difusores[0] as ProbeRow;
  expect(row).toMatchObject({ id: 'd1', ok: false, kinds: ['redirect'], status: 302 });
  expect(row.error).toBe(
    `http://${front}/private/: sends visitors to ${internalA} (Location: http://${internalA}/internal-admin?delete=all); a difusor serves the results itself (a CDN of its own: list its host under redirect_hosts)`,
  );
  // The operator's journal keeps where it pointed; the public sees the kind's fixed wording, no address.
  const incident = (await readJournal(lab.stateDir)).filter((e) => e.phase === 'probe' && e.result === 'failed').at(-1);
  expect(incident).toMatchObject({ difusor: 'd1', detail: expect.objectContaining({ kinds: ['redirect'] }) });
  expect(incident?.error).toContain(internalA);
  const shown = JSON.stringify(publicProbeState(row, '2022-06-06T10:00:00-05:00'));
  expect(shown).toContain(PUBLIC_WORDING.redirect);
  for (const inside of ['127.0.0', 'internal-admin', internalA.split(':')[1] as string, front.split(':')[1] as string]) expect(shown).not.toContain(inside);
  expect(internalHits).toEqual([]);
}, T);

test('to another host, a private address, a loopback port, file:, ftp:, in a loop: not followed, each named; same origin and a listed CDN followed', async () => {
  const report = await probeHere([
    { id: 'serve', path: 'serve' },
    { id: 'same', path: 'same' },
    { id: 'cdn', path: 'cdn', redirect_hosts: ['127.0.0.4'] },
    { id: 'cdn-unlisted', path: 'cdn' },
    { id: 'other-host', path: 'other-host' },
    { id: 'private', path: 'private' },
    { id: 'loopback-port', path: 'loopback-port' },
    { id: 'file', path: 'file' },
    { id: 'ftp', path: 'ftp' },
    { id: 'loop', path: 'loop' },
  ]);
  for (const id of ['serve', 'same', 'cdn']) expect(rowOf(report, id)).toMatchObject({ id, ok: true, cut: C1, kinds: [] });
  expect(rowOf(report, 'same').filesChecked).toBeGreaterThan(3);
  const refused: Record<string, string> = {
    'cdn-unlisted': 'sends visitors to 127.0.0.4:',
    'other-host': 'sends visitors to otro.example.net (',
    private: `sends visitors to ${internalA} (`,
    'loopback-port': `sends visitors to localhost:${internalB.split(':')[1]} (`,
    file: 'sends visitors to a file: address (Location: file:///etc/passwd)',
    ftp: `sends visitors to a ftp: address (Location: ftp://${internalA}/pub)`,
    loop: 'redirects in a loop (more than 5 redirects)',
  };
  for (const [id, why] of Object.entries(refused)) {
    const row = rowOf(report, id);
    expect({ id, ok: row.ok, kinds: row.kinds }).toEqual({ id, ok: false, kinds: ['redirect'] });
    expect(row.error).toContain(why);
  }
  expect(internalHits).toEqual([]);
}, T);

test('a DNS name answering a private address is refused, listed or not, as a redirect target and as public_url itself', async () => {
  const answers: Record<string, string> = { 'cdn.lab.test': '127.0.0.77', 'mirror.lab.test': '127.0.0.3' };
  const lookup = ((hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    const address = answers[hostname];
    if (!address) return callback(Object.assign(new Error(`${hostname} not found`), { code: 'ENOTFOUND' }));
    return options.all ? callback(null, [{ address, family: 4 }]) : callback(null, address, 4);
  }) as unknown as LookupFunction;
  const report = await probeHere(
    [
      { id: 'dns', path: 'dns', redirect_hosts: ['cdn.lab.test'] },
      { id: 'mirror', path: 'serve', host: `mirror.lab.test:${front.split(':')[1]}` },
    ],
    lookup,
  );
  expect(rowOf(report, 'dns')).toMatchObject({ ok: false, kinds: ['redirect'] });
  expect(rowOf(report, 'dns').error).toContain(`sends visitors to cdn.lab.test:${internalA.split(':')[1]}, a name for an address inside a private network`);
  expect(rowOf(report, 'mirror')).toMatchObject({ ok: false, kinds: ['down'] });
  expect(rowOf(report, 'mirror').error).toMatch(/mirror\.lab\.test resolves to 127\.0\.0\.3, an address inside a private network; refused/);
  expect(internalHits).toEqual([]);
}, T);

describe('http to https on the same host', () => {
  let certs: LabCertificates;
  let dir: string;
  let dual: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'difusion-probe-upgrade-'));
    certs = await makeLabCertificates(dir, { validDays: 30 });
    // One port speaking both, as a browser meets it: plain http answers with a redirect to https on the same port.
    const secure = https.createServer({ cert: await readFile(certs.valid.cert), key: await readFile(certs.valid.key) }, (req, res) => {
      void serveFile(res, decodeURIComponent(new URL(req.url ?? '/', 'https://x').pathname.slice(1)));
    });
    const plain = http.createServer((req, res) => {
      res.writeHead(301, { location: `https://${req.headers.host ?? ''}${req.url ?? '/'}` });
      res.end();
    });
    dual = await listen(
      net.createServer((socket) => {
        socket.once('data', (first) => {
          socket.pause();
          socket.unshift(first);
          // 0x16: a TLS handshake record.
          (first[0] === 0x16 ? secure : plain).emit('connection', socket);
          process.nextTick(() => socket.resume());
        });
      }),
      '127.0.0.1',
    );
  }, T);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('followed: the difusor passes on its https copy, its certificate checked', async () => {
    const registry = await lab.writeRegistry({ difusores: { d1: { public_url: `http://${dual}/` } } }, path.join(dir, 'difusores.yaml'));
    const run = await runCli(['probe', '--registry', registry, '--json'], { NODE_EXTRA_CA_CERTS: certs.ca });
    const row = (JSON.parse(run.stdout) as ProbeReport).difusores[0] as ProbeRow;
    expect({ code: run.code, row }).toMatchObject({ code: 0, row: { ok: true, cut: C1, kinds: [] } });
    expect(row.certificate?.daysLeft).toBeGreaterThanOrEqual(29);
    // Without the lab CA the same redirect is followed, and the certificate refused.
    const untrusted = await runCli(['probe', '--registry', registry, '--json']);
    expect((JSON.parse(untrusted.stdout) as ProbeReport).difusores[0]).toMatchObject({ ok: false, kinds: ['certificate'] });
    if (run.code !== 0) throw new Error(show(run));
  }, T);
});
