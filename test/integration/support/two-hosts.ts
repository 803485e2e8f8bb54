import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startLab, type Lab } from '../lab/sshd.js';
import { writeCut } from '../../../bench/prep-cut.js';
import { IN_WINDOW, checkLive, liveCut } from './publish.js';
import { ROOT, runCli, show } from './cli.js';
import { loadRegistry, parseRegistry } from '../../../src/core/registry/registry.js';
import { runPublish, type PublishRunResult } from '../../../src/core/publish/publish-run.js';
import { openJournal, newRunId, type JournalEntry } from '../../../src/core/records/journal.js';
import { createConnector } from '../../../src/adapters/difusor.js';
import { fixedClock } from '../../../src/adapters/clock.js';

/**
 * The alternate site on the lab: one state directory and one registry per publication host, on this machine,
 * with the same real sshd difusores and the same cuts (each `step` more casillas counted than the one before).
 */

const HELPER = path.join(ROOT, 'templates', 'difusion-helper.sh');
const run = promisify(execFile);

export interface HostsOptions {
  name: string;
  hosts: string[];
  difusores: number;
  cuts: string[];
  shape: { casillas: number; counted: number; imageBytes: number; step: number };
  /** More publication settings for every host's registry (lease_s, …). */
  publication?: Record<string, unknown>;
}

/** What a publish is asked for: a cut by name, or the newest (--latest) in the shared cuts or in another directory. */
export type PublishWhat = { cut: string } | { latest: true } | { latestIn: string };

export interface Hosts {
  lab: Lab;
  cuts: string;
  registryOf: Record<string, string>;
  stateOf: Record<string, string>;
  /** A publish by host `host` in this process: its own registry and state directory, its own name on the difusores. */
  publishAs(host: string, what: PublishWhat, opts?: { registry?: string; at?: Date }): Promise<PublishRunResult>;
  /** The CLI as host `host` runs it (its registry, DIFUSION_HOST), without a terminal. */
  cliAs(host: string, ...args: string[]): Promise<{ code: number | null; out: string }>;
  /** The helper on a difusor's directory, as its own account runs it (the lab's difusores are on this machine). */
  helperOn(root: string, ...args: string[]): Promise<string>;
  journalOf(host: string): Promise<JournalEntry[]>;
  /** A difusor's status in host `host`'s registry. */
  statusIn(host: string, id: string): Promise<string | undefined>;
  /** Each difusor named serves `cut` whole, and no run left its lease behind. */
  expectOn(ids: string[], cut: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startHosts(opts: HostsOptions): Promise<Hosts> {
  const lab = await startLab({ difusores: opts.difusores });
  const cuts = await mkdtemp(path.join(os.tmpdir(), `difusion-${opts.name}-`));
  const registryOf: Record<string, string> = {};
  const stateOf: Record<string, string> = {};
  for (const host of opts.hosts) {
    stateOf[host] = path.join(lab.dir, `state-${host}`);
    registryOf[host] = await lab.writeRegistry({ publication: { state_dir: stateOf[host], ...opts.publication } }, path.join(lab.dir, `difusores-${host}.yaml`));
  }
  const { step, ...shape } = opts.shape;
  let previous: string | undefined;
  for (const [i, cut] of opts.cuts.entries()) {
    await writeCut(path.join(cuts, cut), cut, { ...shape, seed: opts.name, counted: shape.counted + step * i }, previous);
    previous = path.join(cuts, cut);
  }

  const hosts: Hosts = {
    lab,
    cuts,
    registryOf,
    stateOf,
    async publishAs(host, what, how = {}) {
      const loaded = await loadRegistry(how.registry ?? (registryOf[host] as string));
      if (!loaded.ok) throw new Error(`registry invalid: ${JSON.stringify(loaded.problems)}`);
      const cutArg = 'cut' in what ? path.join(cuts, what.cut) : 'latestIn' in what ? what.latestIn : cuts;
      return runPublish(
        { registry: loaded.registry, cutArg, latest: !('cut' in what), only: [], dryRun: false, simulacro: false, host },
        { clock: fixedClock(how.at ?? IN_WINDOW), connect: (reg, targets) => createConnector(reg, targets), openJournal, newRunId: () => newRunId() },
      );
    },
    async cliAs(host, ...args) {
      const r = await runCli([...args, '--registry', registryOf[host] as string], { DIFUSION_HOST: host, DIFUSION_NOW: IN_WINDOW.toISOString() });
      return { code: r.code, out: show(r) };
    },
    async helperOn(root, ...args) {
      return (await run('sh', [HELPER, root, ...args])).stdout;
    },
    async journalOf(host) {
      const text = await readFile(path.join(stateOf[host] as string, 'journal.jsonl'), 'utf8');
      return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as JournalEntry);
    },
    async statusIn(host, id) {
      const parsed = parseRegistry(await readFile(registryOf[host] as string, 'utf8'), registryOf[host] as string);
      return parsed.ok ? parsed.registry.difusores.find((d) => d.id === id)?.status : undefined;
    },
    async expectOn(ids, cut) {
      for (const id of ids) {
        const d = lab.difusor(id);
        expect({ id, live: await liveCut(d.path) }).toEqual({ id, live: `releases/${cut}` });
        expect(await checkLive(d.path)).toEqual({ ok: true, output: '' });
        const holder = await readFile(path.join(d.path, '.lease', 'holder'), 'utf8').catch(() => 'none');
        expect({ id, holder }).toEqual({ id, holder: 'none' });
      }
    },
    async stop() {
      await lab.stop();
      await rm(cuts, { recursive: true, force: true });
    },
  };
  return hosts;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
