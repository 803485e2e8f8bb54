import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gatherStatus, lagOf, parseHelperStatus } from '../../src/core/publish/status.js';
import type { DifusorConnector, DifusorSession } from '../../src/core/difusor-port.js';
import type { Difusor, Registry } from '../../src/core/registry/types.js';
import { rsyncAtLeast31 } from '../../src/core/publish/preflight.js';
import { compareRelease } from '../../src/core/publish/verify.js';

const TZ = 'America/Mexico_City';
const PUBLISHED = ['20220605_2015_PREP_DGO', '20220605_2030_PREP_DGO', '20220605_2045_PREP_DGO', '20220605_2100_PREP_DGO'];

describe('lag behind the newest published cut', () => {
  test('in cuts and minutes', () => {
    expect(lagOf('20220605_2030_PREP_DGO', PUBLISHED, TZ)).toEqual({ cuts: 2, minutes: 30 });
    expect(lagOf('20220605_2100_PREP_DGO', PUBLISHED, TZ)).toEqual({ cuts: 0, minutes: 0 });
  });
  test('a difusor with nothing live lags by every published cut', () => {
    expect(lagOf(undefined, PUBLISHED, TZ)).toEqual({ cuts: 4 });
  });
  test('nothing published, no lag to speak of', () => {
    expect(lagOf('20220605_2030_PREP_DGO', [], TZ)).toEqual({});
  });
  test('across midnight, in the publication timezone', () => {
    expect(lagOf('20220605_2345', ['20220605_2345', '20220606_0000', '20220606_0015'], TZ)).toEqual({ cuts: 2, minutes: 30 });
  });
});

describe('the newest cut with the other host\'s journal', () => {
  let stateDir: string;
  beforeEach(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'difusion-status-'));
    // This host published the first two cuts (their manifests are in its state directory).
    for (const cut of PUBLISHED.slice(0, 2)) await mkdir(join(stateDir, 'cuts', cut), { recursive: true });
  });
  afterEach(async () => {
    await rm(stateDir, { recursive: true, force: true });
  });

  const difusor = { id: 'ujed', name: 'UJED', status: 'active' } as Difusor;
  const connector: DifusorConnector = {
    open: async () => ({ helper: async () => ({ code: 0, stdout: `live ${PUBLISHED[1]}\n`, stderr: '' }), close: () => undefined }) as unknown as DifusorSession,
    dispose: async () => undefined,
  };
  const gather = (alsoPublished?: string[]) =>
    gatherStatus({
      registry: { publication: { state_dir: stateDir, timezone: TZ } } as Registry,
      targets: [difusor],
      connector,
      readRecord: async () => ({ id: 'ujed', history: [] }),
      timeoutMs: 5000,
      ...(alsoPublished ? { alsoPublished } : {}),
    });

  test('alone, the newest is what this host published', async () => {
    const report = await gather();
    expect({ newest: report.newest, lag: report.difusores[0]?.lagCuts }).toEqual({ newest: PUBLISHED[1], lag: 0 });
  });

  test('the cuts the other host switched to count: the newest and the lag are the night\'s', async () => {
    const report = await gather([PUBLISHED[3] as string, PUBLISHED[2] as string, PUBLISHED[1] as string]);
    expect({ newest: report.newest, lag: report.difusores[0]?.lagCuts, minutes: report.difusores[0]?.lagMinutes }).toEqual({ newest: PUBLISHED[3], lag: 2, minutes: 30 });
  });
});

test('the helper status lines', () => {
  const status = parseHelperStatus(
    'live 20220605_2030\nrelease 20220605_2015\nrelease 20220605_2030\nfree 1048576\nrsync 3.1.2\nwritable yes\n',
  );
  expect(status).toEqual({
    live: '20220605_2030',
    currentInvalid: false,
    releases: ['20220605_2015', '20220605_2030'],
    freeKb: 1048576,
    rsync: '3.1.2',
    writable: true,
    aviso: false,
  });
  expect(parseHelperStatus('current-invalid\nwritable no\n')).toMatchObject({ currentInvalid: true, writable: false });
  // A suspended difusor: current is its notice, not a cut.
  const suspended = parseHelperStatus('notice 20220605_211000\nrelease 20220605_2015\n');
  expect(suspended.live).toBeUndefined();
  expect(suspended).toMatchObject({
    notice: '20220605_211000',
    aviso: true,
    currentInvalid: false,
    releases: ['20220605_2015'],
  });
});

test.each([
  ['3.1.2', true],
  ['3.0.9', false],
  ['3.2.7', true],
  ['4.0.0', true],
  ['', false],
  [undefined, false],
])('rsync %s is at least 3.1: %s', (version, ok) => {
  expect(rsyncAtLeast31(version)).toBe(ok);
});

test('a release compared with its manifest names every difference once', () => {
  const a = 'a'.repeat(64);
  const manifest = `${a}  index.html\n${a}  datos/x.csv\n${a}  con espacio.json\n`;
  const differences = compareRelease(
    manifest,
    {
      checkExit: 1,
      failures: ['index.html: FAILED', 'sha256sum: WARNING: 1 computed checksum did NOT match'],
      files: new Map([
        ['index.html', 10],
        ['con espacio.json', 7],
        ['MANIFEST.sha256', 200],
        ['intruso.html', 3],
      ]),
      others: ['enlace'],
    },
    new Map([
      ['index.html', 10],
      ['con espacio.json', 8],
      ['datos/x.csv', 5],
    ]),
  );
  expect(differences).toEqual([
    'index.html: FAILED',
    'enlace: not a regular file',
    'datos/x.csv: missing',
    'con espacio.json: 7 bytes, expected 8',
    'intruso.html: not in the manifest',
  ]);
});
