import { Console } from 'node:console';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Config } from '@oclif/core';
import { runCommand } from '@oclif/test';
import { preloadCommands } from './support.js';
import { lines } from '../support/logs.js';

globalThis.console = new Console({ stdout: process.stdout, stderr: process.stderr });

let dir: string;
let registry: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'difusion-report-cmd-'));
  await mkdir(path.join(dir, 'espejo', 'logs'), { recursive: true });
  await writeFile(
    path.join(dir, 'espejo', 'logs', 'access_log'),
    lines([{ at: '2022-06-05 20:00:00' }, { at: '2022-06-05 20:00:05', url: '/datos/PREP.csv' }, { at: '2022-06-13 00:00:00' }]) + 'not a log line\n',
  );
  registry = path.join(dir, 'difusores.yaml');
  await writeFile(
    registry,
    [
      'version: 1',
      'publication:',
      '  timezone: America/Mexico_City',
      "  window: { start: '2022-06-05T20:00', end: '2022-06-06T20:00' }",
      `  state_dir: ${dir}/state`,
      'difusores:',
      '  - id: espejo',
      '    name: Espejo local',
      '    transport: local',
      `    path: ${dir}/espejo`,
      '    public_url: http://localhost/prep/',
      `    access_log: ${dir}/espejo/logs/access_log*`,
      '',
    ].join('\n'),
  );
  await preloadCommands();
  await Config.load({ root: process.cwd() });
}, 60_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

afterEach(() => {
  process.exitCode = undefined;
});

const report = (...args: string[]) => runCommand<Record<string, unknown>>(['report', '--registry', registry, ...args], { root: process.cwd() });

test('a local difusor is read in place: the table, the files and the JSON agree', async () => {
  const out = path.join(dir, 'out');
  const { stdout, error } = await report('--from', '2022-06-05', '--to', '2022-06-12', '--out', out);
  expect(error).toBeUndefined();
  expect(stdout).toMatch(/espejo\s+ok\s+1\s+1\s+1\s+2\s/);
  const json = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8'));
  expect(json.difusores[0]).toMatchObject({ id: 'espejo', hits: 2, pages: 1, visits: 1, visitors: 1, malformed: 1, outside: 1 });
  expect(json.period).toEqual({ from: '2022-06-05', to: '2022-06-12', days: 8 });
  expect(await readFile(path.join(out, 'espejo.csv'), 'utf8')).toMatch(/^tipo,clave,visitas,visitantes,paginas,hits,bytes\r\ntotal,,1,1,1,2,2000\r\n/);
  expect(await readFile(path.join(out, 'index.html'), 'utf8')).toMatch(/<html lang="es">/);
});

test.each([
  [['--from', '2022-06-31', '--to', '2022-07-01'], /--from "2022-06-31" is not a date/],
  [['--from', '2022-06-12', '--to', '2022-06-05'], /--to 2022-06-05 is before --from 2022-06-12/],
  [['--from', '2022-06-05', '--to', '2022-06-06', '--only', 'nadie'], /unknown difusor "nadie" in --only/],
  [['--from', '2022-06-05', '--to', '2022-06-06', '--baseline-from', '2022-05-01'], /baseline-to/],
])('bad usage is refused with exit 2: %s', async (args, message) => {
  const { error } = await report(...args, '--out', path.join(dir, 'never'));
  expect(error?.message).toMatch(message);
  expect(error?.oclif?.exit).toBe(2);
});
