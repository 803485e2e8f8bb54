/**
 * What preflight's takeover view (issue 17 item 5) adds to a preflight, on the lab's real sshd difusores: the same
 * preflight (no timed transfer, no HTTP server) without it, with the lease only (`lease show`), and with the lease
 * and a cut's plan (`inspect`, planned against the base's manifest). The cut's manifest is built once, before the
 * rounds: preflight builds it for its delta anyway. Read the ratios: on a shared 2-core machine seconds are noise.
 *
 *   node --import ./scripts/register-ts.mjs bench/takeover-bench.ts      (TAKEOVER_BENCH_ROUNDS=15)
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
import { cutDelta, preflight, type PreflightOptions } from '../src/core/publish/preflight.js';
import { StateStore } from '../src/core/records/state.js';

const ROUNDS = Number(process.env.TAKEOVER_BENCH_ROUNDS ?? 15);
const NOW = new Date('2022-06-06T10:00:00-05:00');
const SHAPE = { casillas: 2545, counted: 1200, imageBytes: 30_000, seed: 'takeover-bench' };
const CUTS = ['20220605_2015_PREP', '20220605_2030_PREP'];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

async function main(): Promise<void> {
  const lab = await startLab({ difusores: 3 });
  const cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-takeover-bench-'));
  try {
    const registryFile = await lab.writeRegistry();
    const loaded = await loadRegistry(registryFile);
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
    const registry = loaded.registry;
    await writeCut(path.join(cuts, CUTS[0] as string), CUTS[0] as string, { ...SHAPE, counted: 1100 });
    await writeCut(path.join(cuts, CUTS[1] as string), CUTS[1] as string, SHAPE, path.join(cuts, CUTS[0] as string));
    // The difusores serve the older cut: the plan is a new release, the case a takeover cares about.
    const published = await runPublish(
      { registry, cutArg: path.join(cuts, CUTS[0] as string), latest: false, only: [], dryRun: false, simulacro: false, host: 'a' },
      { clock: fixedClock(NOW), connect: (reg, targets) => createConnector(reg, targets), openJournal, newRunId: () => newRunId() },
    );
    if (published.exitCode !== 0) throw new Error(`publish exit ${published.exitCode}`);
    const stateDir = registry.publication.state_dir;
    const { manifest } = await cutDelta(path.join(cuts, CUTS[1] as string), stateDir);
    const state = new StateStore(stateDir);
    const takeover = { host: 'b', leaseSeconds: 120, timezone: registry.publication.timezone, manifestHashes: (c: string, d: string | undefined) => state.manifestHashes(c, d) };
    const variants: Record<string, PreflightOptions> = {
      without: { neededBytes: 0, httpTimeoutMs: 500 },
      lease: { neededBytes: 0, httpTimeoutMs: 500, takeover },
      'lease+plan': { neededBytes: 0, httpTimeoutMs: 500, takeover: { ...takeover, cut: { cut: CUTS[1] as string, manifest, signed: false, byName: false } } },
    };
    const httpGet = async () => ({ ok: true, status: 200 });
    const times: Record<string, number[]> = { without: [], lease: [], 'lease+plan': [] };
    let files = 0;
    for (let round = 0; round < ROUNDS; round++) {
      // Interleaved, so a load that comes and goes weighs on each the same.
      for (const [name, opts] of Object.entries(variants)) {
        const connector = await createConnector(registry, registry.difusores, { rsyncAlongside: false });
        const t0 = performance.now();
        const report = await preflight(registry.difusores, opts, { connector, httpGet });
        (times[name] as number[]).push(performance.now() - t0);
        await connector.dispose();
        if (name === 'lease+plan') files = report.difusores[0]?.takeover?.send?.files ?? -1;
      }
    }
    const base = median(times.without as number[]);
    for (const [name, xs] of Object.entries(times)) {
      console.log(`${name.padEnd(11)} median ${median(xs).toFixed(0)} ms  (${(median(xs) / base).toFixed(2)}x)`);
    }
    console.log(`cut of ${manifest.entries.length} files, ${(manifest.totalBytes / 1e6).toFixed(1)} MB; the plan sends ${files} files to each difusor; ${ROUNDS} rounds, 3 difusores, load ${os.loadavg()[0]?.toFixed(1)}`);
  } finally {
    await lab.stop();
    await rm(cuts, { recursive: true, force: true });
  }
}

await main();
