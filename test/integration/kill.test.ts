import { runKillDrill, type KillRound } from '../../bench/kill-drill.js';

/**
 * The kill drill, bounded for CI: one round of each of publish, cutoff, reinstate and rollback, each run through the
 * real CLI and its process group killed with SIGKILL at a random moment. After every kill each difusor serves a
 * whole cut or the whole notice, the registry validates, the same command run again finishes, and the journal
 * verifies. `npm run bench:kill` runs the fifty.
 */

const KILLS = 4;
// Each round starts the CLI twice (the run killed and the rerun): on a loaded machine ts-node alone takes seconds.
const T = 600_000;

test(`${KILLS} kills at random moments across publish, cutoff, reinstate and rollback leave every difusor whole`, async () => {
  const rounds: KillRound[] = [];
  // A new moment every run; a failure names its seed, and SEED=<it> npm run bench:kill replays it.
  const seed = Number(process.env.SEED ?? Date.now() % 100_000);
  const summary = await runKillDrill({ kills: KILLS, seed, onRound: (r) => rounds.push(r) });
  expect(rounds.map((r) => r.command)).toEqual(['publish', 'cutoff', 'reinstate', 'rollback']);
  const problems = rounds.filter((r) => r.problems.length > 0).map((r) => ({ n: r.n, command: r.command, killAfterMs: r.killAfterMs, problems: r.problems }));
  expect({ seed, problems }).toEqual({ seed, problems: [] });
  expect(summary.problems).toBe(0);
}, T);
