/**
 * `npm run bench:kill`: the kill drill (bench/kill-drill.ts), fifty rounds by default, against a lab of real sshd
 * difusores; prints each round as it ends and a summary. KILLS (default 50), SEED (default 21), DIFUSORES (default 2).
 * Exit 1 when any round found a problem.
 */
import { runKillDrill } from './kill-drill.js';

const kills = Number(process.env.KILLS ?? 50);
const seed = Number(process.env.SEED ?? 21);
const difusores = Number(process.env.DIFUSORES ?? 2);

const summary = await runKillDrill({
  kills,
  seed,
  difusores,
  onRound(r) {
    const where = r.killed ? `killed ${String(r.killAfterMs).padStart(5)} ms after its first line, at: ${r.lastLine.slice(0, 90)}` : 'finished before the kill';
    const served = Object.entries(r.served).map(([id, s]) => `${id}=${s.replace(/^releases\//, '')}`).join(' ');
    console.log(`${String(r.n).padStart(3)} ${r.command.padEnd(9)} ${where}`);
    console.log(`      served: ${served}; journal right after: ${r.journalAfterKill ? 'ok' : 'torn (repaired by the rerun)'}; rerun exit ${r.rerunCode} in ${(r.rerunMs / 1000).toFixed(1)} s; staging left: ${r.stagingLeft}`);
    for (const p of r.problems) console.log(`      PROBLEM: ${p}`);
  },
});

console.log('');
console.log(`seed ${seed}, ${difusores} difusores, ${summary.rounds.length} rounds in ${summary.seconds} s`);
console.log(`killed mid-run: ${summary.kills}; finished before the kill: ${summary.finishedBeforeKill}; rounds with a problem: ${summary.problems}`);
for (const [command, c] of Object.entries(summary.byCommand)) {
  console.log(`  ${command.padEnd(9)} rounds ${c.rounds}, killed ${c.killed}, with a problem ${c.problems}, rerun exit codes ${JSON.stringify(c.rerunCodes)}`);
}
process.exitCode = summary.problems > 0 ? 1 : 0;
