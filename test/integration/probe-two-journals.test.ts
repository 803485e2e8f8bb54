import { copyFile, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startLab, type Lab } from './lab/sshd.js';
import { startVhost } from './lab/vhost.js';
import { type Apache } from './lab/apache.js';
import { writeCut } from '../../bench/prep-cut.js';
import { runCli, show, spawnCli } from './support/cli.js';
import { loadRegistry } from '../../src/core/registry/registry.js';
import { runPublish, type PublishRunResult } from '../../src/core/publish/publish-run.js';
import { openJournal, newRunId, readJournalFile } from '../../src/core/records/journal.js';
import { wentLiveTimes, type ProbeReport, type ProbeRow } from '../../src/core/probe/probe.js';
import { foundLive } from '../../src/core/probe/went-live.js';
import { createConnector } from '../../src/adapters/difusor.js';

/**
 * `probe --journal` on the alternate site, on the lab: primario switches C2 on d1 only; alterno (the standby, its
 * own state directory) later finds C2 live on d1. Alterno's probe sees d2 still on C1: by its own journal alone
 * the lag counts from when it found C2 live (understated); given primario's journal, copied here, from primario's
 * switch. An altered copy is refused naming the file and the line (exit 6).
 */

const T = 300_000;
const SHAPE = { casillas: 40, counted: 10, imageBytes: 8_000, seed: 'probe-two-journals' };
const MINUTE = 60_000;
/**
 * A publish journals switchedAt on the machine's clock (never a fixed DIFUSION_NOW), and a found-live check at its
 * run's clock: both hosts publish on the real clock, the cuts named after it and the window around it.
 */
const START = Math.floor(Date.now() / MINUTE) * MINUTE;
const stamp = (ms: number): string => new Date(ms).toISOString().slice(0, 16);
const cutAt = (ms: number): string => `${stamp(ms).replace(/[-:]/g, '').replace('T', '_')}_PREP`;
const C1 = cutAt(START - 30 * MINUTE);
const C2 = cutAt(START - 15 * MINUTE);
const PUBLICATION = { timezone: 'UTC', window: { start: stamp(START - 24 * 60 * MINUTE), end: stamp(START + 24 * 60 * MINUTE) } };

let lab: Lab;
let cuts: string;
let copies: string;
const registryOf: Record<string, string> = {};
const stateOf: Record<string, string> = {};
const apaches: Apache[] = [];

beforeAll(async () => {
  lab = await startLab({ difusores: 2 });
  cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-probe-two-journals-'));
  copies = path.join(lab.dir, 'copias');
  await mkdir(copies);
  await writeCut(path.join(cuts, C1), C1, SHAPE);
  await writeCut(path.join(cuts, C2), C2, { ...SHAPE, counted: 20 }, path.join(cuts, C1));
  for (const host of ['primario', 'alterno']) stateOf[host] = path.join(lab.dir, `state-${host}`);
  await writeRegistries({});
  expect(await publishAs('primario', C1, [])).toMatchObject({ exitCode: 0 });
  // A copy taken before primario switched C2, with its head: what a live copy held then.
  await mkdir(path.join(lab.dir, 'copia-temprana'));
  for (const name of ['journal.jsonl', 'journal.head']) await copyFile(path.join(stateOf.primario as string, name), path.join(lab.dir, 'copia-temprana', name));
  const urls: Record<string, { public_url: string }> = {};
  for (const d of lab.difusores) {
    const apache = await startVhost(d);
    apaches.push(apache);
    urls[d.id] = { public_url: apache.url };
  }
  await writeRegistries(urls);
  expect(await publishAs('primario', C2, ['d1'])).toMatchObject({ exitCode: 0 });
  // The standby's cron run five minutes later (its clock set ahead rather than waited for) finds C2 live on d1,
  // switched by primario: all its own journal knows of C2.
  expect(await publishAs('alterno', C2, ['d1'], 5 * MINUTE)).toMatchObject({ exitCode: 0 });
  // The copy of primario's journal, as the README's cron rsync brings it.
  await copyFile(path.join(stateOf.primario as string, 'journal.jsonl'), copied());
  await copyFile(path.join(stateOf.primario as string, 'journal.head'), path.join(copies, 'journal.head'));
}, T);

