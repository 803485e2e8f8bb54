import { Console } from 'node:console';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Config } from '@oclif/core';
import { runCommand } from '@oclif/test';
import { preloadCommands } from './support.js';

// oclif writes through console.log/error; jest's console decorates and merges them, a plain one keeps stdout and stderr apart.
globalThis.console = new Console({ stdout: process.stdout, stderr: process.stderr });

function validate(...args: string[]) {
  return runCommand<Record<string, unknown>>(['validate', ...args], { root: process.cwd() });
}

const SAMPLE = readFileSync('difusores.yaml', 'utf8');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'difusion-validate-'));
  await preloadCommands();
  await Config.load({ root: process.cwd() });
}, 60_000);

afterEach(() => {
  delete process.env.DIFUSION_REGISTRY;
  process.exitCode = undefined;
});

async function registryFile(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

/** The sample with its timezone misspelt and one difusor's host broken: two problems. */
function brokenSample(): string {
  const text = SAMPLE.replace('timezone: America/Mexico_City', 'timezone: America/Mexico_Cty').replace(
    'host: espejo.itvg.example',
    'host: -oProxyCommand=sh',
  );
  expect(text).not.toBe(SAMPLE);
  return text;
}

function lineOf(text: string, fragment: string): number {
  return text.split('\n').findIndex((line) => line.includes(fragment)) + 1;
}

describe('difusion validate', () => {
  it('accepts the bundled difusores.yaml and summarises it', async () => {
    const { stdout, stderr, error } = await validate('--registry', 'difusores.yaml');
    expect(error).toBeUndefined();
    expect(stdout).toBe(
      'difusores.yaml: valid — 8 difusores (7 active, 1 suspended), window 2022-06-05 20:00 → 2022-06-06 20:00 America/Mexico_City\n',
    );
    expect(stderr).toBe('');
  });

  it('reads ./difusores.yaml by default', async () => {
    const { stdout, error } = await validate();
    expect(error).toBeUndefined();
    expect(stdout).toMatch(/^difusores\.yaml: valid — 8 difusores/);
  });

  it('takes the registry from DIFUSION_REGISTRY', async () => {
    const file = await registryFile('from-env.yaml', brokenSample());
    process.env.DIFUSION_REGISTRY = file;
    const { stderr, error } = await validate();
    expect(error?.oclif?.exit).toBe(2);
    expect(stderr).toContain(`${file}:`);
  });

  it('answers --json with the difusores', async () => {
    const { stdout, result, error } = await validate('--registry', 'difusores.yaml', '--json');
    expect(error).toBeUndefined();
    const printed = JSON.parse(stdout);
    expect(printed).toEqual(result);
    expect(printed.valid).toBe(true);
    expect(printed.file).toBe(path.resolve('difusores.yaml'));
    expect(printed.difusores).toHaveLength(8);
    expect(printed.difusores).toContainEqual({ id: 'canal-12', status: 'suspended', transport: 'ssh' });
    expect(printed.difusores).toContainEqual({ id: 'espejo-local', status: 'active', transport: 'local' });
  });

  it('prints every problem as FILE:LINE:COL field: message and exits 2', async () => {
    const text = brokenSample();
    const file = await registryFile('broken.yaml', text);
    const { stdout, stderr, error } = await validate('--registry', file);
    expect(error?.oclif?.exit).toBe(2);
    expect(stdout).toBe('');
    const timezoneLine = lineOf(text, 'timezone: America/Mexico_Cty');
    const hostLine = lineOf(text, 'host: -oProxyCommand=sh');
    expect(stderr.split('\n')).toEqual([
      `${file}:${timezoneLine}:13 publication.timezone: unknown time zone "America/Mexico_Cty"; use an IANA name such as America/Mexico_City`,
      `${file}:${hostLine}:11 difusores[1].host: must not start with "-"`,
      `${file}: invalid — 2 problems`,
      '',
    ]);
  });

  it('answers --json with the problems and exits 2', async () => {
    const file = await registryFile('broken-json.yaml', brokenSample());
    const { stdout, error } = await validate('--registry', file, '--json');
    expect(error?.oclif?.exit).toBe(2);
    const printed = JSON.parse(stdout);
    expect(printed.valid).toBe(false);
    expect(printed.file).toBe(file);
    expect(printed.problems.map((p: { field: string }) => p.field)).toEqual(['publication.timezone', 'difusores[1].host']);
    expect(printed.problems[0]).toMatchObject({ file, col: 13 });
  });

  it('reports a YAML syntax error with its line', async () => {
    const file = await registryFile('syntax.yaml', 'version: 1\npublication: { timezone: UTC\ndifusores: []\n');
    const { stderr, error } = await validate('--registry', file);
    expect(error?.oclif?.exit).toBe(2);
    expect(stderr).toMatch(new RegExp(`^${file}:2:14 Flow map`));
  });

  it('exits 2 when the file does not exist', async () => {
    const { stderr, error } = await validate('--registry', path.join(dir, 'missing.yaml'));
    expect(error?.oclif?.exit).toBe(2);
    expect(stderr).toContain('missing.yaml:1:1 no such file; pass --registry FILE or set DIFUSION_REGISTRY');
  });

  it('does not touch the registry it checks', async () => {
    const file = await registryFile('untouched.yaml', SAMPLE);
    await validate('--registry', file);
    expect(await readFile(file, 'utf8')).toBe(SAMPLE);
  });
});
