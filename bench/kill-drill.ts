/**
 * The kill drill: `publish`, `cutoff`, `reinstate` and `rollback`, cycled, each run through the real CLI against a
 * lab of real sshd difusores and killed with SIGKILL (its whole process group: node, ssh, rsync, as a failing host
 * would) at a random moment. After each kill: every difusor serves one whole cut (`current` -> releases/X passing
 * `sha256sum -c MANIFEST.sha256`) or the whole notice; the registry validates; the same command run again finishes
 * with its documented code; and the journal's hash chain verifies. Shared by `npm run bench:kill` (fifty kills,
 * a summary) and test/integration/kill.test.ts (a few, in CI).
 */
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readlink, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { startLab, type Lab, type LabDifusor } from '../test/integration/lab/sshd.js';
import { descendants, isAlive, sleep } from '../test/integration/lab/procs.js';
import { exec, publish } from '../test/integration/support/publish.js';
import { spawnCli, type CliExit } from '../test/integration/support/cli.js';
import { writeCut } from './prep-cut.js';
import { loadRegistry } from '../src/core/registry/registry.js';
import { verifyJournal } from '../src/core/records/journal.js';

export type DrillCommand = 'publish' | 'cutoff' | 'reinstate' | 'rollback';
const CYCLE: DrillCommand[] = ['publish', 'cutoff', 'reinstate', 'rollback'];

const NOW = '2022-06-05T21:00:00-05:00';
const SHAPE = { casillas: 300, imageBytes: 40_000, seed: 'kill-drill' };
/** The difusor cutoff and reinstate act on; the other keeps publishing. */
const SUSPENDED = 'd2';

export interface KillRound {
  n: number;
  command: DrillCommand;
  args: string[];
  /** Milliseconds after the CLI's first line at which the group was killed. */
  killAfterMs: number;
  /** False when the command had already finished when the kill came (it still counts as a check). */
  killed: boolean;
  /** The CLI's last line before the kill: where it was. */
  lastLine: string;
  /** What each difusor served after the kill: releases/X or notices/S. */
  served: Record<string, string>;
  /** Whether the journal verified right after the kill (a torn last line is repaired by the next run). */
  journalAfterKill: boolean;
  rerunCode: number | null;
  rerunMs: number;
  /** Files left in a difusor's .staging after the rerun (cleared by the next prepare there). */
  stagingLeft: number;
  problems: string[];
}

export interface DrillSummary {
  rounds: KillRound[];
  kills: number;
  finishedBeforeKill: number;
  problems: number;
  byCommand: Record<DrillCommand, { rounds: number; killed: number; problems: number; rerunCodes: Record<string, number> }>;
  seconds: number;
}

/** A small deterministic generator, so a failing round can be run again with the same seed. */
function random(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

/** A difusor serves one whole cut or the whole notice; otherwise what is wrong. */
async function whole(d: LabDifusor): Promise<{ served: string; problem?: string }> {
  const current = path.join(d.path, 'current');
  const target = await readlink(current).catch(() => '');
  if (!/^(releases\/\d{8}_\d{4}\w*|notices\/\d{8}_\d{6})$/.test(target)) return { served: target, problem: `${d.id}: current -> ${target || '(none)'}` };
  if (target.startsWith('notices/')) {
    for (const f of ['index.html', 'aviso.json', 'MANIFEST.sha256']) {
      if (!existsSync(path.join(current, f))) return { served: target, problem: `${d.id}: the notice ${target} lacks ${f}` };
    }
  }
  try {
    await exec('sha256sum', ['-c', '--strict', '--quiet', 'MANIFEST.sha256'], { cwd: current });
    return { served: target };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    return { served: target, problem: `${d.id}: sha256sum -c in ${target}: ${`${e.stdout ?? ''}${e.stderr ?? ''}`.trim().split('\n').slice(0, 3).join(' | ')}` };
  }
}

/** Sessions the killed client left on a difusor (a helper step mid-flight) end on EOF; waited for, briefly. */
async function sessionsSettle(lab: Lab): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (lab.difusores.flatMap((d) => descendants(d.sshdPid)).filter(isAlive).length === 0) return;
    await sleep(100);
  }
}

function stagingCount(d: LabDifusor): number {
  const dir = path.join(d.path, '.staging');
  return existsSync(dir) ? readdirSync(dir).length : 0;
}

export interface DrillOptions {
  kills: number;
  seed?: number;
  difusores?: number;
  /** Told after each round. */
  onRound?(round: KillRound): void;
}