afterAll(async () => {
  for (const a of apaches) await a.stop();
  await lab?.stop();
  if (cuts) await rm(cuts, { recursive: true, force: true });
}, T);

async function writeRegistries(difusores: Record<string, { public_url: string }>): Promise<void> {
  for (const host of ['primario', 'alterno']) {
    registryOf[host] = await lab.writeRegistry({ publication: { ...PUBLICATION, state_dir: stateOf[host] }, difusores }, path.join(lab.dir, `difusores-${host}.yaml`));
  }
}

async function publishAs(host: string, cut: string, only: string[], aheadMs = 0): Promise<PublishRunResult> {
  const loaded = await loadRegistry(registryOf[host] as string);
  if (!loaded.ok) throw new Error(`registry invalid: ${JSON.stringify(loaded.problems)}`);
  return runPublish(
    { registry: loaded.registry, cutArg: path.join(cuts, cut), latest: false, only, dryRun: false, simulacro: false, host },
    { clock: { now: () => new Date(Date.now() + aheadMs), fromEnv: false }, connect: (reg, targets) => createConnector(reg, targets), openJournal, newRunId: () => newRunId() },
  );
}

const copied = (): string => path.join(copies, 'journal.jsonl');

/** alterno's probe at `now`, knowing the cuts by its own copy of them (--cuts). */
async function probeOnAlterno(now: Date, args: string[]): Promise<{ code: number | null; row(id: string): ProbeRow }> {
  const run = await runCli(['probe', '--registry', registryOf.alterno as string, '--cuts', cuts, '--max-lag', '3600', '--json', ...args], { DIFUSION_NOW: now.toISOString() });
  let report: ProbeReport;
  try {
    report = JSON.parse(run.stdout) as ProbeReport;
  } catch {
    throw new Error(`probe printed no JSON\n${show(run)}`);
  }
  return { code: run.code, row: (id) => report.difusores.find((r) => r.id === id) as ProbeRow };
}

// First: what this host verified of primario's journal is remembered, and an older copy of it is then refused.
test('--watch --journal: a live copy that grows (replaced whole, as rsync does) is read on, and the next round counts from the switch it brought', async () => {
  const switchedByPrimario = wentLiveTimes(await readJournalFile(copied())).get(C2) as Date;
  const foundByAlterno = wentLiveTimes(await readJournalFile(path.join(stateOf.alterno as string, 'journal.jsonl'))).get(C2) as Date;
  const live = path.join(lab.dir, 'copia-viva');
  await mkdir(live);
  for (const name of ['journal.jsonl', 'journal.head']) await copyFile(path.join(lab.dir, 'copia-temprana', name), path.join(live, name));
  const now = new Date(foundByAlterno.getTime() + 10 * MINUTE);
  const lag = (since: Date): string => `  d2  ok  cut=${C1} lag=${Math.round((now.getTime() - since.getTime()) / 1000)}s `;
  const watch = spawnCli(['probe', '--registry', registryOf.alterno as string, '--cuts', cuts, '--max-lag', '3600', '--only', 'd2', '--watch', '1', '--journal', path.join(live, 'journal.jsonl')], {
    DIFUSION_NOW: now.toISOString(),
  });
  const until = async (text: string): Promise<void> => {
    for (let waited = 0; !watch.stdout().includes(text) && waited < 120_000; waited += 200) await new Promise((r) => setTimeout(r, 200));
  };
  try {
    // The early copy knows nothing of C2: alterno's own finding is all there is.
    await until(lag(foundByAlterno));
    expect(watch.stdout()).toContain(lag(foundByAlterno));
    const grown = path.join(live, '.journal.jsonl.rsync-tmp');
    await copyFile(copied(), grown);
    await rename(grown, path.join(live, 'journal.jsonl'));
    await until(lag(switchedByPrimario));
    expect(watch.stdout()).toContain(lag(switchedByPrimario));
  } finally {
    watch.signal('SIGINT');
  }
  expect((await watch.exited).code).toBe(0);
}, T);

