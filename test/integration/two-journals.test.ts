import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Lab } from './lab/sshd.js';
import { IN_WINDOW } from './support/publish.js';
import { runCli, show } from './support/cli.js';
import { startHosts, type Hosts } from './support/two-hosts.js';
import type { MemoriaReport } from '../../src/core/memoria/report.js';
import type { StatusReport } from '../../src/core/publish/status.js';
/**
 * One account of the night from two journals, on the lab: two publication hosts (primario and alterno: two
 * registries, two state directories, the same real sshd difusores) publish in turn; alterno's journal is copied to
 * primario, verified there with primario's own (`journal verify --journal`), and merged into `report` and
 * `status`. A tampered copy is refused, naming the file and the line (exit 6).
 */

const T = 300_000;
const CUTS = ['20220606_0930_PREP', '20220606_0945_PREP', '20220606_1000_PREP'] as const;
const MINUTE = 60_000;

let hosts: Hosts;
let lab: Lab;
let copies: string;
let registryOf: Record<string, string>;
let stateOf: Record<string, string>;

beforeAll(async () => {
  hosts = await startHosts({ name: 'two-journals', hosts: ['primario', 'alterno'], difusores: 2, cuts: [...CUTS], shape: { casillas: 200, counted: 100, imageBytes: 10_000, step: 10 } });
  ({ lab, registryOf, stateOf } = hosts);
  copies = path.join(lab.dir, 'copias');
  await mkdir(copies);
  // The night, each run a few minutes after the one before (each run's clock is fixed: its entries share one instant).
  const night: Array<[string, string, number]> = [
    ['primario', CUTS[0], 0],
    ['alterno', CUTS[1], 5],
    ['primario', CUTS[2], 10],
    // An older cut on the alternate host: nothing moves backwards, and each difusor is an incident of alterno's.
    ['alterno', CUTS[0], 15],
  ];
  for (const [host, cut, minutes] of night) {
    const result = await hosts.publishAs(host, { cut }, { at: new Date(IN_WINDOW.getTime() + minutes * MINUTE) });
    expect({ host, cut, code: result.exitCode }).toEqual({ host, cut, code: minutes === 15 ? 3 : 0 });
  }
  // The end-of-night copy: alterno's journal and its head, as scp would bring them.
  await copyFile(path.join(stateOf.alterno as string, 'journal.jsonl'), path.join(copies, 'journal.jsonl'));
  await copyFile(path.join(stateOf.alterno as string, 'journal.head'), path.join(copies, 'journal.head'));
}, T);

afterAll(() => hosts?.stop(), T);

const copied = (): string => path.join(copies, 'journal.jsonl');

async function tamperedCopy(): Promise<{ file: string; line: number }> {
  const lines = (await readFile(copied(), 'utf8')).split('\n');
  // The alternate host's run says it published a cut other than the one it did.
  const line = lines.findIndex((l) => l.includes('"phase":"switch"') && l.includes(CUTS[1]));
  expect(line).toBeGreaterThan(0);
  lines[line] = (lines[line] as string).replace('"result":"ok"', '"result":"skipped"');
  const file = path.join(copies, 'tampered.jsonl');
  await writeFile(file, lines.join('\n'));
  return { file, line: line + 1 };
}

function parsed<T>(run: { stdout: string }, whole: string): T {
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    throw new Error(`not JSON:\n${whole}`);
  }
}

