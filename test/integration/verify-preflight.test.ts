import { appendFile, mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startLab, type Lab } from './lab/sshd.js';
import { startApache, type Apache } from './lab/apache.js';
import { freePort } from './lab/procs.js';
import { writeCut } from '../../bench/prep-cut.js';
import { publish } from './support/publish.js';
import { loadRegistry } from '../../src/core/registry/registry.js';
import { verifyDifusores } from '../../src/core/publish/verify.js';
import { preflight } from '../../src/core/publish/preflight.js';
import { StateStore } from '../../src/core/records/state.js';
import { createConnector } from '../../src/adapters/difusor.js';
import { httpGet } from '../../src/adapters/http.js';
import type { Registry } from '../../src/core/registry/types.js';

const T = 120_000;
const CUT = '20220605_2015_PREP_DGO';

let lab: Lab;
let apache: Apache;
let cuts: string;
let registryFile: string;
let registry: Registry;

async function verify(full: boolean) {
  const state = new StateStore(registry.publication.state_dir);
  const connector = await createConnector(registry, registry.difusores);
  try {
    return await verifyDifusores(
      registry.difusores,
      { full, concurrency: 4, sizesOf: (cut) => state.sizesOf(cut) },
      { connector, manifestOf: (cut) => state.manifestText(cut) },
    );
  } finally {
    await connector.dispose();
  }
}

beforeAll(async () => {
  lab = await startLab({ difusores: 2 });
  cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-verify-'));
  await writeCut(path.join(cuts, CUT), CUT, { casillas: 30, counted: 10, imageBytes: 4000, seed: 'verify' });
  const port = await freePort('127.0.0.1');
  registryFile = await lab.writeRegistry({ difusores: { [lab.difusores[0].id]: { public_url: `http://127.0.0.1:${port}/` } } });
  const loaded = await loadRegistry(registryFile);
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
  registry = loaded.registry;
  expect((await publish(registryFile, path.join(cuts, CUT))).exitCode).toBe(0);
  // Apache needs its DocumentRoot to exist when it starts: the first publish creates `current`.
  apache = await startApache({ docRoot: path.join(lab.difusores[0].path, 'current'), port });
}, T);

afterAll(async () => {
  await apache?.stop();
  await lab?.stop();
  if (cuts) await rm(cuts, { recursive: true, force: true });
}, T);

describe('verify', () => {
  test('whole releases verify quick and full', async () => {
    expect((await verify(false)).exitCode).toBe(0);
    const full = await verify(true);
    expect(full.exitCode).toBe(0);
    expect(full.difusores.every((r) => r.checkedFiles > 0 && r.result === 'ok')).toBe(true);
  }, T);

  test('a same-size edit with its mtime restored escapes the quick check and is named by --full; extras and missing files are named by both', async () => {
    const [a, b] = lab.difusores;
    const page = path.join(a.path, 'current', 'index.html');
    const before = await stat(page);
    const text = await readFile(page, 'utf8');
    await writeFile(page, text.replace('PREP', 'PREQ'));
    await utimes(page, before.atime, before.mtime);
    await appendFile(path.join(b.path, 'current', 'datos', 'resumen.json'), ' ');
    await writeFile(path.join(b.path, 'current', 'extra.html'), 'not published');
    await rm(path.join(b.path, 'current', 'casillas', '0001-B.html'));

    const quick = await verify(false);
    expect(quick.exitCode).toBe(6);
    expect(quick.difusores[0]).toMatchObject({ id: a.id, result: 'ok' });
    expect(quick.difusores[1].differences).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^datos\/resumen\.json: \d+ bytes, expected \d+$/),
        'extra.html: not in the manifest',
        'casillas/0001-B.html: missing',
      ]),
    );
    const full = await verify(true);
    expect(full.difusores[0]).toMatchObject({ result: 'differs', differences: ['index.html: FAILED'] });
  }, T);
});

describe('preflight', () => {
  test('ready where SSH, helper, rsync, write access, disk and HTTP are fine; each failure named', async () => {
    const [a, b] = lab.difusores;
    const connector = await createConnector(registry, registry.difusores);
    await b.stop();
    try {
      const report = await preflight(registry.difusores, { neededBytes: 1024, httpTimeoutMs: 2000 }, { connector, httpGet });
      expect(report.exitCode).toBe(3);
      const rowA = report.difusores.find((r) => r.id === a.id);
      expect(rowA?.ready).toBe(true);
      expect(rowA?.checks.map((c) => c.name)).toEqual(['ssh', 'helper', 'rsync', 'write', 'disk', 'http']);
      const rowB = report.difusores.find((r) => r.id === b.id);
      expect(rowB?.ready).toBe(false);
      expect(rowB?.checks.find((c) => c.name === 'ssh')).toMatchObject({ ok: false, detail: expect.stringContaining(`${b.host}:${b.port}`) });

      const huge = await preflight([registry.difusores[0]], { neededBytes: 2 ** 60, httpTimeoutMs: 2000 }, { connector, httpGet });
      expect(huge.difusores[0].checks.find((c) => c.name === 'disk')).toMatchObject({ ok: false });
    } finally {
      await connector.dispose();
      await b.start();
    }
  }, T);
});
