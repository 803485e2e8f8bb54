import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startLab, type Lab } from './lab/sshd.js';
import { writeCut } from '../../bench/prep-cut.js';
import { IN_WINDOW, checkLive, liveCut } from './support/publish.js';
import { ROOT, runCli, show } from './support/cli.js';
import { loadRegistry, parseRegistry } from '../../src/core/registry/registry.js';
import { runPublish, type PublishRunResult } from '../../src/core/publish/publish-run.js';
import { openJournal, newRunId, type JournalEntry } from '../../src/core/records/journal.js';
import { createConnector } from '../../src/adapters/difusor.js';
import { fixedClock } from '../../src/adapters/clock.js';

/**
 * A rollback's hold seen by both publication hosts, and cutoff/reinstate under the difusor's lease, on the lab: two
 * registries and two state directories on this machine stand for hosts a and b, on the same real sshd difusores.
 * The hold lives on each difusor (.lease/hold), so b's cron leaves a's rollback alone; a publish by name lifts it.
 */

const T = 300_000;
const SHAPE = { casillas: 60, counted: 20, imageBytes: 4_000, seed: 'shared-hold' };
const CUTS = ['20220605_2015_PREP', '20220605_2030_PREP', '20220605_2045_PREP'];
const [, ROLLED_BACK_TO, NEWEST] = CUTS as [string, string, string];
const HELPER = path.join(ROOT, 'templates', 'difusion-helper.sh');
const run = promisify(execFile);

let lab: Lab;
let cuts: string;
const registryOf: Record<string, string> = {};
const stateOf: Record<string, string> = {};

beforeAll(async () => {
  lab = await startLab({ difusores: 3 });
  cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-shared-hold-'));
  for (const host of ['a', 'b']) {
    stateOf[host] = path.join(lab.dir, `state-${host}`);
    registryOf[host] = await lab.writeRegistry({ publication: { state_dir: stateOf[host] } }, path.join(lab.dir, `difusores-${host}.yaml`));
  }
  let previous: string | undefined;
  for (const [i, cut] of CUTS.entries()) {
    await writeCut(path.join(cuts, cut), cut, { ...SHAPE, counted: 20 + 10 * i }, previous);
    previous = path.join(cuts, cut);
  }
}, T);

afterAll(async () => {
  await lab?.stop();
  if (cuts) await rm(cuts, { recursive: true, force: true });
}, T);

/** A publish by host `host` in this process: its own registry and state directory, its own name on the difusores. */
async function publishAs(host: string, what: { cut: string } | { latest: true }): Promise<PublishRunResult> {
  const loaded = await loadRegistry(registryOf[host] as string);
  if (!loaded.ok) throw new Error(`registry invalid: ${JSON.stringify(loaded.problems)}`);
  const latest = 'latest' in what;
  return runPublish(
    { registry: loaded.registry, cutArg: latest ? cuts : path.join(cuts, what.cut), latest, only: [], dryRun: false, simulacro: false, host },
    { clock: fixedClock(IN_WINDOW), connect: (reg, targets) => createConnector(reg, targets), openJournal, newRunId: () => newRunId() },
  );
}

/** The CLI as host `host` runs it (its registry, DIFUSION_HOST), without a terminal. */
async function cliAs(host: string, ...args: string[]): Promise<{ code: number | null; out: string }> {
  const r = await runCli([...args, '--registry', registryOf[host] as string], { DIFUSION_HOST: host, DIFUSION_NOW: IN_WINDOW.toISOString() });
  return { code: r.code, out: show(r) };
}

/** The helper on a difusor's directory, as its own account runs it (the lab's difusores are on this machine). */
async function helperOn(root: string, ...args: string[]): Promise<string> {
  return (await run('sh', [HELPER, root, ...args])).stdout;
}

async function journalOf(host: string): Promise<JournalEntry[]> {
  const text = await readFile(path.join(stateOf[host] as string, 'journal.jsonl'), 'utf8');
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as JournalEntry);
}