describe('the alternate site: both journals verified and merged', () => {
  test('journal verify --journal checks the copy and this host\'s own, naming each; a copy without its head is said to be unchecked at its end', async () => {
    const both = await runCli(['journal', 'verify', '--registry', registryOf.primario as string, '--journal', copied()]);
    expect({ code: both.code, out: both.stdout }).toEqual({
      code: 0,
      out: expect.stringMatching(/state-primario\/journal\.jsonl \(this host's journal\): intact, \d+ entries, hash chain verified\.\n.*copias\/journal\.jsonl: intact, \d+ entries, hash chain verified; its head .*copias\/journal\.head checked\./),
    });
    const alone = path.join(copies, 'alterno.jsonl');
    await copyFile(copied(), alone);
    const noHead = await runCli(['journal', 'verify', '--registry', registryOf.primario as string, '--journal', alone]);
    expect({ code: noHead.code, out: noHead.stdout }).toEqual({ code: 0, out: expect.stringContaining('alterno.jsonl: intact') });
    expect(noHead.stdout).toContain('no head file beside it (FILE.head or journal.head): a removal of its last lines cannot be detected');
  }, T);

  test('report --journal: the runs of both hosts in time order, each with its host; the incidents name theirs', async () => {
    const out = path.join(lab.dir, 'memoria');
    const run = await runCli(['report', '--registry', registryOf.primario as string, '--from', '2022-06-06', '--to', '2022-06-06', '--out', out, '--json', '--journal', copied()]);
    const report = parsed<MemoriaReport>(run, show(run));
    expect(run.code).toBe(0);
    const publishes = report.runs.filter((r) => r.command.startsWith('publish'));
    expect(publishes.map((r) => [r.host, r.cut, r.result])).toEqual([
      ['primario', CUTS[0], 'ok'],
      ['alterno', CUTS[1], 'ok'],
      ['primario', CUTS[2], 'ok'],
      ['alterno', CUTS[0], 'failed'],
    ]);
    const times = report.runs.map((r) => Date.parse(r.at));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(report.journals?.map((j) => [j.host, j.own, j.head])).toEqual([
      ['primario', true, 'checked'],
      ['alterno', false, 'checked'],
    ]);
    // alterno's older cut, refused on every difusor: incidents of alterno's, from alterno's journal.
    const refused = report.incidents.filter((i) => i.kind === 'publish-failed');
    expect(refused.map((i) => [i.host, i.cut]).sort()).toEqual(lab.difusores.map(() => ['alterno', CUTS[0]]));
    expect(await readFile(path.join(out, 'index.html'), 'utf8')).toContain('<th>Sitio</th>');

    // Without --journal: this host's journal alone, as before.
    const alone = await runCli(['report', '--registry', registryOf.primario as string, '--from', '2022-06-06', '--to', '2022-06-06', '--out', out, '--json']);
    const own = parsed<MemoriaReport>(alone, show(alone));
    expect(own.runs.filter((r) => r.command.startsWith('publish')).map((r) => r.host)).toEqual(['primario', 'primario']);
    expect(own.journals).toBeUndefined();
  }, T);

  test('status --journal on the alternate host: the newest cut is the one the primary published', async () => {
    await copyFile(path.join(stateOf.primario as string, 'journal.jsonl'), path.join(copies, 'primario.jsonl'));
    const alone = await runCli(['status', '--registry', registryOf.alterno as string, '--json']);
    const merged = await runCli(['status', '--registry', registryOf.alterno as string, '--json', '--journal', path.join(copies, 'primario.jsonl')]);
    const [before, after] = [parsed<StatusReport>(alone, show(alone)), parsed<StatusReport>(merged, show(merged))];
    expect(before.newest).not.toBe(CUTS[2]);
    expect(after.newest).toBe(CUTS[2]);
    expect(after.difusores.map((d) => [d.live, d.lagCuts])).toEqual(lab.difusores.map(() => [CUTS[2], 0]));
  }, T);

  test('a copy without its head: report says its last lines could have been removed unseen; one cut below what this host verified is refused', async () => {
    const alone = path.join(copies, 'alterno-sin-cabeza.jsonl');
    await copyFile(copied(), alone);
    const out = path.join(lab.dir, 'memoria-sin-cabeza');
    const run = await runCli(['report', '--registry', registryOf.primario as string, '--from', '2022-06-06', '--to', '2022-06-06', '--out', out, '--json', '--journal', alone]);
    const report = parsed<MemoriaReport>(run, show(run));
    expect(run.code).toBe(0);
    expect(report.journals?.map((j) => [j.host, j.head])).toEqual([
      ['primario', 'checked'],
      ['alterno', 'none'],
    ]);
    expect(run.stderr).toContain('(alterno): no head file beside it (FILE.head or journal.head): a removal of its last lines cannot be detected');
    expect(await readFile(path.join(out, 'index.html'), 'utf8')).toContain('pudieron haberse quitado sin que se note');

    // This host verified alterno's copy to its end before: a copy missing its last line is refused by all three.
    const lines = (await readFile(copied(), 'utf8')).split('\n').filter(Boolean);
    const cut = path.join(copies, 'alterno-cortada.jsonl');
    await writeFile(cut, lines.slice(0, -1).join('\n') + '\n');
    const refusal = `${cut}:${lines.length}: the copy ends at seq ${lines.length - 1} but this host verified it up to seq ${lines.length}`;
    const report2 = await runCli(['report', '--registry', registryOf.primario as string, '--from', '2022-06-06', '--to', '2022-06-06', '--out', out, '--journal', cut]);
    expect({ code: report2.code, err: report2.stderr }).toEqual({ code: 6, err: expect.stringContaining(refusal) });
    const status = await runCli(['status', '--registry', registryOf.primario as string, '--journal', cut]);
    expect({ code: status.code, err: status.stderr }).toEqual({ code: 6, err: expect.stringContaining(refusal) });
    const verify = await runCli(['journal', 'verify', '--registry', registryOf.primario as string, '--journal', cut]);
    expect({ code: verify.code }).toEqual({ code: 6 });
    expect(verify.stdout).toContain(`alterno-cortada.jsonl:${lines.length}: the copy ends at seq ${lines.length - 1} but this host verified it up to seq ${lines.length}`);
  }, T);

  test('a tampered copy is refused by verify, report and status, naming the file and the line (exit 6)', async () => {
    const { file, line } = await tamperedCopy();
    const verify = await runCli(['journal', 'verify', '--registry', registryOf.primario as string, '--journal', file]);
    expect({ code: verify.code }).toEqual({ code: 6 });
    expect(verify.stdout).toContain(`${file}:${line}: line ${line}`);
    expect(verify.stdout).toMatch(/this host's journal\): intact/);

    const out = path.join(lab.dir, 'memoria-tampered');
    const report = await runCli(['report', '--registry', registryOf.primario as string, '--from', '2022-06-06', '--to', '2022-06-06', '--out', out, '--journal', file]);
    expect({ code: report.code, err: report.stderr }).toEqual({ code: 6, err: expect.stringContaining(`${file}:${line}: line ${line}`) });
    await expect(readFile(path.join(out, 'report.json'))).rejects.toMatchObject({ code: 'ENOENT' });

    const status = await runCli(['status', '--registry', registryOf.primario as string, '--journal', file]);
    expect({ code: status.code, err: status.stderr }).toEqual({ code: 6, err: expect.stringContaining(`${file}:${line}`) });
  }, T);
});
