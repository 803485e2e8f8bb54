import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startLab, type Lab } from './lab/sshd.js';
import { startApache, type Apache } from './lab/apache.js';
import { writeCut } from '../../bench/prep-cut.js';
import { get, stampOf } from './support/http.js';
import { publish } from './support/publish.js';

const T = 180_000;
const SHAPE = { casillas: 80, counted: 10, imageBytes: 20_000, seed: 'apache' };
const CUTS = ['20220605_2015_PREP_DGO', '20220605_2030_PREP_DGO', '20220605_2045_PREP_DGO', '20220605_2100_PREP_DGO', '20220605_2115_PREP_DGO'];

let lab: Lab;
let apache: Apache;
let cuts: string;
let registry: string;

beforeAll(async () => {
  lab = await startLab({ difusores: 1 });
  registry = await lab.writeRegistry();
  cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-apache-'));
  let previous: string | undefined;
  for (const [i, cut] of CUTS.entries()) {
    await writeCut(path.join(cuts, cut), cut, { ...SHAPE, counted: SHAPE.counted + 10 * i }, previous);
    previous = path.join(cuts, cut);
  }
  const first = await publish(registry, path.join(cuts, CUTS[0]));
  expect(first.exitCode).toBe(0);
  apache = await startApache({ docRoot: path.join(lab.difusores[0].path, 'current') });
}, T);

afterAll(async () => {
  await apache?.stop();
  await lab?.stop();
  if (cuts) await rm(cuts, { recursive: true, force: true });
}, T);

test('visitors under steady load never see an error, a missing file or a mix while cuts are switched', async () => {
  const failures: string[] = [];
  const seen = new Set<string>();
  let requests = 0;
  let stop = false;
  const paths = ['/', '/index.html', '/datos/resumen.json', '/datos/DGO_GUB_2022.csv', '/casillas/0001-B.html', '/actas/0001-B_A.jpg'];

  // Bounded: 6 clients, each stops when the publishes are done or after two minutes.
  const deadline = Date.now() + 120_000;
  const client = async (n: number): Promise<void> => {
    for (let i = 0; !stop && Date.now() < deadline; i++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      const p = paths[(n + i) % paths.length];
      const res = await get(`${apache.url}${p}`);
      requests++;
      if (res.status !== 200) failures.push(`${p}: ${res.status} ${res.body.slice(0, 80)}`);
      else if (p === '/' || p === '/index.html') {
        const stamp = stampOf(res.body);
        if (!stamp || !CUTS.some((c) => c.startsWith(stamp))) failures.push(`${p}: unexpected body ${res.body.slice(0, 80)}`);
        else seen.add(stamp);
      }
    }
  };
  const load = Promise.all(Array.from({ length: 6 }, (_, n) => client(n)));

  for (const cut of CUTS.slice(1)) {
    const result = await publish(registry, path.join(cuts, cut));
    expect(result.outcomes[0]).toMatchObject({ result: 'live' });
    // Right after the switch, a new request is served the new cut.
    const fresh = await get(`${apache.url}/index.html`);
    expect(fresh.status).toBe(200);
    expect(stampOf(fresh.body)).toBe(cut.slice(0, 13));
  }
  stop = true;
  await load;

  expect(failures).toEqual([]);
  expect(requests).toBeGreaterThan(100);
  expect(seen.size).toBeGreaterThanOrEqual(3);
}, T);
