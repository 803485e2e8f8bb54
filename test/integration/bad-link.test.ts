import { readFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startWanLab, type WanLab } from './lab/wan.js';
import { startProxy, type Proxy } from './lab/proxy.js';
import { settlesWithin, sleep } from './lab/procs.js';
import { writeCut } from '../../bench/prep-cut.js';
import { checkLive, liveCut, publish } from './support/publish.js';
import type { PublishObserver } from '../../src/core/publish/publish.js';
import type { PublishRunResult } from '../../src/core/publish/publish-run.js';

/**
 * Bad links on a lab WAN (sshd in a network namespace, tc htb on the link; d3 on a thin class of its own):
 * a link that vanishes mid-transfer for 5 s, one gone for minutes, and a connection that stays open while
 * nothing flows. Whatever happens, the run ends within its timeouts without retrying in a loop, the others
 * go live, d3 keeps a whole cut, and the next run catches it up.
 */

const T = 180_000;
const SHAPE = { casillas: 120, counted: 20, imageBytes: 30_000, seed: 'bad-link' };
const CUTS = ['20220605_2015_PREP_DGO', '20220605_2030_PREP_DGO', '20220605_2045_PREP_DGO', '20220605_2100_PREP_DGO'];
// Small enough that a dead link is given up on in seconds; what a registry would set is the default 5 s × 3.
const QUICK = { keepaliveS: 1, keepaliveCount: 3, ioTimeoutS: 6 };

let lab: WanLab;
let cuts: string;
let registry: string;

const cutDir = (i: number): string => path.join(cuts, CUTS[i] as string);

async function connectionsTo(id: string): Promise<number> {
  const log = await readFile(lab.difusor(id).logFile, 'utf8');
  return log.split('\n').filter((l) => l.startsWith('Connection from')).length;
}

/** Calls fn once d3 is mid-transfer: staging, and some of its bytes through its thin class already. */
function midTransfer(bytesSoFar: () => Promise<number>, fn: () => Promise<void>): { observer: PublishObserver; done: Promise<void> } {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const done = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return {
    done,
    observer: {
      phase(id, phase) {
        if (id !== 'd3' || phase !== 'staging') return;
        void (async () => {
          const start = await bytesSoFar();
          for (let i = 0; i < 600 && (await bytesSoFar()) < start + 200_000; i++) await sleep(20);
          await fn();
        })().then(resolve, reject);
      },
    },
  };
}

async function expectWhole(id: string, cut: string): Promise<void> {
  const d = lab.difusor(id);
  expect(await liveCut(d.path)).toBe(`releases/${cut}`);
  expect(await checkLive(d.path)).toEqual({ ok: true, output: '' });
}

/** The helper's connection and the master rsync rides on (rsync's own only if the master was not up in time): nothing retried. */
function expectNoRetry(connections: number): void {
  expect(connections).toBeGreaterThanOrEqual(2);
  expect(connections).toBeLessThanOrEqual(3);
}

const results = (r: PublishRunResult): string[][] => r.outcomes.map((o) => [o.id, o.result]);

beforeAll(async () => {
  lab = await startWanLab({ difusores: 3, shape: { uplinkMbit: 40, thin: { id: 'd3', mbit: 4 } } });
  registry = await lab.writeRegistry({ publication: { switch_deadline_s: 1 } });
  cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-bad-link-'));
  for (const [i, cut] of CUTS.entries()) {
    await writeCut(path.join(cuts, cut), cut, { ...SHAPE, counted: SHAPE.counted * (i + 1) }, i > 0 ? cutDir(i - 1) : undefined);
  }
  expect((await publish(registry, cutDir(0))).exitCode).toBe(0);
}, T);

afterAll(async () => {
  await lab?.stop();
  if (cuts) await rm(cuts, { recursive: true, force: true });
}, T);

test('a link that vanishes for 5 s mid-transfer: the transfer resumes on the same connections and d3 goes live, late', async () => {
  const before = await connectionsTo('d3');
  const cut = midTransfer(
    () => lab.thinSentBytes(),
    async () => {
      await lab.drop('d3', true);
      await sleep(5000);
      await lab.drop('d3', false);
    },
  );
  const result = await publish(registry, cutDir(1), { observer: cut.observer });
  await cut.done;
  expect(results(result)).toEqual([['d1', 'live'], ['d2', 'live'], ['d3', 'live']]);
  expect(result.exitCode).toBe(0);
  expect(result.outcomes.find((o) => o.id === 'd3')?.lateSeconds).toBeGreaterThan(0);
  expectNoRetry((await connectionsTo('d3')) - before);
  for (const d of lab.difusores) await expectWhole(d.id, CUTS[1] as string);
}, T);

test('a link gone for minutes: the run gives d3 up within its timeouts, d3 keeps its whole cut, the next run catches it up', async () => {
  const before = await connectionsTo('d3');
  const cut = midTransfer(() => lab.thinSentBytes(), () => lab.drop('d3', true));
  try {
    const running = publish(registry, cutDir(2), { observer: cut.observer, link: QUICK });
    // Far below the five minutes the link stays down, and far above keepalives of 1 s × 3 and rsync's 6 s.
    expect(await settlesWithin(running, 60_000)).toBe(true);
    const result = await running;
    await cut.done;
    expect(results(result)).toEqual([['d1', 'live'], ['d2', 'live'], ['d3', 'failed']]);
    expect(result.exitCode).toBe(3);
    expect(result.outcomes.find((o) => o.id === 'd3')).toMatchObject({ failedPhase: 'staging', previous: CUTS[1] });
    expect(result.outcomes.find((o) => o.id === 'd3')?.error).toMatch(/lost mid-transfer|went silent|keepalive/i);
    expectNoRetry((await connectionsTo('d3')) - before);
    await expectWhole('d3', CUTS[1] as string);
  } finally {
    await lab.drop('d3', false).catch(() => undefined);
  }

  const next = await publish(registry, cutDir(2));
  expect(results(next)).toEqual([['d1', 'up-to-date'], ['d2', 'up-to-date'], ['d3', 'live']]);
  expect(next.exitCode).toBe(0);
  await expectWhole('d3', CUTS[2] as string);
}, T);

test('a connection that stays open while nothing flows: given up on by keepalive, never waited on forever', async () => {
  const d3 = lab.difusor('d3');
  const proxy: Proxy = await startProxy({ host: d3.host, port: d3.port });
  try {
    const stalled = await lab.writeRegistry(
      { publication: { switch_deadline_s: 1 }, difusores: { d3: { host: proxy.host, port: proxy.port } } },
      path.join(lab.dir, 'stalled.yaml'),
    );
    const cut = midTransfer(async () => proxy.bytes.up, async () => proxy.stall());
    const running = publish(stalled, cutDir(3), { observer: cut.observer, link: QUICK });
    expect(await settlesWithin(running, 60_000)).toBe(true);
    const result = await running;
    await cut.done;
    expect(results(result)).toEqual([['d1', 'live'], ['d2', 'live'], ['d3', 'failed']]);
    expect(result.exitCode).toBe(3);
    expectNoRetry(proxy.connections);
    await expectWhole('d3', CUTS[2] as string);

    proxy.resume();
    const next = await publish(stalled, cutDir(3));
    expect(results(next)).toEqual([['d1', 'up-to-date'], ['d2', 'up-to-date'], ['d3', 'live']]);
    await expectWhole('d3', CUTS[3] as string);
  } finally {
    await proxy.close();
  }
}, T);
