/**
 * What the difusor's lease costs a publish (issue 17), on the lab's real sshd difusores:
 *   - per difusor, the two helper round trips a run adds (lease take, lease release) over the run's own kept-open
 *     SSH session, beside the `status` verb's round trip on the same session (the cheapest verb there is);
 *   - a publish of a new cut, end to end in this process, each difusor's lease included; and cron's no-op, which
 *     takes no lease (a read-only inspect where this host last saw the cut live), for scale.
 * The difusores work in parallel, so what the lease adds to a run is about one difusor's take + release (the
 * renewal, every lease_s / 3, runs beside the work). Read the ratios: on a shared 2-core machine seconds are noise.
 *
 *   node --import ./scripts/register-ts.mjs bench/lease-bench.ts      (LEASE_BENCH_ROUNDS=20, LEASE_BENCH_DIFUSORES=3)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startLab } from '../test/integration/lab/sshd.js';
import { writeCut } from './prep-cut.js';
import { loadRegistry } from '../src/core/registry/registry.js';
import { runPublish } from '../src/core/publish/publish-run.js';
import { openJournal, newRunId } from '../src/core/records/journal.js';
import { createConnector } from '../src/adapters/difusor.js';
import { fixedClock } from '../src/adapters/clock.js';
import { leaseArgs } from '../src/core/publish/lease.js';

const ROUNDS = Number(process.env.LEASE_BENCH_ROUNDS ?? 20);
const DIFUSORES = Number(process.env.LEASE_BENCH_DIFUSORES ?? 3);
const NOW = new Date('2022-06-06T10:00:00-05:00');
const SHAPE = { casillas: 2545, counted: 1200, imageBytes: 30_000, seed: 'lease-bench' };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

async function main(): Promise<void> {
  const lab = await startLab({ difusores: DIFUSORES });
  const cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-lease-bench-'));
  try {
    const registryFile = await lab.writeRegistry();
    const loaded = await loadRegistry(registryFile);
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
    const registry = loaded.registry;
    const publish = (cut: string): ReturnType<typeof runPublish> =>
      runPublish(
        { registry, cutArg: path.join(cuts, cut), latest: false, only: [], dryRun: false, simulacro: false, host: 'bench' },
        { clock: fixedClock(NOW), connect: (reg, targets) => createConnector(reg, targets), openJournal, newRunId: () => newRunId() },
      );

    // Round trips on one kept-open session, alternating so the machine's load falls on both alike.
    const connector = await createConnector(registry, registry.difusores);
    const session = await connector.open(registry.difusores[0] as (typeof registry.difusores)[number], { expectTransfer: false });
    const statusMs: number[] = [];
    const leaseMs: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      let t = performance.now();
      await session.helper('status', []);
      statusMs.push(performance.now() - t);
      t = performance.now();
      const claim = { host: 'bench', run: `r${i}`, seconds: 120 };
      await session.helper('lease', leaseArgs('take', claim));
      await session.helper('lease', leaseArgs('release', claim));
      leaseMs.push(performance.now() - t);
    }
    session.close();
    await connector.dispose();

    // Whole publishes: a new cut each time (about 1,200 of 2,545 casillas changed), then cron's no-op on it.
    const publishMs: number[] = [];
    const noopMs: number[] = [];
    let previous: string | undefined;
    const runs = Math.max(3, Math.min(5, Math.floor(ROUNDS / 4)));
    for (let i = 0; i < runs; i++) {
      const cut = `20220605_${String(21 + Math.floor(i / 4)).padStart(2, '0')}${String((i % 4) * 15).padStart(2, '0')}_PREP`;
      await writeCut(path.join(cuts, cut), cut, { ...SHAPE, counted: SHAPE.counted + 40 * i }, previous);
      previous = path.join(cuts, cut);
      let t = performance.now();
      const r = await publish(cut);
      if (r.exitCode !== 0) throw new Error(`publish ${cut} exited ${r.exitCode}: ${JSON.stringify(r.outcomes.map((o) => o.error))}`);
      publishMs.push(performance.now() - t);
      t = performance.now();
      await publish(cut);
      noopMs.push(performance.now() - t);
    }

    const lease = median(leaseMs);
    const rows = [
      ['status round trip (ms, median)', median(statusMs).toFixed(1)],
      ['lease take + release (ms, median)', lease.toFixed(1)],
      ['take + release / status', (lease / median(statusMs)).toFixed(2)],
      [`publish of a new cut to ${DIFUSORES} (ms, median of ${runs})`, median(publishMs).toFixed(0)],
      ['lease share of a publish', `${((100 * lease) / median(publishMs)).toFixed(1)} %`],
      [`cron no-op publish, no lease (ms, median of ${runs})`, median(noopMs).toFixed(0)],
    ];
    for (const [k, v] of rows) console.log(`${(k as string).padEnd(48)} ${v}`);
  } finally {
    await lab.stop();
    await rm(cuts, { recursive: true, force: true });
  }
}

await main();
