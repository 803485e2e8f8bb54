import { cp, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Lab } from './lab/sshd.js';
import { checkLive, liveCut, IN_WINDOW } from './support/publish.js';
import { show, spawnCli } from './support/cli.js';
import { startHosts, sleep, type Hosts } from './support/two-hosts.js';
import type { PublishRunResult } from '../../src/core/publish/publish-run.js';
import { HashCache, buildManifest } from '../../src/core/shared/manifest.js';
import { scanCut } from '../../src/core/publish/cut.js';
/**
 * The alternate site on the lab: two state directories and two registries on this machine stand for the two
 * publication hosts (a and b), with the same difusores (real sshd, rsync and helper). One run at a time on each
 * difusor by its lease, never a cut backwards, and a host killed holding leases taken over after their expiry.
 */

const T = 300_000;
// Bounded for CI; each round is both hosts publishing one new cut at the same moment, give or take.
const ROUNDS = Number(process.env.ALTERNATE_ROUNDS ?? 20);
const LEASE_S = 8;
// Five minutes apart from 20:15, so that up to 40 rounds stay within the night's 23:59.
const cutAt = (minutes: number): string => `20220605_${String(20 + Math.floor(minutes / 60)).padStart(2, '0')}${String(minutes % 60).padStart(2, '0')}_PREP`;
const CUTS = Array.from({ length: ROUNDS + 3 }, (_, i) => cutAt(15 + 5 * i));

let hosts: Hosts;
let lab: Lab;
let cuts: string;

beforeAll(async () => {
  hosts = await startHosts({
    name: 'alternate',
    hosts: ['a', 'b'],
    difusores: 3,
    cuts: CUTS,
    shape: { casillas: 300, counted: 150, imageBytes: 20_000, step: 10 },
    publication: { lease_s: LEASE_S },
  });
  ({ lab, cuts } = hosts);
}, T);

afterAll(() => hosts?.stop(), T);

const publishAs = (host: string, cut: string) => hosts.publishAs(host, { cut });

