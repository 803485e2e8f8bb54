import { localDifusor } from './support/difusor.js';
import { describeLease, parseLeaseShow, readTakeover, wouldSend, type LeaseView, type TakeoverOptions } from '../../src/core/publish/takeover.js';
import { preflight } from '../../src/core/publish/preflight.js';
import { manifestText, sha256Hex, type Manifest } from '../../src/core/shared/manifest.js';
import type { DifusorConnector, DifusorSession, HelperOutput } from '../../src/core/difusor-port.js';

const TZ = 'America/Mexico_City';
// 2022-06-05 20:15:02 in Mexico City, then on summer time (UTC-5).
const SINCE = Date.UTC(2022, 5, 6, 1, 15, 2) / 1000;

function manifestOf(entries: Array<{ path: string; size: number; sha256: string }>): Manifest {
  const text = manifestText(entries);
  return { entries, text, digest: sha256Hex(text), totalBytes: entries.reduce((n, e) => n + e.size, 0) };
}

const NEW = manifestOf([
  { path: 'index.html', size: 100, sha256: 'a'.repeat(64) },
  { path: 'actas/1.jpg', size: 5000, sha256: 'b'.repeat(64) },
  { path: 'actas/2.jpg', size: 7000, sha256: 'c'.repeat(64) },
]);
const OLD = manifestOf([
  { path: 'index.html', size: 90, sha256: 'd'.repeat(64) },
  { path: 'actas/1.jpg', size: 5000, sha256: 'b'.repeat(64) },
]);

/** inspect's answer for a difusor holding `base` (its manifest `m`), serving `live`. */
function inspectAnswer(live: string | undefined, base: string | undefined, m: Manifest | undefined): string {
  return [
    ...(live ? [`live ${live}`] : []),
    'free 1000000',
    ...(base ? [`base ${base}`] : []),
    ...(m ? [`manifest ${m.digest}`, ...m.entries.map((e) => `f ${e.size} ${e.path}`), `f ${m.text.length} MANIFEST.sha256`] : []),
  ].join('\n');
}

function session(answers: Record<string, HelperOutput>, asked: string[] = []): DifusorSession {
  return {
    helper: async (verb, args) => {
      asked.push([verb, ...args].join(' '));
      return answers[verb] ?? { code: 2, stdout: '', stderr: `difusion-helper: refused: unknown verb ${verb}` };
    },
    transfer: async () => ({ filesSent: 0, bytesSent: 0 }),
    close: () => undefined,
  };
}

const ok = (stdout: string): HelperOutput => ({ code: 0, stdout, stderr: '' });

function options(over: Partial<TakeoverOptions> = {}): TakeoverOptions {
  return { host: 'b', leaseSeconds: 120, timezone: TZ, manifestHashes: async () => undefined, ...over };
}

