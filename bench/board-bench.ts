/**
 * `node --import ./scripts/register-ts.mjs bench/board-bench.ts`: what the public board adds to a probe round,
 * in CPU, as the night grows. Keeps ROUNDS rounds of DIFUSORES difusores (fake rows, some failing) through the
 * real history store in a temporary state dir, and measures at 1, 100 and every 100 rounds after:
 * - append: one round appended to the chained log and the CSV, and folded into the summary;
 * - draw: the board built from the summary, rendered (page, board.json, metrics) and written to a directory;
 * - cold draw: `roster --out` from scratch (the summary read back from disk, then the draw).
 *   BENCH_ROUNDS=500  BENCH_DIFUSORES=30
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildBoard, foldRound, roundOf, type BoardSummary } from '../src/core/probe/board.js';
import { writeBoardDir } from '../src/core/probe/board-files.js';
import { ProbeHistory } from '../src/core/records/probe-history.js';
import type { ProbeRow } from '../src/core/probe/probe.js';
import { BOARD_FILES, renderBoardHtml } from '../src/ui/board-html.js';
import { boardMetrics } from '../src/ui/board-metrics.js';
import { writeAtomically } from '../src/core/records/state-file.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 500);
const DIFUSORES = Number(process.env.BENCH_DIFUSORES ?? 30);
const T0 = Date.parse('2022-06-06T02:00:00Z');

const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

function rows(i: number): ProbeRow[] {
  return Array.from({ length: DIFUSORES }, (_, k) => {
    const failing = (i + k) % 11 === 0;
    return {
      id: `difusor-${k}`,
      name: `Difusor ${k}`,
      registryStatus: 'active',
      ok: !failing,
      kinds: failing ? ['lag'] : [],
      cut: '20220605_2030_PREP_DGO',
      lagSeconds: failing ? 60 + ((i * k) % 300) : (i + k) % 3,
      filesChecked: 11,
      differing: [],
      bytes: 1,
      status: 200,
      ttfbMs: 3,
      totalMs: 20,
      warnings: [],
    };
  });
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'difusion-board-bench-'));
  const out = path.join(dir, 'sitio');
  const listing = Array.from({ length: DIFUSORES }, (_, k) => ({ id: `difusor-${k}`, name: `Difusor ${k}`, public_url: `https://d${k}.example/`, status: 'active' as const }));
  const history = new ProbeHistory<BoardSummary>(path.join(dir, 'state'), foldRound);
  const draw = async (summary: BoardSummary | undefined, at: string): Promise<void> => {
    const board = buildBoard({ summary, difusores: listing, generatedAt: at, timezone: 'America/Mexico_City' });
    const files = { page: { name: BOARD_FILES.page, render: (dataDir: string) => renderBoardHtml(board, { logos: new Map(), dataDir }) }, data: { name: BOARD_FILES.data, text: JSON.stringify(board) }, log: BOARD_FILES.log, csv: BOARD_FILES.csv };
    await writeBoardDir(out, files, history);
    await writeAtomically(path.join(dir, 'difusion.prom'), boardMetrics(board));
  };
  console.log(`rounds  append_ms  draw_ms  cold_draw_ms  (CPU, ${DIFUSORES} difusores)`);
  for (let i = 0; i < ROUNDS; i++) {
    const at = new Date(T0 + i * 60_000).toISOString();
    const report = { at, newest: '20220605_2030_PREP_DGO', maxLagSeconds: 60, difusores: rows(i) };
    const a0 = cpuMs();
    const { summary } = await history.append(roundOf(report, 1000));
    const a1 = cpuMs();
    await draw(summary, at);
    const a2 = cpuMs();
    if (i === 0 || (i + 1) % 100 === 0) {
      const c0 = cpuMs();
      await draw(await new ProbeHistory<BoardSummary>(path.join(dir, 'state'), foldRound).summary(), at);
      const c1 = cpuMs();
      console.log(`${String(i + 1).padStart(6)}  ${(a1 - a0).toFixed(1).padStart(9)}  ${(a2 - a1).toFixed(1).padStart(7)}  ${(c1 - c0).toFixed(1).padStart(12)}`);
    }
  }
  await rm(dir, { recursive: true, force: true });
}

await main();