/** A small seeded generator: a failure names its seed, and ALTERNATE_SEED replays it. */
function random(seed: number): () => number {
  let x = seed || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

async function holderOf(root: string): Promise<{ host: string; run: string; since: number; expiry: number } | undefined> {
  const text = await readFile(path.join(root, '.lease', 'holder'), 'utf8').catch(() => undefined);
  if (!text) return undefined;
  const [host, run, since, expiry] = text.trim().split(' ');
  return { host: host as string, run: run as string, since: Number(since), expiry: Number(expiry) };
}

/** Host a's CLI publishing `cut`, killed with SIGKILL (its process group) once it holds a difusor's lease. */
async function killHoldingLeases(cut: string): Promise<{ killedRun: string; leases: Map<string, { run: string; expiry: number }> }> {
  const run = spawnCli(['publish', path.join(cuts, cut), '--registry', hosts.registryOf.a as string], {
    DIFUSION_HOST: 'a',
    DIFUSION_NOW: IN_WINDOW.toISOString(),
  });
  // Killed as soon as it holds a difusor's lease (taken right after connecting, before anything is staged).
  let held: string[] = [];
  try {
    while (held.length === 0) {
      if (run.child.exitCode !== null) throw new Error(`host a ended before it was killed\n${show(await run.exited)}`);
      const holders = await Promise.all(lab.difusores.map((d) => holderOf(d.path)));
      held = lab.difusores.filter((_, i) => holders[i]?.host === 'a').map((d) => d.id);
      if (held.length === 0) await sleep(10);
    }
  } finally {
    run.signal('SIGKILL');
  }
  await run.exited;
  // After the kill some more may have been taken between the look and the signal (a helper already started on a
  // difusor finishes its `lease take` after the client is gone): read them again until two looks agree.
  const look = async (): Promise<Map<string, { run: string; expiry: number }>> => {
    const found = new Map<string, { run: string; expiry: number }>();
    for (const d of lab.difusores) {
      const h = await holderOf(d.path);
      if (h?.host === 'a') found.set(d.id, h);
    }
    return found;
  };
  let leases = await look();
  for (;;) {
    await sleep(300);
    const again = await look();
    if (JSON.stringify([...again]) === JSON.stringify([...leases])) break;
    leases = again;
  }
  expect(leases.size).toBeGreaterThan(0);
  return { killedRun: [...leases.values()][0]?.run as string, leases };
}

/** Every difusor serves one whole cut (or, on a lab run alone, nothing yet). */
async function expectWhole(): Promise<void> {
  for (const d of lab.difusores) {
    const live = await liveCut(d.path).catch(() => undefined);
    if (live === undefined) continue;
    expect({ id: d.id, live, check: await checkLive(d.path) }).toEqual({ id: d.id, live, check: { ok: true, output: '' } });
  }
}

/** What the next cut changes against the one before, by content: the bytes to send and the files that stay. */
async function changedBytes(before: string, after: string): Promise<{ bytes: number; unchanged: number }> {
  const manifestOf = async (dir: string) => buildManifest(dir, await scanCut(dir), new HashCache());
  const [a, b] = [await manifestOf(before), await manifestOf(after)];
  const old = new Map(a.entries.map((e) => [e.path, e.sha256]));
  const sent = b.entries.filter((e) => old.get(e.path) !== e.sha256);
  return { bytes: sent.reduce((n, e) => n + e.size, 0), unchanged: b.entries.length - sent.length };
}


describe('two publication hosts on the same difusores', () => {
  test(`${ROUNDS} rounds of both hosts publishing the same cut at once: every difusor whole, one host did each, the other names it`, async () => {
    const seed = Number(process.env.ALTERNATE_SEED ?? Date.now() % 100_000);
    const next = random(seed);
    let namedHolder = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const cut = CUTS[round] as string;
      const offsets = { a: Math.floor(next() * 300), b: Math.floor(next() * 300) };
      const [ra, rb] = await Promise.all(
        (['a', 'b'] as const).map(async (host) => {
          await sleep(offsets[host]);
          return publishAs(host, cut);
        }),
      );
      const results = { a: ra as PublishRunResult, b: rb as PublishRunResult };
      const context = { seed, round, offsets };
      expect({ ...context, codes: [results.a.exitCode, results.b.exitCode].map((c) => c === 0 || c === 3) }).toEqual({ ...context, codes: [true, true] });
      for (const d of lab.difusores) {
        expect({ ...context, d: d.id, live: await liveCut(d.path) }).toEqual({ ...context, d: d.id, live: `releases/${cut}` });
        expect(await checkLive(d.path)).toEqual({ ok: true, output: '' });
        const by = (host: 'a' | 'b') => results[host].outcomes.find((o) => o.id === d.id);
        const switched = (['a', 'b'] as const).filter((h) => by(h)?.result === 'live');
        // Exactly one host switched it; the other found it live already, or found the first one's lease and named it.
        expect({ ...context, d: d.id, switched: switched.length }).toEqual({ ...context, d: d.id, switched: 1 });
        const other = switched[0] === 'a' ? 'b' : 'a';
        const theirs = by(other);
        if (theirs?.result === 'failed') {
          namedHolder++;
          expect({ ...context, leftAlone: theirs.leftAlone, error: theirs.error }).toEqual({
            ...context,
            leftAlone: 'held',
            error: expect.stringMatching(new RegExp(`^held by ${switched[0]} \\(run \\S+\\) since \\d{4}-\\d\\d-\\d\\dT`)),
          });
        } else {
          expect({ ...context, result: theirs?.result }).toEqual({ ...context, result: 'up-to-date' });
        }
        // Nothing left behind: the lease is free once both runs ended.
        expect(await holderOf(d.path)).toBeUndefined();
      }
    }
    // Runs started within 300 ms of each other overlap for most of a publish: the leases did meet.
    expect({ seed, namedHolder: namedHolder > 0 }).toEqual({ seed, namedHolder: true });
  }, T * 2);

  test('a host with an older cut moves nothing backwards: each difusor is named with the newer cut it serves, exit 3', async () => {
    const newest = CUTS[ROUNDS - 1] as string;
    const older = CUTS[0] as string;
    const result = await publishAs('b', older);
    expect(result.exitCode).toBe(3);
    for (const d of lab.difusores) {
      expect(await liveCut(d.path)).toBe(`releases/${newest}`);
      const o = result.outcomes.find((x) => x.id === d.id);
      expect({ result: o?.result, leftAlone: o?.leftAlone, error: o?.error }).toEqual({
        result: 'failed',
        leftAlone: 'newer-live',
        error: expect.stringMatching(new RegExp(`^a newer cut is live: ${newest} `)),
      });
    }
  }, T);

  test('host a killed -9 holding leases and run again at once: it takes over its dead run\'s leases without waiting', async () => {
    const cut = CUTS[ROUNDS] as string;
    const { killedRun, leases } = await killHoldingLeases(cut);
    const rerun = await publishAs('a', cut);
    expect({ code: rerun.exitCode, errors: rerun.outcomes.map((o) => o.error) }).toEqual({ code: 0, errors: lab.difusores.map(() => undefined) });
    const takeovers = (await hosts.journalOf('a')).filter((e) => e.phase === 'lease-takeover' && e.run === rerun.run);
    expect(takeovers.map((e) => e.difusor).sort()).toEqual([...leases.keys()].sort());
    for (const e of takeovers) expect(e.detail).toMatchObject({ host: 'a', tookOverFrom: { host: 'a', run: killedRun } });
    await expectWhole();
  }, T);

  test('host a killed -9 holding leases: b leaves those difusores alone until the leases expire, then takes them over', async () => {
    const cut = CUTS[ROUNDS + 1] as string;
    const { leases } = await killHoldingLeases(cut);

    // Before the expiry: b leaves each held difusor alone and says who holds it.
    const early = await publishAs('b', cut);
    const finishedAt = Date.now() / 1000;
    // A slow machine may run b past a lease's expiry: b then takes that one over already, which is right too.
    const ranPast = (id: string): boolean => finishedAt >= (leases.get(id)?.expiry ?? 0) - 1;
    for (const [id] of leases) {
      if (ranPast(id)) continue;
      const o = early.outcomes.find((x) => x.id === id);
      expect({ id, result: o?.result, leftAlone: o?.leftAlone, error: o?.error }).toEqual({
        id,
        result: 'failed',
        leftAlone: 'held',
        error: expect.stringMatching(/^held by a \(run \S+\) since /),
      });
    }
    if ([...leases.keys()].some((id) => !ranPast(id))) expect(early.exitCode).toBe(3);
    await expectWhole();

    // After the expiry (the difusor's clock is this machine's here): b takes each over, and its journal says so.
    const last = Math.max(...[...leases.values()].map((l) => l.expiry));
    while (Date.now() / 1000 <= last) await sleep(200);
    const late = await publishAs('b', cut);
    expect({ code: late.exitCode, outcomes: late.outcomes.map((o) => [o.id, o.result, o.error]) }).toEqual({
      code: 0,
      outcomes: lab.difusores.map((d) => [d.id, expect.stringMatching(/^(live|up-to-date)$/), undefined]),
    });
    for (const d of lab.difusores) {
      expect(await liveCut(d.path)).toBe(`releases/${cut}`);
      expect(await checkLive(d.path)).toEqual({ ok: true, output: '' });
      expect(await holderOf(d.path)).toBeUndefined();
    }
    // Each dead lease taken over exactly once by b: in the late run, or in the early one where it ran past the expiry.
    const takeovers = (await hosts.journalOf('b')).filter((e) => e.phase === 'lease-takeover' && (e.run === late.run || e.run === early.run));
    expect(takeovers.map((e) => e.difusor).sort()).toEqual([...leases.keys()].sort());
    for (const e of takeovers.filter((x) => x.run === early.run)) expect({ difusor: e.difusor, ranPast: ranPast(e.difusor as string) }).toEqual({ difusor: e.difusor, ranPast: true });
    for (const e of takeovers) expect(e.detail).toMatchObject({ host: 'b', tookOverFrom: { host: 'a' } });
  }, T);

  test('a standby with an empty state directory: its first publish --latest sends nothing where the newest cut is live; a first run of a newer cut shares every unchanged file', async () => {
    // The standby has nothing but the registry, the key and its own copy of the cuts, up to the one live everywhere.
    const live = CUTS[ROUNDS + 1] as string;
    const next = CUTS[ROUNDS + 2] as string;
    const standbyCuts = path.join(lab.dir, 'standby-cuts');
    for (const c of CUTS.slice(0, ROUNDS + 2)) await cp(path.join(cuts, c), path.join(standbyCuts, c), { recursive: true, preserveTimestamps: true });
    const registry = await lab.writeRegistry({ publication: { state_dir: path.join(lab.dir, 'state-standby'), lease_s: LEASE_S } }, path.join(lab.dir, 'difusores-standby.yaml'));
    for (const d of lab.difusores) expect(await liveCut(d.path)).toBe(`releases/${live}`);

    const first = await hosts.publishAs('standby', { latestIn: standbyCuts }, { registry });
    expect({ code: first.exitCode, cut: first.cut }).toEqual({ code: 0, cut: live });
    for (const o of first.outcomes) {
      expect({ id: o.id, result: o.result, filesSent: o.filesSent, bytesSent: o.bytesSent }).toEqual({ id: o.id, result: 'up-to-date', filesSent: 0, bytesSent: 0 });
    }

    // Another standby, empty too, whose first run is a new cut: the base release's manifest is one the other host
    // published; the standby hashes its own copy of that cut, and links every file the two cuts share, exactly as
    // the host that published it would (without it, every file would be sent again).
    await cp(path.join(cuts, next), path.join(standbyCuts, next), { recursive: true, preserveTimestamps: true });
    const fresh = await lab.writeRegistry({ publication: { state_dir: path.join(lab.dir, 'state-standby-2'), lease_s: LEASE_S } }, path.join(lab.dir, 'difusores-standby-2.yaml'));
    const second = await hosts.publishAs('standby', { latestIn: standbyCuts }, { registry: fresh });
    const changed = await changedBytes(path.join(cuts, live), path.join(cuts, next));
    expect(second.exitCode).toBe(0);
    for (const o of second.outcomes) {
      expect({ id: o.id, result: o.result, plan: o.plan, bytesToSend: o.bytesToSend }).toEqual({ id: o.id, result: 'live', plan: 'new-release', bytesToSend: changed.bytes });
      expect(o.filesLinked).toBe(changed.unchanged);
    }
    for (const d of lab.difusores) {
      expect(await liveCut(d.path)).toBe(`releases/${next}`);
      expect(await checkLive(d.path)).toEqual({ ok: true, output: '' });
    }
  }, T);
});