describe('the lease as preflight tells it', () => {
  it('reads lease show: free, held, and the expired holder a newer helper names', () => {
    expect(parseLeaseShow('now 100\nfree\n', 'b')).toEqual({ state: 'free', now: 100 });
    expect(parseLeaseShow('now 100\nheld a r1 90 190\n', 'b')).toEqual({ state: 'held', now: 100, holder: { host: 'a', run: 'r1', since: 90, expiry: 190 }, mine: false });
    expect(parseLeaseShow('now 100\nheld b r1 90 190\n', 'b')).toMatchObject({ state: 'held', mine: true });
    expect(parseLeaseShow('now 100\nexpired a r1 10 40\n', 'b')).toMatchObject({ state: 'expired', holder: { host: 'a' } });
  });

  it('refuses an answer it cannot read, naming the difusor, the verb and the line', () => {
    const from = { verb: 'lease show', difusor: 'd1' };
    expect(() => parseLeaseShow('held a r1 90 190\n', 'b', from)).toThrow('d1: lease show answered no "now" first: "held a r1 90 190"');
    expect(() => parseLeaseShow('now 100\nheld a r1 x 190\n', 'b', from)).toThrow('d1: lease show answered a held line that is not "held HOST RUN SINCE EXPIRY": "held a r1 x 190"');
    expect(() => parseLeaseShow('now 100\n', 'b', from)).toThrow('d1: lease show answered no lease: "now 100"');
    expect(() => parseLeaseShow('now 100\nyours\n', 'b')).toThrow('lease show answered an unexpected line: "yours"');
  });

  it.each([
    ['an OSC 52 clipboard write as the host', 'now 5\nheld \x1b]52;c;ZWNobyBwd25lZA==\x1b\\ r 1 2\n', '"held \\u001b]52;c;ZWNobyBwd25lZA==\\u001b\\\\ r 1 2"'],
    ['a screen clear as the run', 'now 5\nexpired a \x1b[2J 1 2\n', '"expired a \\u001b[2J 1 2"'],
    ['an 8-bit CSI (C1) in the host', 'now 5\nheld a\u009b31m r 1 2\n', '"held a\\u009b31m r 1 2"'],
    ['a since of 20 digits', 'now 5\nheld h r 99999999999999999999 2\n', '"held h r 99999999999999999999 2"'],
    ['an expiry of 13 digits', 'now 5\nheld h r 1 1000000000000\n', '"held h r 1 1000000000000"'],
    ['a now of 13 digits', 'now 1000000000000\nfree\n', '"now 1000000000000"'],
    ['a host of 65 characters', `now 5\nheld ${'h'.repeat(65)} r 1 2\n`, `"held ${'h'.repeat(65)} r 1 2"`],
    ['a host starting with -', 'now 5\nheld -h r 1 2\n', '"held -h r 1 2"'],
  ])('refuses %s, the line shown escaped (never raw bytes)', (_what, stdout, shown) => {
    let message = '';
    try {
      parseLeaseShow(stdout, 'b', { verb: 'lease show', difusor: 'd1' });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/^d1: lease show answered /);
    expect(message.endsWith(shown)).toBe(true);
    // eslint-disable-next-line no-control-regex
    expect(message).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
  });

  it('reads the largest times the helper writes (12 digits)', () => {
    expect(parseLeaseShow('now 999999999999\nheld a r1 999999999990 999999999999\n', 'b')).toMatchObject({ state: 'held', now: 999_999_999_999 });
    expect(describeLease(parseLeaseShow('now 999999999999\nheld a r1 999999999990 999999999999\n', 'b'), TZ)).toMatch(/^held by a \(run r1\) since .*33658.*expires in 0 s/);
  });

  it('never throws describing a lease, whatever its times (one no Date holds is said as the number)', () => {
    const huge: LeaseView = { state: 'held', now: 1, holder: { host: 'h', run: 'r', since: 1e20, expiry: 2 }, mine: false };
    expect(describeLease(huge, TZ)).toBe("held by h (run r) since 100000000000000000000 (epoch s), expires in 1 s (the difusor's clock)");
    expect(describeLease({ ...huge, state: 'expired', holder: { ...huge.holder, since: Number.NaN } }, TZ)).toMatch(/^expired 0 s ago, held by h \(run r\) since NaN \(epoch s\)/);
    // A view built elsewhere with an odd name: shown escaped, not raw.
    expect(describeLease({ ...huge, holder: { ...huge.holder, host: '\x1b[2J', since: SINCE } }, TZ)).toBe(
      'held by "\\u001b[2J" (run r) since 2022-06-05 20:15:02 (UTC-5), expires in 1 s (the difusor\'s clock)',
    );
  });

  it('says who holds it, since when in local time, and for how long on the difusor\'s clock', () => {
    const held: LeaseView = { state: 'held', now: SINCE + 27, holder: { host: 'a', run: 'r1', since: SINCE, expiry: SINCE + 120 }, mine: false };
    expect(describeLease(held, TZ)).toBe("held by a (run r1) since 2022-06-05 20:15:02 (UTC-5), expires in 93 s (the difusor's clock)");
    expect(describeLease({ ...held, holder: { ...held.holder, host: 'b' }, mine: true }, TZ)).toBe(
      "held by b (run r1, this host) since 2022-06-05 20:15:02 (UTC-5), expires in 93 s (the difusor's clock): a publish from here takes it over at once (one run at a time per host)",
    );
    expect(describeLease({ ...held, state: 'expired', now: SINCE + 150 }, TZ)).toBe(
      'expired 30 s ago, held by a (run r1) since 2022-06-05 20:15:02 (UTC-5): a dead holder, a publish takes it over',
    );
    expect(describeLease({ state: 'free', now: 1 }, TZ)).toBe('free');
    expect(describeLease({ state: 'unknown', detail: 'lease show failed: x' }, TZ)).toBe('unknown: lease show failed: x');
  });
});

