import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { startLab, type Lab } from './lab/sshd.js';
import { writeCut } from '../../bench/prep-cut.js';
import { checkLive, liveCut, publish } from './support/publish.js';
import { parseRegistry } from '../../src/core/registry/registry.js';

/** Registry strings that reach a command line must arrive as data, never as shell. */
const T = 120_000;
const CUT = '20220605_2015_PREP_DGO';

let lab: Lab;
let cuts: string;
const canary = path.join(os.tmpdir(), `difusion-injected-${process.pid}`);
const PAYLOADS = [`$(touch ${canary})`, `\`touch ${canary}\``, `'; touch ${canary}; '`, `"; touch ${canary}; "`, `x\ntouch ${canary}`];

beforeAll(async () => {
  lab = await startLab({ difusores: 1 });
  cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-injection-'));
  await writeCut(path.join(cuts, CUT), CUT, { casillas: 12, counted: 4, imageBytes: 2000, seed: 'inj' });
}, T);

afterAll(async () => {
  await lab?.stop();
  await rm(cuts, { recursive: true, force: true });
  await rm(canary, { force: true });
}, T);

test.each(['id', 'host', 'user', 'port', 'host_key', 'public_url', 'transport', 'access', 'status'])(
  'an injection attempt in difusores[0].%s is refused by validation, at that field',
  (field) => {
    for (const payload of PAYLOADS) {
      const doc = {
        version: 1,
        publication: { timezone: 'America/Mexico_City', window: { start: '2022-06-05T20:00', end: '2022-06-06T20:00' } },
        difusores: [
          {
            id: 'ujed',
            name: 'UJED',
            host: 'prep.ujed.example',
            user: 'prep',
            host_key: lab.difusores[0].hostKey,
            path: '/var/www/prep',
            public_url: 'https://prep.ujed.example/',
            [field]: payload,
          },
        ],
      };
      const result = parseRegistry(stringify(doc), 'difusores.yaml');
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.problems.map((p) => p.field)).toContain(`difusores[0].${field}`);
    }
  },
);

test('a difusor path and an identity file full of shell syntax are carried as data, end to end over SSH and rsync', async () => {
  const d = lab.difusores[0];
  const hostilePath = path.join(d.path, `evil $(touch ${canary}) '; touch ${canary}; ' "x" -n`);
  await mkdir(hostilePath, { recursive: true });
  const keyDir = path.join(lab.dir, `key dir $(touch ${canary}) 'q'`);
  await mkdir(keyDir, { recursive: true });
  const identity = path.join(keyDir, 'id key');
  await copyFile(lab.clientKeyFile, identity);
  const registry = await lab.writeRegistry(
    {
      publication: { ssh: { identity_file: identity, connect_timeout_s: 10 } },
      difusores: { [d.id]: { path: hostilePath, name: `Difusor $(touch ${canary}) "quoted"` } },
    },
    path.join(lab.dir, 'hostile.yaml'),
  );
  const result = await publish(registry, path.join(cuts, CUT));
  expect(result.outcomes[0]).toMatchObject({ result: 'live' });
  expect(await liveCut(hostilePath)).toBe(`releases/${CUT}`);
  expect(await checkLive(hostilePath)).toEqual({ ok: true, output: '' });
  expect(existsSync(canary)).toBe(false);
}, T);
