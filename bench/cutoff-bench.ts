/**
 * `npm run bench:cutoff`: how long the public waits for the notice after the institute decides, and for
 * the results after a reinstatement, against the steps cron already runs (a publish of a new cut and the
 * no-op publish) on the same lab of real sshd difusores in the same run. Read the ratios; the machine is
 * shared. BENCH_DIFUSORES (default 4), BENCH_REPEATS (default 3).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { startLab } from '../test/integration/lab/sshd.js';
import { publish } from '../test/integration/support/publish.js';
import { writeCut } from './prep-cut.js';
import { loadRegistry } from '../src/core/registry/registry.js';
import { cutoff, reinstate } from '../src/core/enforcement/suspension.js';
import { registryFileStore } from '../src/core/registry/registry-edit.js';
import { operationPorts } from '../src/adapters/operation-ports.js';
import { fixedClock } from '../src/adapters/clock.js';

const DIFUSORES = Number(process.env.BENCH_DIFUSORES ?? 4);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const CUTS = ['20220605_2015_PREP_DGO', '20220605_2030_PREP_DGO'];
const SHAPE = { casillas: 300, counted: 100, imageBytes: 60_000, seed: 'cutoff-bench' };

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  const result = (await fn()) as { exitCode?: number };
  if (result.exitCode !== 0) throw new Error(`bench step failed: ${JSON.stringify(result).slice(0, 300)}`);
  return (performance.now() - start) / 1000;
}

const lab = await startLab({ difusores: DIFUSORES });
const cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-cutoff-bench-'));
try {
  const registry = await lab.writeRegistry();
  await writeCut(path.join(cuts, CUTS[0]!), CUTS[0]!, SHAPE);
  await writeCut(path.join(cuts, CUTS[1]!), CUTS[1]!, { ...SHAPE, counted: 130 }, path.join(cuts, CUTS[0]!));
  await publish(registry, path.join(cuts, CUTS[0]!));
  const publishNew = await timed(() => publish(registry, path.join(cuts, CUTS[1]!)));
  const noop: number[] = [];
  const cut: number[] = [];
  const back: number[] = [];
  const template = await readFile(new URL('../templates/aviso.html', import.meta.url), 'utf8');
  const ports = { ...operationPorts(fixedClock(new Date('2022-06-05T21:10:00-05:00'))), registry: registryFileStore(registry), confirm: async () => true };
  const loaded = async () => {
    const r = await loadRegistry(registry);
    if (!r.ok) throw new Error('registry invalid');
    return r.registry;
  };
  for (let i = 0; i < REPEATS; i++) {
    noop.push(await timed(() => publish(registry, path.join(cuts, CUTS[1]!))));
    cut.push(await timed(async () => cutoff({ registry: await loaded(), id: 'd1', reason: 'bench' }, { ...ports, noticeTemplate: template })));
    back.push(await timed(async () => reinstate({ registry: await loaded(), id: 'd1' }, ports)));
  }
  const rows: Array<[string, number]> = [
    [`publish of a new cut to ${DIFUSORES} difusores (once)`, publishNew],
    ['no-op publish (cron, nothing new)', median(noop)],
    ['cutoff of one difusor (registry + notice live)', median(cut)],
    ['reinstate of one difusor (cut back, registry)', median(back)],
  ];
  for (const [what, s] of rows) console.log(`${what.padEnd(52)} ${s.toFixed(2)} s`);
  console.log(`cutoff / no-op publish    = ${(median(cut) / median(noop)).toFixed(2)}`);
  console.log(`cutoff / publish new cut  = ${(median(cut) / publishNew).toFixed(2)}`);
  console.log(`reinstate / publish new   = ${(median(back) / publishNew).toFixed(2)}`);
} finally {
  await lab.stop();
  await rm(cuts, { recursive: true, force: true });
}
