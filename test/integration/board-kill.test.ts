import { watch, type FSWatcher } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startLab, type Lab } from './lab/sshd.js';
import { startVhost } from './lab/vhost.js';
import type { Apache } from './lab/apache.js';
import { writeCut } from '../../bench/prep-cut.js';
import { publish } from './support/publish.js';
import { runCli, show, spawnCli } from './support/cli.js';
import { checkBoardDir } from './support/board-dir.js';
import { ProbeHistory } from '../../src/core/records/probe-history.js';
import { foldRound, roundOf, type BoardSummary } from '../../src/core/probe/board.js';
import type { ProbeRow } from '../../src/core/probe/probe.js';

/**
 * `probe --roster DIR` killed with SIGKILL (its whole process group, as the kill drill does) while it writes
 * the board: what the web server publishes from DIR stays the previous board, whole, page and data of one
 * round. The kill is aimed at the write itself: DIR is watched, and the first temporary file the writer makes
 * there starts a random delay of 0 to 25 ms, after which the group is killed. A kill that lands after the write
 * is done still checks the board it left.
 */

const T = 300_000;
// Each kill starts the CLI under ts-node (seconds on a loaded machine): 5 keeps the test near a minute; BOARD_KILLS=50 for more.
const KILLS = Number(process.env.BOARD_KILLS ?? 5);
const C1 = '20220605_2015_PREP_DGO';
const SEEDED_ROUNDS = 600;
/** Kills are added, up to twice KILLS, until one has landed mid-write: on a loaded machine some land after it. */
const MAX_KILLS = 2 * KILLS;

let lab: Lab;
let cuts: string;
let registry: string;
let out: string;
const apaches: Array<Apache & { vhost: string }> = [];

beforeAll(async () => {
  lab = await startLab({ difusores: 2 });
  cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-board-kill-'));
  out = path.join(lab.dir, 'sitio', 'difusores');
  await writeCut(path.join(cuts, C1), C1, { casillas: 30, counted: 10, imageBytes: 4_000, seed: 'board-kill' });
  expect((await publish(await lab.writeRegistry(), path.join(cuts, C1))).exitCode).toBe(0);
  for (const d of lab.difusores) apaches.push(await startVhost(d));
  registry = await lab.writeRegistry({ difusores: Object.fromEntries(lab.difusores.map((d, i) => [d.id, { public_url: apaches[i]!.url }])) });
  await seedHistory(lab.stateDir, SEEDED_ROUNDS);
}, T);

afterAll(async () => {
  for (const a of apaches) await a.stop().catch(() => undefined);
  await lab?.stop();
  if (cuts) await rm(cuts, { recursive: true, force: true });
}, T);

/** Rounds kept before the test's, an evening's worth: the board's files are then large enough to be killed in. */
async function seedHistory(stateDir: string, rounds: number): Promise<void> {
  const history = new ProbeHistory<BoardSummary>(stateDir, foldRound);
  const t0 = Date.now() - rounds * 60_000;
  for (let i = 0; i < rounds; i++) {
    const difusores: ProbeRow[] = lab.difusores.map((d, k) => ({
      id: d.id,
      name: `Difusor ${k + 1}`,
      registryStatus: 'active',
      ok: (i + k) % 7 !== 0,
      kinds: (i + k) % 7 === 0 ? ['lag'] : [],
      cut: C1,
      lagSeconds: (i + k) % 7 === 0 ? 90 : 0,
      filesChecked: 11,
      differing: [],
      bytes: 1,
      status: 200,
      ttfbMs: 3,
      totalMs: 20,
      warnings: [],
    }));
    await history.append(roundOf({ at: new Date(t0 + i * 60_000).toISOString(), newest: C1, maxLagSeconds: 60, difusores }, 1000));
  }
}

/** The moment the writer makes its first temporary file in DIR or DIR/data. */
function firstWrite(dirs: string[]): { started: Promise<void>; close(): void } {
  const watchers: FSWatcher[] = [];
  const started = new Promise<void>((resolve) => {
    for (const dir of dirs) watchers.push(watch(dir, (_event, name) => name?.startsWith('.') && resolve()));
  });
  return { started, close: () => watchers.forEach((w) => w.close()) };
}

test(`probe --roster killed -9 during the board write ${KILLS} times leaves the previous board whole every time`, async () => {
  const first = await runCli(['probe', '--registry', registry, '--json', '--roster', out]);
  expect({ code: first.code, out: first.code === 0 ? '' : show(first) }).toEqual({ code: 0, out: '' });
  expect((await checkBoardDir(out)).problems).toEqual([]);

  const seed = Number(process.env.SEED ?? Date.now() % 100_000);
  let s = seed || 1;
  const rand = (): number => ((s = (s * 48_271) % 2_147_483_647) / 2_147_483_647);
  const results: Array<{ n: number; delayMs: number; killed: boolean; midWrite: boolean; leftovers: number; problems: string[] }> = [];
  for (let n = 1; n <= MAX_KILLS && (n <= KILLS || !results.some((r) => r.midWrite)); n++) {
    const before = await checkBoardDir(out);
    const seen = firstWrite([out, path.join(out, 'data')]);
    const run = spawnCli(['probe', '--registry', registry, '--json', '--roster', out]);
    const delayMs = Math.round(rand() * 25);
    await Promise.race([seen.started.then(() => new Promise((r) => setTimeout(r, delayMs))), run.exited]);
    const killed = run.child.exitCode === null && run.child.signalCode === null;
    run.signal('SIGKILL');
    await run.exited;
    seen.close();
    const after = await checkBoardDir(out);
    const problems = [...after.problems];
    // The board a visitor gets is the one before the kill or the one this round finished, never older.
    if ((after.pageRounds ?? 0) < (before.pageRounds ?? 0)) problems.push(`the page went back from round ${before.pageRounds} to ${after.pageRounds}`);
    // Mid-write: the killed writer left temporaries, or never got to put its page in place.
    const midWrite = killed && (after.leftovers.length > 0 || after.pageRounds === before.pageRounds);
    results.push({ n, delayMs, killed, midWrite, leftovers: after.leftovers.length, problems });
  }
  const failed = results.filter((r) => r.problems.length > 0);
  expect({ seed, failed }).toEqual({ seed, failed: [] });
  // At least some kills must have landed mid-write, or the test proved nothing.
  expect(results.filter((r) => r.midWrite).length).toBeGreaterThan(0);

  // The next round clears what the killed writers left and keeps only the last round directories.
  const last = await runCli(['probe', '--registry', registry, '--json', '--roster', out]);
  expect({ code: last.code, out: last.code === 0 ? '' : show(last) }).toEqual({ code: 0, out: '' });
  const clean = await checkBoardDir(out);
  expect(clean).toMatchObject({ problems: [], leftovers: [] });
  // At most the last 3 kept; fewer when the kills left fewer whole rounds behind the one just written.
  const kept = (await readdir(path.join(out, 'data'))).filter((d) => /^\d+$/.test(d));
  expect(kept.length).toBeGreaterThanOrEqual(1);
  expect(kept.length).toBeLessThanOrEqual(3);
  console.log(JSON.stringify({ seed, kills: results }));
}, T);
