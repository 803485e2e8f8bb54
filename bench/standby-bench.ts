/**
 * The alternate site's first run after a takeover against a run of the primary (issue 17), on the lab's real sshd
 * difusores, alternating so the machine's load falls on both alike. Each round:
 *   - the primary (its state dir complete) publishes a new cut;
 *   - a standby with an EMPTY state dir publishes the next cut: it hashes its own copy of that cut and of the base
 *     the difusores serve (learned, not trusted from them), then sends only what changed;
 *   - before that, cron on the primary's cut: the primary's no-op, and a fresh standby's first `--latest` (it asks
 *     each difusor before anything is sent: it has no record of any).
 * Bytes sent must be equal; the ratios say what the standby's empty state costs in time.
 *
 *   node --import ./scripts/register-ts.mjs bench/standby-bench.ts      (STANDBY_BENCH_ROUNDS=4, STANDBY_BENCH_DIFUSORES=3)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startLab } from '../test/integration/lab/sshd.js';
import { writeCut } from './prep-cut.js';
import { loadRegistry } from '../src/core/registry/registry.js';
import { runPublish, type PublishRunResult } from '../src/core/publish/publish-run.js';
import { openJournal, newRunId } from '../src/core/records/journal.js';
import { createConnector } from '../src/adapters/difusor.js';
import { fixedClock } from '../src/adapters/clock.js';

const ROUNDS = Number(process.env.STANDBY_BENCH_ROUNDS ?? 4);
const DIFUSORES = Number(process.env.STANDBY_BENCH_DIFUSORES ?? 3);
const NOW = new Date('2022-06-06T10:00:00-05:00');
const SHAPE = { casillas: 2545, counted: 1200, imageBytes: 30_000, seed: 'standby-bench' };

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const cutName = (i: number): string => `20220605_${String(20 + Math.floor(i / 4)).padStart(2, '0')}${String((i % 4) * 15).padStart(2, '0')}_PREP`;

async function main(): Promise<void> {
  const lab = await startLab({ difusores: DIFUSORES });
  const cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-standby-bench-'));
  let standbys = 0;
  try {
    const primary = await lab.writeRegistry({ publication: { state_dir: path.join(lab.dir, 'state-primary') } }, path.join(lab.dir, 'primary.yaml'));
    const publishAs = async (host: string, registryFile: string, cut: string, latest = false): Promise<{ ms: number; result: PublishRunResult }> => {
      const loaded = await loadRegistry(registryFile);
      if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
      const started = performance.now();
      const result = await runPublish(
        { registry: loaded.registry, cutArg: latest ? cuts : path.join(cuts, cut), latest, only: [], dryRun: false, simulacro: false, host },
        { clock: fixedClock(NOW), connect: (reg, targets) => createConnector(reg, targets), openJournal, newRunId: () => newRunId() },
      );
      if (result.exitCode !== 0) throw new Error(`${host} publish ${cut} exited ${result.exitCode}: ${JSON.stringify(result.outcomes.map((o) => o.error))}`);
      return { ms: performance.now() - started, result };
    };
    const emptyStandby = (): Promise<string> => {
      standbys += 1;
      return lab.writeRegistry({ publication: { state_dir: path.join(lab.dir, `state-standby-${standbys}`) } }, path.join(lab.dir, `standby-${standbys}.yaml`));
    };
    const sent = (r: PublishRunResult): number => r.outcomes.reduce((n, o) => n + o.bytesSent, 0);

    let previous: string | undefined;
    let i = 0;
    const nextCut = async (): Promise<string> => {
      const cut = cutName(i);
      await writeCut(path.join(cuts, cut), cut, { ...SHAPE, counted: SHAPE.counted + 40 * i }, previous);
      previous = path.join(cuts, cut);
      i += 1;
      return cut;
    };
    await publishAs('primario', primary, await nextCut());

    const rows = { primaryNew: [] as number[], standbyNew: [] as number[], primaryNoop: [] as number[], standbyNoop: [] as number[] };
    const bytes = { primary: [] as number[], standby: [] as number[] };
    for (let round = 0; round < ROUNDS; round++) {
      const a = await publishAs('primario', primary, await nextCut());
      rows.primaryNew.push(a.ms);
      bytes.primary.push(sent(a.result));
      // Cron on the cut just published: the primary's no-op, then a fresh standby's first --latest.
      rows.primaryNoop.push((await publishAs('primario', primary, cutName(i - 1), true)).ms);
      const noop = await publishAs('alterno', await emptyStandby(), cutName(i - 1), true);
      if (sent(noop.result) !== 0) throw new Error(`a standby's first --latest sent ${sent(noop.result)} bytes where the cut was live`);
      rows.standbyNoop.push(noop.ms);
      const b = await publishAs('alterno', await emptyStandby(), await nextCut());
      rows.standbyNew.push(b.ms);
      bytes.standby.push(sent(b.result));
      // The primary back on the cut the standby published (it learns that cut's manifest for its next run).
      await publishAs('primario', primary, cutName(i - 1), true);
    }

    const table = [
      [`primary: a new cut to ${DIFUSORES} (ms, median of ${ROUNDS})`, median(rows.primaryNew).toFixed(0)],
      [`standby, empty state dir: the next cut (ms)`, median(rows.standbyNew).toFixed(0)],
      ['standby first run / primary run', (median(rows.standbyNew) / median(rows.primaryNew)).toFixed(2)],
      ['bytes sent, standby / primary (medians)', (median(bytes.standby) / median(bytes.primary)).toFixed(2)],
      ['primary cron no-op (ms)', median(rows.primaryNoop).toFixed(0)],
      ['standby first --latest no-op, empty state dir (ms)', median(rows.standbyNoop).toFixed(0)],
      ['standby no-op / primary no-op', (median(rows.standbyNoop) / median(rows.primaryNoop)).toFixed(2)],
    ];
    for (const [k, v] of table) console.log(`${(k as string).padEnd(52)} ${v}`);
  } finally {
    await lab.stop();
    await rm(cuts, { recursive: true, force: true });
  }
}

await main();