export async function runKillDrill(opts: DrillOptions): Promise<DrillSummary> {
  const started = performance.now();
  const rand = random(opts.seed ?? 21);
  const lab = await startLab({ difusores: opts.difusores ?? 2 });
  const cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-kill-'));
  try {
    const registry = await lab.writeRegistry();
    const publishes = Math.ceil(opts.kills / CYCLE.length) + 1;
    const names: string[] = [];
    for (let i = 0; i <= publishes; i++) {
      // Cuts every 15 minutes from 20:15; each adds 25 casillas' actas (about 2 MB) to the one before.
      const minutes = 20 * 60 + 15 + 15 * i;
      const name = `20220605_${String(Math.floor(minutes / 60) % 24).padStart(2, '0')}${String(minutes % 60).padStart(2, '0')}_PREP_DGO`;
      if (minutes >= 24 * 60) throw new Error('the drill runs at most 14 publishes on 5 June: ask for fewer kills');
      await writeCut(path.join(cuts, name), name, { ...SHAPE, counted: 20 + 25 * i }, i > 0 ? path.join(cuts, names[i - 1] as string) : undefined);
      names.push(name);
    }
    const first = await publish(registry, path.join(cuts, names[0] as string));
    if (first.exitCode !== 0) throw new Error(`the drill's first publish failed: ${JSON.stringify(first.outcomes)}`);
    let newest = 0;
    // How long each command runs past its first line, learnt from the reruns: the kill lands anywhere in it.
    const span: Record<DrillCommand, number> = { publish: 3000, cutoff: 1500, reinstate: 2500, rollback: 1500 };
    const rounds: KillRound[] = [];

    for (let n = 1; n <= opts.kills; n++) {
      const command = CYCLE[(n - 1) % CYCLE.length] as DrillCommand;
      if (command === 'publish') newest++;
      const args = {
        publish: ['publish', path.join(cuts, names[newest] as string)],
        cutoff: ['cutoff', SUSPENDED, '--reason', 'Simulacro de corte', '--yes'],
        reinstate: ['reinstate', SUSPENDED, '--yes'],
        rollback: ['rollback', '--to', names[newest - 1] as string, '--yes'],
      }[command];
      const argv = [...args, '--registry', registry];
      const env = { DIFUSION_NOW: NOW };
      const round: KillRound = {
        n,
        command,
        args,
        killAfterMs: 0,
        killed: false,
        lastLine: '',
        served: {},
        journalAfterKill: false,
        rerunCode: null,
        rerunMs: 0,
        stagingLeft: 0,
        problems: [],
      };

      const run = spawnCli(argv, env);
      await run.line(/./).catch(() => undefined);
      round.killAfterMs = Math.round(rand() * span[command]);
      await Promise.race([sleep(round.killAfterMs), run.exited]);
      round.killed = run.child.exitCode === null && run.child.signalCode === null;
      run.signal('SIGKILL');
      const exit: CliExit = await run.exited;
      round.lastLine = exit.stdout.trim().split('\n').slice(-1)[0] ?? '';
      await sessionsSettle(lab);

      for (const d of lab.difusores) {
        const w = await whole(d);
        round.served[d.id] = w.served;
        if (w.problem) round.problems.push(`after the kill: ${w.problem}`);
      }
      const loaded = await loadRegistry(registry);
      if (!loaded.ok) round.problems.push(`after the kill: the registry does not validate: ${JSON.stringify(loaded.problems).slice(0, 300)}`);
      round.journalAfterKill = (await verifyJournal(lab.stateDir)).ok;

      const t0 = performance.now();
      const rerun = spawnCli(argv, env);
      const firstLineAt = rerun.line(/./).then(() => performance.now(), () => performance.now());
      const again = await rerun.exited;
      round.rerunMs = Math.round(performance.now() - t0);
      span[command] = Math.max(500, Math.round(0.5 * span[command] + 0.5 * (performance.now() - (await firstLineAt))));
      round.rerunCode = again.code;
      // reinstate after one that got as far as the registry: the difusor is no longer suspended (exit 2, said so).
      const documented = command === 'reinstate' && /is not suspended/.test(again.stderr + again.stdout) ? [0, 2] : [0];
      if (!documented.includes(again.code ?? -1)) {
        round.problems.push(`the rerun exited ${again.code}: ${(again.stderr || again.stdout).trim().split('\n').slice(-3).join(' | ')}`);
      }
      for (const d of lab.difusores) {
        const w = await whole(d);
        if (w.problem) round.problems.push(`after the rerun: ${w.problem}`);
        round.stagingLeft += stagingCount(d);
      }
      const reloaded = await loadRegistry(registry);
      if (!reloaded.ok) round.problems.push('after the rerun: the registry does not validate');
      // What the rerun was for: publish and rollback move every active difusor, cutoff and reinstate the one.
      const expected = { publish: `releases/${names[newest]}`, rollback: `releases/${names[newest - 1]}`, cutoff: 'notices/', reinstate: 'releases/' }[command];
      const active = new Set(reloaded.ok ? reloaded.registry.difusores.filter((d) => d.status === 'active').map((d) => d.id) : []);
      const subject = command === 'cutoff' || command === 'reinstate' ? [lab.difusor(SUSPENDED)] : lab.difusores.filter((d) => active.has(d.id));
      for (const d of subject) {
        const target = await readlink(path.join(d.path, 'current')).catch(() => '');
        if (!target.startsWith(expected)) round.problems.push(`after the rerun: ${d.id} serves ${target}, not ${expected}`);
      }
      const journal = await verifyJournal(lab.stateDir);
      if (!journal.ok) round.problems.push(`after the rerun: journal verify: line ${journal.line}: ${journal.problem}`);
      rounds.push(round);
      opts.onRound?.(round);
    }

    const byCommand = Object.fromEntries(
      CYCLE.map((c) => {
        const of = rounds.filter((r) => r.command === c);
        const rerunCodes: Record<string, number> = {};
        for (const r of of) rerunCodes[String(r.rerunCode)] = (rerunCodes[String(r.rerunCode)] ?? 0) + 1;
        return [c, { rounds: of.length, killed: of.filter((r) => r.killed).length, problems: of.filter((r) => r.problems.length > 0).length, rerunCodes }];
      }),
    ) as DrillSummary['byCommand'];
    return {
      rounds,
      kills: rounds.filter((r) => r.killed).length,
      finishedBeforeKill: rounds.filter((r) => !r.killed).length,
      problems: rounds.filter((r) => r.problems.length > 0).length,
      byCommand,
      seconds: Math.round((performance.now() - started) / 100) / 10,
    };
  } finally {
    await lab.stop();
    await rm(cuts, { recursive: true, force: true });
  }
}
