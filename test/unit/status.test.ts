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

// The status verb's answer is written by the difusor's admin: what preflight shows ("serving X"), what status and
// cutoff compare with the registry, must be what the helper writes, or the difusor is refused naming the line.
test.each([
  ['a live that clears the screen', 'live 20220605_2030\x1b[2J', 'a live that is not a cut id'],
  ['a live that writes the clipboard (OSC 52)', 'live \x1b]52;c;ZWNobyBwd25lZA==\x07', 'a live that is not a cut id'],
  ['a live that is a path', 'live ../../etc', 'a live that is not a cut id'],
  ['a notice with an 8-bit CSI', 'notice 20220605_211000\u009b2J', 'a notice that is not a stamp YYYYMMDD_HHMMSS'],
  ['a notice that is a cut', 'notice 20220605_2110', 'a notice that is not a stamp YYYYMMDD_HHMMSS'],
  ['a release with a bidi override', 'release 20220605_2015\u202e', 'a release that is not a cut id'],
  ['a free that is not a number', 'free lots', 'a free that is not a number of KB'],
  ['a protocol that is not a number', 'protocol 5\x1b[8m', 'a protocol that is not a number'],
  ['an rsync version that hides text', 'rsync 3.1.2\x1b[8mhidden', 'an rsync version that is not one'],
  ['a writable that is neither', 'writable maybe', 'a writable that is not yes or no'],
])('status refuses %s, naming the difusor and the line, escaped', (_what, line, what) => {
  let message = '';
  try {
    parseHelperStatus(`free 1\n${line}\n`, 'd1');
  } catch (error) {
    message = (error as Error).message;
  }
  expect(message).toMatch(new RegExp(`^d1: status answered ${what}: "`));
  // eslint-disable-next-line no-control-regex
  expect(message).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202e]/);
});

test('status: an empty free (df said nothing) and an empty rsync (none installed) are read, not refused', () => {
  expect(parseHelperStatus('free \nrsync \nprotocol 5\n')).toMatchObject({ freeKb: 0, rsync: '', protocol: 5 });
});

test('status: a difusor whose status fails says so escaped, never raw', async () => {
  const registry = { publication: { state_dir: '/nonexistent', timezone: TZ }, difusores: [] } as unknown as Registry;
  const d = { id: 'd1', name: 'D1', status: 'active' } as Difusor;
  const connector: DifusorConnector = {
    open: async () => ({ helper: async () => ({ code: 1, stdout: '', stderr: 'no\x1b]52;c;ZWNobw==\x07 way\n' }), close: () => undefined }) as unknown as DifusorSession,
  } as unknown as DifusorConnector;
  const report = await gatherStatus({ registry, targets: [d], connector, readRecord: async (id) => ({ id, history: [] }), timeoutMs: 5000 });
  expect(report.difusores[0]?.error).toBe('no\\u001b]52;c;ZWNobw==\\u0007 way');
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