test("given primario's journal, the lag of a difusor behind the cut primario switched counts from primario's switch, not from when alterno found it live", async () => {
  const switchedByPrimario = wentLiveTimes(await readJournalFile(copied())).get(C2) as Date;
  const alternoEntries = await readJournalFile(path.join(stateOf.alterno as string, 'journal.jsonl'));
  const foundByAlterno = wentLiveTimes(alternoEntries).get(C2) as Date;
  // What each journal says, as the lab made it: alterno's only knowledge of C2 is finding it live, after primario's switch.
  expect(alternoEntries.some((e) => e.cut === C2 && foundLive(e))).toBe(true);
  expect(alternoEntries.some((e) => e.cut === C2 && e.phase === 'switch' && e.result === 'ok')).toBe(false);
  expect(foundByAlterno.getTime() - switchedByPrimario.getTime()).toBeGreaterThanOrEqual(5 * MINUTE);
  const lagFrom = (since: Date, now: Date): number => Math.round((now.getTime() - since.getTime()) / 1000);

  const now = new Date(foundByAlterno.getTime() + 10 * MINUTE);
  const alone = await probeOnAlterno(now, []);
  expect({ code: alone.code, d1: alone.row('d1'), d2: alone.row('d2') }).toMatchObject({
    code: 0,
    d1: { ok: true, cut: C2, lagSeconds: 0 },
    d2: { ok: true, cut: C1, lagSeconds: lagFrom(foundByAlterno, now) },
  });
  const withCopy = await probeOnAlterno(now, ['--journal', copied()]);
  expect({ code: withCopy.code, d1: withCopy.row('d1'), d2: withCopy.row('d2') }).toMatchObject({
    code: 0,
    d1: { ok: true, cut: C2, lagSeconds: 0 },
    d2: { ok: true, cut: C1, lagSeconds: lagFrom(switchedByPrimario, now) },
  });
  // A later round reads on from the kept offsets (alterno's journal grew: its probes journaled their rounds).
  const later = new Date(now.getTime() + MINUTE);
  expect((await probeOnAlterno(later, ['--journal', copied()])).row('d2')).toMatchObject({ cut: C1, lagSeconds: lagFrom(switchedByPrimario, later) });
  // And without it again, alterno's own fold, kept apart, is as it was.
  expect((await probeOnAlterno(now, [])).row('d2')).toMatchObject({ lagSeconds: lagFrom(foundByAlterno, now) });
}, T);

test('an altered copy, or one cut below what this host verified, is refused before any probe, naming the file and the line (exit 6); a missing one, exit 2', async () => {
  const lines = (await readFile(copied(), 'utf8')).split('\n');
  const line = lines.findIndex((l) => l.includes('"phase":"switch"') && l.includes(C2));
  expect(line).toBeGreaterThan(0);
  lines[line] = (lines[line] as string).replace(/"at":"[^"]+"/, '"at":"2022-06-06T14:00:00.000Z"');
  const tampered = path.join(copies, 'tampered.jsonl');
  await writeFile(tampered, lines.join('\n'));
  const run = await runCli(['probe', '--registry', registryOf.alterno as string, '--journal', tampered]);
  expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 6, stderr: expect.stringContaining(`${tampered}:${line + 1}: `) });
  expect(run.stdout).not.toMatch(/d1/);
  // A copy older than what this host verified before (the watch above read on to the whole journal): cut, refused.
  const older = path.join(lab.dir, 'copia-temprana', 'journal.jsonl');
  const cut = await runCli(['probe', '--registry', registryOf.alterno as string, '--journal', older]);
  expect({ code: cut.code, stderr: cut.stderr }).toEqual({ code: 6, stderr: expect.stringContaining('lines it had seen were removed') });
  const missing = await runCli(['probe', '--registry', registryOf.alterno as string, '--journal', path.join(copies, 'nada.jsonl')]);
  expect({ code: missing.code, stderr: missing.stderr }).toEqual({ code: 2, stderr: expect.stringContaining('nada.jsonl: no such journal file') });
}, T);