async function statusIn(host: string, id: string): Promise<string | undefined> {
  const parsed = parseRegistry(await readFile(registryOf[host] as string, 'utf8'), registryOf[host] as string);
  return parsed.ok ? parsed.registry.difusores.find((d) => d.id === id)?.status : undefined;
}

async function expectEverywhere(cut: string): Promise<void> {
  for (const d of lab.difusores) {
    expect({ id: d.id, live: await liveCut(d.path) }).toEqual({ id: d.id, live: `releases/${cut}` });
    expect(await checkLive(d.path)).toEqual({ ok: true, output: '' });
    // No run left its lease behind.
    expect({ id: d.id, holder: await readFile(path.join(d.path, '.lease', 'holder'), 'utf8').catch(() => 'none') }).toEqual({ id: d.id, holder: 'none' });
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('a rollback on host a, cron on host b', () => {
  test('b\'s publish --latest leaves every difusor on the rolled-back cut, exit 3 naming the hold', async () => {
    for (const cut of CUTS) expect((await publishAs('a', { cut })).exitCode).toBe(0);
    await expectEverywhere(NEWEST);

    const rollback = await cliAs('a', 'rollback', '--yes');
    expect({ code: rollback.code, out: rollback.code === 0 ? '' : rollback.out }).toEqual({ code: 0, out: '' });
    await expectEverywhere(ROLLED_BACK_TO);
    for (const d of lab.difusores) {
      expect(await helperOn(d.path, 'hold', 'show')).toMatch(new RegExp(`^now \\d+\\nhold ${ROLLED_BACK_TO} a \\S+ \\d+\\n$`));
    }

    // b's cron, in this process and through the CLI (what cron mails).
    const cron = await publishAs('b', { latest: true });
    expect(cron.exitCode).toBe(3);
    for (const d of lab.difusores) {
      const o = cron.outcomes.find((x) => x.id === d.id);
      expect({ id: d.id, result: o?.result, leftAlone: o?.leftAlone, error: o?.error }).toEqual({
        id: d.id,
        result: 'failed',
        leftAlone: 'rollback-hold',
        error: expect.stringMatching(new RegExp(`^held on ${ROLLED_BACK_TO} by a rollback of a since \\d{4}-\\d\\d-\\d\\dT[\\d:]+Z: publish ${NEWEST} by name to lift it$`)),
      });
    }
    const cronCli = await cliAs('b', 'publish', '--latest', cuts);
    expect({ code: cronCli.code, names: cronCli.out.includes(`held on ${ROLLED_BACK_TO} by a rollback of a`) }).toEqual({ code: 3, names: true });
    await expectEverywhere(ROLLED_BACK_TO);
  }, T);

  test('b publishing the newest cut by name lifts the hold; a\'s own cron, still on its hold, moves nothing back', async () => {
    const byName = await publishAs('b', { cut: NEWEST });
    expect({ code: byName.exitCode, errors: byName.outcomes.map((o) => o.error) }).toEqual({ code: 0, errors: lab.difusores.map(() => undefined) });
    await expectEverywhere(NEWEST);
    for (const d of lab.difusores) {
      const inspect = await helperOn(d.path, 'inspect', NEWEST);
      expect({ id: d.id, held: /^hold /m.test(inspect), lifted: new RegExp(`^lifted ${ROLLED_BACK_TO} b ${byName.run} \\d+$`, 'm').test(inspect) }).toEqual({ id: d.id, held: false, lifted: true });
    }
    const lifts = (await journalOf('b')).filter((e) => e.run === byName.run && e.phase === 'rollback-hold');
    expect(lifts.map((e) => e.difusor).sort()).toEqual(lab.difusores.map((d) => d.id).sort());

    // a's cron follows a's own hold, but not over a difusor whose hold a publish by name lifted.
    const aCron = await publishAs('a', { latest: true });
    expect({ code: aCron.exitCode, cut: aCron.cut }).toEqual({ code: 3, cut: ROLLED_BACK_TO });
    for (const o of aCron.outcomes) {
      expect({ leftAlone: o.leftAlone, error: o.error }).toEqual({ leftAlone: 'newer-live', error: expect.stringContaining(`the rollback hold on ${ROLLED_BACK_TO} was lifted here by a publish by name of b`) });
    }
    await expectEverywhere(NEWEST);
    // a's operator lifts a's own hold the same way: by name.
    const aByName = await publishAs('a', { cut: NEWEST });
    expect({ code: aByName.exitCode, lifted: aByName.holdLifted }).toEqual({ code: 0, lifted: true });
    expect((await publishAs('a', { latest: true })).exitCode).toBe(0);
    await expectEverywhere(NEWEST);
  }, T);
});

describe('cutoff and reinstate under the difusor\'s lease', () => {
  test('a lease another host holds (or its admin forged) leaves the difusor untouched, named, but suspended in the registry all the same; once released, the notice goes up', async () => {
    const d = lab.difusores[0]!;
    expect(await helperOn(d.path, 'lease', 'take', 'b', 'b-long-run', '3600')).toMatch(/\ntaken /);

    const held = await cliAs('a', 'cutoff', d.id, '--reason', 'simulacro de corte', '--yes');
    expect({ code: held.code, names: /held by b \(run b-long-run\) since /.test(held.out) }).toEqual({ code: 3, names: true });
    expect(await liveCut(d.path)).toBe(`releases/${NEWEST}`);
    expect(await statusIn('a', d.id)).toBe('suspended');
    expect(held.out).toContain('its notice is NOT in place');
    expect(await readFile(path.join(d.path, '.lease', 'holder'), 'utf8')).toMatch(/^b b-long-run /);

    expect(await helperOn(d.path, 'lease', 'release', 'b', 'b-long-run')).toMatch(/\nreleased\n$/);
    const cut = await cliAs('a', 'cutoff', d.id, '--reason', 'simulacro de corte', '--yes');
    expect({ code: cut.code, out: cut.code === 0 ? '' : cut.out }).toEqual({ code: 0, out: '' });
    expect(await liveCut(d.path)).toMatch(/^notices\/\d{8}_\d{6}$/);
    expect(await statusIn('a', d.id)).toBe('suspended');

    // reinstate: the same under another host's lease ...
    await helperOn(d.path, 'lease', 'take', 'b', 'b-long-run', '3600');
    const heldBack = await cliAs('a', 'reinstate', d.id, '--yes');
    expect({ code: heldBack.code, names: /held by b \(run b-long-run\) since /.test(heldBack.out) }).toEqual({ code: 3, names: true });
    expect(await liveCut(d.path)).toMatch(/^notices\//);
    expect(await statusIn('a', d.id)).toBe('suspended');
    await helperOn(d.path, 'lease', 'release', 'b', 'b-long-run');

    // ... and an expired one (its holder gone) taken over and journaled.
    const short = await helperOn(d.path, 'lease', 'take', 'b', 'b-dead-run', '1');
    const expiry = Number(/\ntaken \d+ (\d+)\n/.exec(short)?.[1]);
    while (Date.now() / 1000 <= expiry) await sleep(200);
    const back = await cliAs('a', 'reinstate', d.id, '--yes');
    expect({ code: back.code, out: back.code === 0 ? '' : back.out }).toEqual({ code: 0, out: '' });
    await expectEverywhere(NEWEST);
    expect(await statusIn('a', d.id)).toBe('active');
    const takeovers = (await journalOf('a')).filter((e) => e.phase === 'lease-takeover' && e.difusor === d.id);
    expect(takeovers.at(-1)?.detail).toMatchObject({ host: 'a', tookOverFrom: { host: 'b', run: 'b-dead-run' } });
  }, T);
});