describe('what a publish from this host would send', () => {
  const free: LeaseView = { state: 'free', now: 1 };
  const plan = { kind: 'new-release' as const, send: [{ size: 100 }, { size: 7000 }], linked: 1, bytesToSend: 7100, base: '20220605_2000_PREP' };

  it('names a new release with its counts, linked files and base', () => {
    expect(wouldSend({ cut: '20220605_2015_PREP', byName: false, lease: free, report: { live: '20220605_2000_PREP', files: new Map(), others: [] }, plan })).toEqual({
      cut: '20220605_2015_PREP',
      kind: 'new-release',
      plan: 'new-release',
      files: 2,
      bytes: 7100,
      linked: 1,
      base: '20220605_2000_PREP',
      detail: 'a new release 20220605_2015_PREP: 2 files / 7100 bytes (linked: 1 file from 20220605_2000_PREP)',
    });
  });

  it('leaves a difusor another host holds alone, and refuses one serving a newer cut', () => {
    const held: LeaseView = { state: 'held', now: 1, holder: { host: 'a', run: 'r1', since: 0, expiry: 100 }, mine: false };
    const report = { live: '20220605_2000_PREP', files: new Map(), others: [] };
    expect(wouldSend({ cut: '20220605_2015_PREP', byName: false, lease: held, report, plan }).detail).toBe(
      'left alone: held by a (otherwise: a new release 20220605_2015_PREP: 2 files / 7100 bytes (linked: 1 file from 20220605_2000_PREP))',
    );
    // Already serving the cut whole: up to date, no lease taken, whoever holds it.
    const upToDate = { ...plan, kind: 'up-to-date' as const, send: [], bytesToSend: 0 };
    expect(wouldSend({ cut: '20220605_2000_PREP', byName: false, lease: held, report, plan: upToDate })).toMatchObject({
      kind: 'up-to-date',
      detail: 'up to date: 20220605_2000_PREP is live and whole, nothing to send (no lease needed: held by a)',
    });
    // This host's own name is no reason to leave it alone (publish takes such a lease over at once).
    expect(wouldSend({ cut: '20220605_2015_PREP', byName: false, lease: { ...held, mine: true }, report, plan }).kind).toBe('new-release');
    expect(wouldSend({ cut: '20220605_1945_PREP', byName: false, lease: free, report, plan })).toMatchObject({
      kind: 'newer-live',
      detail: 'refused: a newer cut is live: 20220605_2000_PREP (this run\'s cut is 20220605_1945_PREP; only difusion rollback moves a difusor back)',
    });
  });

  it("with --latest leaves a difusor a rollback holds on an older cut alone; a publish by name lifts the hold", () => {
    const hold = { cut: '20220605_2000_PREP', host: 'a', run: 'r9', since: SINCE };
    const report = { live: '20220605_2000_PREP', hold, files: new Map(), others: [] };
    expect(wouldSend({ cut: '20220605_2015_PREP', byName: false, lease: free, report, plan })).toMatchObject({
      kind: 'rollback-hold',
      detail: 'left alone: held on 20220605_2000_PREP by a rollback of a since 2022-06-06T01:15:02Z: publish 20220605_2015_PREP by name to lift it',
    });
    expect(wouldSend({ cut: '20220605_2015_PREP', byName: true, lease: free, report, plan })).toMatchObject({
      kind: 'new-release',
      liftsHold: '20220605_2000_PREP',
      detail: 'lifts the rollback hold on 20220605_2000_PREP of a, then a new release 20220605_2015_PREP: 2 files / 7100 bytes (linked: 1 file from 20220605_2000_PREP)',
    });
  });

  it('over a session: up to date where the cut is live, with an empty state dir (its own manifest known by digest)', async () => {
    const asked: string[] = [];
    const s = session({ lease: ok('now 100\nfree\n'), inspect: ok(inspectAnswer('20220605_2015_PREP', '20220605_2015_PREP', NEW)) }, asked);
    const view = await readTakeover(s, localDifusor('d1'), { live: '20220605_2015_PREP' }, options({ cut: { cut: '20220605_2015_PREP', manifest: NEW, signed: false, byName: false } }));
    expect(view).toMatchObject({ leaseDetail: 'free', serves: '20220605_2015_PREP', send: { kind: 'up-to-date', files: 0, bytes: 0 } });
    expect(view.send?.detail).toBe('up to date: 20220605_2015_PREP is live and whole, nothing to send');
    // Only verbs that write nothing; the lease counted as a take would count it.
    expect(asked).toEqual(['lease show 120', 'inspect 20220605_2015_PREP']);
  });

  it('over a session: a new release, linked from the base where its manifest is known, whole where it is not', async () => {
    const s = session({ lease: ok('now 100\nfree\n'), inspect: ok(inspectAnswer('20220605_2000_PREP', '20220605_2000_PREP', OLD)) });
    const cut = { cut: '20220605_2015_PREP', manifest: NEW, signed: false, byName: false };
    const known = await readTakeover(s, localDifusor('d1'), { live: '20220605_2000_PREP' }, options({
      cut,
      manifestHashes: async (base, digest) => (base === '20220605_2000_PREP' && digest === OLD.digest ? new Map(OLD.entries.map((e) => [e.path, e.sha256])) : undefined),
    }));
    expect(known.send).toMatchObject({ kind: 'new-release', files: 2, bytes: 7100, linked: 1 });
    const unknown = await readTakeover(s, localDifusor('d1'), { live: '20220605_2000_PREP' }, options({ cut }));
    expect(unknown.send).toMatchObject({ kind: 'new-release', files: 3, bytes: 12100, linked: 0 });
  });

  it('says what a suspended difusor shows, or that nothing is live yet', async () => {
    const s = session({ lease: ok('now 100\nfree\n') });
    expect((await readTakeover(s, localDifusor('d1'), { notice: '20220605T2100' }, options())).serves).toBe('the notice 20220605T2100 (suspended)');
    expect((await readTakeover(s, localDifusor('d1'), {}, options())).serves).toBe('nothing yet');
  });

  it('never throws and never passes raw bytes on: forged lease, live, hold, huge times (the review\'s reproduction)', async () => {
    const ESC = '\x1b';
    const cut = { cut: '20220605_2100', manifest: NEW, signed: false, byName: false };
    const cases: Array<[string, string, string, Record<string, string | RegExp>]> = [
      [
        `now 5\nheld ${ESC}]52;c;ZWNobyBwd25lZA==${ESC}\\ r 1 2\n`,
        `live 20220605_2045${ESC}[2K${ESC}[1A\nfree 1\n`,
        'OSC 52 host, cursor moves after live',
        {
          leaseDetail: 'unknown: d1: lease show answered a held line that is not "held HOST RUN SINCE EXPIRY": "held \\u001b]52;c;ZWNobyBwd25lZA==\\u001b\\\\ r 1 2"',
          send: 'd1: inspect answered a live that is not a cut id: "live 20220605_2045\\u001b[2K\\u001b[1A"',
        },
      ],
      [
        'now 5\nfree\n',
        `live 20220605_2045\nhold x ${ESC}[8m r 1\nfree 1\n`,
        'a forged hold does not leave the difusor alone under --latest: it is refused, named',
        { leaseDetail: 'free', send: 'd1: inspect answered a hold line that is not "hold CUT HOST RUN SINCE": "hold x \\u001b[8m r 1"' },
      ],
      [
        'now 5\nheld h r 99999999999999999999 2\n',
        'live 20220605_2045\nlifted 20220605_2030 h r 99999999999999999999\n',
        'huge since in lease show and in lifted',
        {
          leaseDetail: 'unknown: d1: lease show answered a held line that is not "held HOST RUN SINCE EXPIRY": "held h r 99999999999999999999 2"',
          send: 'd1: inspect answered a lifted line that is not "lifted CUT HOST RUN SINCE": "lifted 20220605_2030 h r 99999999999999999999"',
        },
      ],
      [
        'now 5\nfree\n',
        'live 20220605_2045\nbase ../../../../tmp/evil\n',
        'a base that is a path',
        { leaseDetail: 'free', send: 'd1: inspect answered a base that is not a cut id: "base ../../../../tmp/evil"' },
      ],
    ];
    for (const [lease, inspect, , expected] of cases) {
      const view = await readTakeover(session({ lease: ok(lease), inspect: ok(inspect) }), localDifusor('d1'), { live: '20220605_2045' }, options({ cut }));
      expect({ leaseDetail: view.leaseDetail, send: view.send?.detail }).toEqual(expected);
      expect(view.send?.kind).toBe('unknown');
      // eslint-disable-next-line no-control-regex
      expect([view.leaseDetail, view.serves, view.send?.detail].join('')).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
    }
  });

  it('shows what status passed on escaped: a live that is no cut, a notice with controls; a failing helper\'s stderr escaped', async () => {
    const s = session({ lease: { code: 2, stdout: '', stderr: 'difusion-helper: \x1b]52;c;eA==\x07 no' } });
    const odd = await readTakeover(s, localDifusor('d1'), { live: '2022\x1b[2J' }, options());
    expect(odd.serves).toBe('not a cut: "2022\\u001b[2J"');
    expect(odd.live).toBeUndefined();
    expect(odd.leaseDetail).toBe('unknown: lease show failed: difusion-helper: \\u001b]52;c;eA==\\u0007 no');
    expect((await readTakeover(s, localDifusor('d1'), { notice: 'x\x1b[8m' }, options())).serves).toBe('the notice "x\\u001b[8m" (suspended)');
  });

  it('names a helper too old for the lease verb, and what to do', async () => {
    const view = await readTakeover(session({}), localDifusor('radio'), {}, options());
    expect(view.leaseDetail).toBe(
      "unknown: the installed helper has no lease verb (difusion-helper: refused: unknown verb lease): the difusor's admin reinstalls it (difusion onboard radio prints it)",
    );
  });
});

describe('preflight with the takeover', () => {
  it('carries each difusor\'s takeover view, and a difusor held by another host is no failure', async () => {
    const connector: DifusorConnector = {
      open: async () =>
        session({
          status: ok('live 20220605_2000_PREP\nfree 100000000\nrsync 3.1.2\nwritable yes\n'),
          lease: ok(`now ${SINCE + 10}\nheld a r1 ${SINCE} ${SINCE + 120}\n`),
          inspect: ok(inspectAnswer('20220605_2000_PREP', '20220605_2000_PREP', OLD)),
        }),
      dispose: async () => undefined,
    };
    const report = await preflight(
      [localDifusor('d1')],
      { neededBytes: 0, httpTimeoutMs: 1000, takeover: options({ cut: { cut: '20220605_2015_PREP', manifest: NEW, signed: false, byName: false } }) },
      { connector, httpGet: async () => ({ ok: true, status: 200 }) },
    );
    expect(report.exitCode).toBe(0);
    expect(report.difusores[0]?.takeover).toMatchObject({
      lease: { state: 'held', holder: { host: 'a' } },
      serves: '20220605_2000_PREP',
      send: { kind: 'left-alone', plan: 'new-release' },
    });
  });
});
