import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startLab, type Lab, type LabDifusor } from './lab/sshd.js';
import { writeCut } from '../../bench/prep-cut.js';
import { ROOT, spawnCli } from './support/cli.js';
import { liveCut, publish } from './support/publish.js';
import { authorizedKeysLine } from '../../src/core/registry/onboard.js';
import { loadRegistry } from '../../src/core/registry/registry.js';

/**
 * A difusor's admin controls what its helper answers (it is their machine): here each difusor's forced command is
 * the real helper followed by lines the "admin" adds to chosen verbs' answers. What preflight prints and what a
 * publish reports must name the forgery, escaped, never pass the bytes to the operator's terminal, never stop on a
 * time no Date holds, and never act on a forged hold.
 */

const T = 180_000;
const ESC = '\x1b';
const SHAPE = { casillas: 10, counted: 4, imageBytes: 1000, seed: 'forged' };
const CUTS = ['20220605_2015_PREP', '20220605_2030_PREP'];
const HELPER = path.join(ROOT, 'templates', 'difusion-helper.sh');

let lab: Lab;
let cuts: string;
let registry: string;

const forgeDir = (d: LabDifusor): string => path.join(lab.dir, `forge-${d.id}`);

/** Lines the admin appends to `verb`'s answer on d (the real helper still runs, and its exit stands). */
async function forge(d: LabDifusor, verb: string, lines: string): Promise<void> {
  await writeFile(path.join(forgeDir(d), verb), lines);
}

async function unforge(d: LabDifusor, verb: string): Promise<void> {
  await rm(path.join(forgeDir(d), verb), { force: true });
}

// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

beforeAll(async () => {
  lab = await startLab({ difusores: 2 });
  cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-forged-'));
  let previous: string | undefined;
  for (const [i, cut] of CUTS.entries()) {
    await writeCut(path.join(cuts, cut), cut, { ...SHAPE, counted: SHAPE.counted + i }, previous);
    previous = path.join(cuts, cut);
  }
  registry = await lab.writeRegistry({ difusores: Object.fromEntries(lab.difusores.map((d) => [d.id, { access: 'restricted' }])) });
  const loaded = await loadRegistry(registry);
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
  for (const d of lab.difusores) {
    const difusor = loaded.registry.difusores.find((x) => x.id === d.id);
    if (!difusor) throw new Error(`no ${d.id} in the registry`);
    await mkdir(forgeDir(d));
    const wrapper = path.join(lab.dir, `forged-helper-${d.id}.sh`);
    await writeFile(
      wrapper,
      [
        'verb=${SSH_ORIGINAL_COMMAND%% *}',
        `forge='${forgeDir(d)}'`,
        "case $verb in '' | *[!a-z-]*) verb=none ;; esac",
        `[ -f "$forge/$verb" ] || exec sh '${HELPER}' "$@"`,
        `sh '${HELPER}' "$@"`,
        'code=$?',
        'cat "$forge/$verb"',
        'exit $code',
        '',
      ].join('\n'),
    );
    await chmod(wrapper, 0o755);
    await writeFile(d.authorizedKeysFile, `${authorizedKeysLine(difusor, lab.clientPublicKey, wrapper)}\n`, { mode: 0o600 });
  }
  const first = await publish(registry, path.join(cuts, CUTS[0] as string));
  expect(first.outcomes.map((o) => [o.id, o.result, o.error])).toEqual(lab.difusores.map((d) => [d.id, 'live', undefined]));
}, T);

afterAll(async () => {
  await lab?.stop();
  if (cuts) await rm(cuts, { recursive: true, force: true });
}, T);

test('preflight names each forged line, escaped: an OSC 52 holder, a since of 20 digits, a forged hold', async () => {
  const [d1, d2] = lab.difusores as [LabDifusor, LabDifusor];
  await forge(d1, 'lease', `held ${ESC}]52;c;ZWNobyBwd25lZA==${ESC}\\ r 1 2\n`);
  await forge(d2, 'lease', 'held h r 99999999999999999999 2\n');
  await forge(d2, 'inspect', `hold x ${ESC}[8m r 1\n`);
  try {
    const exit = await spawnCli(['preflight', '--latest', cuts, '--registry', registry, '--probe-mb', '0'], { DIFUSION_HOST: 'b' }).exited;
    const all = exit.stdout + exit.stderr;
    expect(all).not.toMatch(CONTROLS);
    expect(all).not.toContain('Invalid time value');
    const section = exit.stdout.slice(exit.stdout.indexOf('takeover (as this host'));
    expect(section).toContain(`${d1.id}: lease show answered a held line that is not "held HOST RUN SINCE EXPIRY": "held \\u001b]52;c;ZWNobyBwd25lZA==\\u001b\\\\ r 1 2"`);
    expect(section).toContain(`${d2.id}: lease show answered a held line that is not "held HOST RUN SINCE EXPIRY": "held h r 99999999999999999999 2"`);
    expect(section).toContain(`would send: ${d2.id}: inspect answered a hold line that is not "hold CUT HOST RUN SINCE": "hold x \\u001b[8m r 1"`);
    // The difusores were reached: what they answered is named, not taken for an SSH failure.
    expect(all).not.toMatch(/ssh: /);
  } finally {
    await unforge(d1, 'lease');
    await unforge(d2, 'lease');
    await unforge(d2, 'inspect');
  }
}, T);

test('publish --latest fails only the forging difusores, naming them, the verb and the line; nothing moves there', async () => {
  const [d1, d2] = lab.difusores as [LabDifusor, LabDifusor];
  await forge(d1, 'lease', `held ${ESC}[31mprimario${ESC}[0m r 1 2\n`);
  await forge(d2, 'prepare', `hold x ${ESC}[8m r 1\n`);
  try {
    const result = await publish(registry, cuts, { latest: true });
    const byId = new Map(result.outcomes.map((o) => [o.id, o]));
    expect(byId.get(d1.id)).toMatchObject({ result: 'failed', error: `${d1.id}: lease take answered a held line that is not "held HOST RUN SINCE EXPIRY": "held \\u001b[31mprimario\\u001b[0m r 1 2"` });
    expect(byId.get(d2.id)).toMatchObject({ result: 'failed', error: `${d2.id}: prepare answered a hold line that is not "hold CUT HOST RUN SINCE": "hold x \\u001b[8m r 1"` });
    for (const o of result.outcomes) expect(o.error ?? '').not.toMatch(CONTROLS);
    expect(await Promise.all(lab.difusores.map((d) => liveCut(d.path)))).toEqual(lab.difusores.map(() => `releases/${CUTS[0]}`));
  } finally {
    await unforge(d1, 'lease');
    await unforge(d2, 'prepare');
  }
}, T);
