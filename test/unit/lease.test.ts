import type { DifusorSession, HelperOutput } from '../../src/core/difusor-port.js';
import { newerCutLive } from '../../src/core/publish/forward.js';
import {
  DEFAULT_LEASE_S,
  LeaseHeldError,
  describeHolder,
  leaseArgs,
  leaseHostName,
  parseLeaseAnswer,
  takeLease,
  takeoverDetail,
  type Every,
  type LeaseHolder,
} from '../../src/core/publish/lease.js';

/** A session whose lease verb answers from a script, recording every call. */
function fakeSession(answers: Array<string | HelperOutput>): { session: DifusorSession; calls: string[][] } {
  const calls: string[][] = [];
  const session: DifusorSession = {
    helper: async (verb, args) => {
      calls.push([verb, ...args]);
      const a = answers.shift();
      if (a === undefined) throw new Error(`unexpected call ${verb} ${args.join(' ')}`);
      return typeof a === 'string' ? { code: 0, stdout: a, stderr: '' } : a;
    },
    transfer: async () => ({ bytesSent: 0, filesSent: 0 }),
    close: () => undefined,
  };
  return { session, calls };
}

/** Ticks driven by the test: tick() runs the renewal as the interval would. */
function manualEvery(): { every: Every; tick: () => void; stopped: () => boolean; periodMs: () => number } {
  let fn: (() => void) | undefined;
  let period = 0;
  let stopped = false;
  return {
    every: (ms, f) => {
      fn = f;
      period = ms;
      return () => {
        stopped = true;
      };
    },
    tick: () => fn?.(),
    stopped: () => stopped,
    periodMs: () => period,
  };
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));
const claim = { host: 'sitio-a', run: '20220605T201502Z-ab12cd', seconds: 120 };

describe('lease answers', () => {
  it('reads each answer of the helper', () => {
    expect(parseLeaseAnswer('now 100\nfree\n')).toEqual({ kind: 'free', now: 100 });
    expect(parseLeaseAnswer('now 100\ntaken 100 220\n')).toEqual({ kind: 'taken', now: 100, since: 100, expiry: 220 });
    expect(parseLeaseAnswer('now 300\ntakeover sitio-a r1 90 210\ntaken 300 420\n')).toEqual({
      kind: 'taken',
      now: 300,
      since: 300,
      expiry: 420,
      takenOver: { host: 'sitio-a', run: 'r1', since: 90, expiry: 210 },
    });
    expect(parseLeaseAnswer('now 100\nheld sitio-b r2 50 170\n')).toEqual({ kind: 'held', now: 100, holder: { host: 'sitio-b', run: 'r2', since: 50, expiry: 170 } });
    expect(parseLeaseAnswer('now 100\nrenewed 50 220\n')).toEqual({ kind: 'renewed', now: 100, since: 50, expiry: 220 });
    expect(parseLeaseAnswer('now 100\nlost\n')).toEqual({ kind: 'lost', now: 100 });
    expect(parseLeaseAnswer('now 100\nreleased\n')).toEqual({ kind: 'released', now: 100 });
    expect(parseLeaseAnswer('now 100\nnot-held\n')).toEqual({ kind: 'not-held', now: 100 });
  });

  it.each([
    ['', 'lease take answered no lease answer: "(nothing)"'],
    ['taken 1 2\n', 'lease take answered no "now" first: "taken 1 2"'],
    ['now 1\nheld a b c d\n', 'lease take answered a held line that is not "held HOST RUN SINCE EXPIRY": "held a b c d"'],
    ['now 1\ntaken 1\n', 'lease take answered a taken line that is not "taken SINCE EXPIRY": "taken 1"'],
    ['now 1\nyours\n', 'lease take answered an unexpected line: "yours"'],
    ['now 1\nfree now\n', 'lease take answered an unexpected line: "free now"'],
  ])('refuses %j naming the verb and the line', (stdout, message) => {
    expect(() => parseLeaseAnswer(stdout, { verb: 'lease take' })).toThrow(message);
  });

  it.each([
    ['an OSC 52 clipboard write as the holder', 'now 1\nheld \x1b]52;c;ZWNobyBwd25lZA==\x07 r 1 2\n'],
    ['colours around the holder', 'now 1\nheld \x1b[31mprimario\x1b[0m r 1 2\n'],
    ['an 8-bit CSI (C1) in the run', 'now 1\nheld a r\u009b2J 1 2\n'],
    ['a bidi override in the host', 'now 1\nheld a\u202eb r 1 2\n'],
    ['a dead holder taken over with a cursor move', 'now 1\ntakeover a\x1b[1A r 1 2\ntaken 1 2\n'],
    ['a renewal lost to a holder with escapes', 'now 1\nlost \x1b[2J r 1 2\n'],
    ['a since of 20 digits', 'now 1\nheld h r 99999999999999999999 2\n'],
    ['an expiry of 13 digits in a takeover', 'now 1\ntakeover h r 1 1000000000000\ntaken 1 2\n'],
    ['taken times of 13 digits', 'now 1\ntaken 1 1000000000000\n'],
    ['renewed times of 20 digits', 'now 1\nrenewed 99999999999999999999 2\n'],
    ['a now of 13 digits', 'now 1000000000000\nfree\n'],
    ['a host of 65 characters', `now 1\nheld ${'h'.repeat(65)} r 1 2\n`],
  ])('refuses %s, naming the difusor, the verb and the line shown escaped', (_what, stdout) => {
    let message = '';
    try {
      parseLeaseAnswer(stdout, { verb: 'lease renew', difusor: 'd1' });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/^d1: lease renew answered .*: "/);
    // eslint-disable-next-line no-control-regex
    expect(message).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202e]/);
  });

  it('reads the largest times the helper writes (12 digits), and says them', () => {
    const held = parseLeaseAnswer('now 999999999990\nheld sitio-b r2 999999999990 999999999999\n');
    expect(held).toEqual({ kind: 'held', now: 999_999_999_990, holder: { host: 'sitio-b', run: 'r2', since: 999_999_999_990, expiry: 999_999_999_999 } });
    expect(describeHolder((held as { holder: LeaseHolder }).holder, 999_999_999_990)).toBe(
      "held by sitio-b (run r2) since +033658-09-27T01:46:30Z, 9 s left on its lease (the difusor's clock)",
    );
  });

  it('never throws saying a holder, whatever its times or names', () => {
    expect(describeHolder({ host: 'h', run: 'r', since: 1e20, expiry: 2 }, 1)).toBe("held by h (run r) since 100000000000000000000 (epoch s), 1 s left on its lease (the difusor's clock)");
    expect(describeHolder({ host: '\x1b[2J', run: 'r', since: 0, expiry: 2 }, 1)).toBe('held by "\\u001b[2J" (run r) since 1970-01-01T00:00:00Z, 1 s left on its lease (the difusor\'s clock)');
    expect(takeoverDetail('a', { host: 'h', run: 'r', since: 1e20, expiry: 0 })).toEqual({
      host: 'a',
      tookOverFrom: { host: 'h', run: 'r', since: '100000000000000000000 (epoch s)', expiredAt: '1970-01-01T00:00:00.000Z' },
    });
  });

  it('a forged answer to take fails that difusor with the difusor, the verb and the line named; a failing helper\'s stderr is escaped', async () => {
    const answering = (out: { code: number; stdout: string; stderr: string }): DifusorSession =>
      ({ helper: async () => out, transfer: async () => ({ filesSent: 0, bytesSent: 0 }), close: () => undefined }) as DifusorSession;
    await expect(takeLease(answering({ code: 0, stdout: 'now 1\nheld \x1b[8m r 1 2\n', stderr: '' }), claim, { difusor: 'd1', every: () => () => undefined })).rejects.toThrow(
      'd1: lease take answered a held line that is not "held HOST RUN SINCE EXPIRY": "held \\u001b[8m r 1 2"',
    );
    await expect(takeLease(answering({ code: 2, stdout: '', stderr: 'refused \x1b]52;c;eA==\x07' }), claim, { difusor: 'd1', every: () => () => undefined })).rejects.toThrow(
      'd1: lease take failed (exit 2): refused \\u001b]52;c;eA==\\u0007',
    );
  });

  it('names the holder and since when, on the difusor\'s clock', () => {
    const since = Date.UTC(2022, 5, 6, 1, 15, 2) / 1000;
    expect(describeHolder({ host: 'sitio-b', run: 'r2', since, expiry: since + 120 }, since + 27)).toBe(
      "held by sitio-b (run r2) since 2022-06-06T01:15:02Z, 93 s left on its lease (the difusor's clock)",
    );
  });
});

describe('lease arguments and host name', () => {
  it('builds the helper\'s arguments, string for string', () => {
    expect(leaseArgs('take', claim)).toEqual(['take', 'sitio-a', '20220605T201502Z-ab12cd', '120']);
    expect(leaseArgs('renew', { ...claim, seconds: 5 })).toEqual(['renew', 'sitio-a', '20220605T201502Z-ab12cd', '5']);
    expect(leaseArgs('release', claim)).toEqual(['release', 'sitio-a', '20220605T201502Z-ab12cd']);
    expect(leaseArgs('take', { ...claim, replaces: 'dead-run' })).toEqual(['take', 'sitio-a', '20220605T201502Z-ab12cd', '120', 'dead-run']);
    expect(leaseArgs('renew', { ...claim, replaces: 'dead-run' })).toEqual(['renew', 'sitio-a', '20220605T201502Z-ab12cd', '120']);
  });

  it('refuses what the helper would', () => {
    expect(() => leaseArgs('take', { ...claim, host: '-x' })).toThrow('not a lease host name: "-x"');
    expect(() => leaseArgs('take', { ...claim, run: 'a b' })).toThrow('not a lease run name: "a b"');
    expect(() => leaseArgs('take', { ...claim, seconds: 0 })).toThrow('lease seconds must be 1 to 86400: 0');
  });

  it('is DIFUSION_HOST when set, else the machine\'s hostname made a plain token', () => {
    expect(leaseHostName({ DIFUSION_HOST: 'alterno' }, 'pub1.iepc.mx')).toBe('alterno');
    expect(leaseHostName({}, 'pub1.iepc.mx')).toBe('pub1.iepc.mx');
    expect(leaseHostName({ DIFUSION_HOST: '' }, 'host with spaces')).toBe('host-with-spaces');
    expect(leaseHostName({}, '')).toBe('unnamed-host');
    expect(() => leaseHostName({ DIFUSION_HOST: 'a;b' }, 'x')).toThrow('DIFUSION_HOST must be');
    expect(DEFAULT_LEASE_S).toBe(120);
  });
});

describe('takeLease', () => {
  it('takes, renews every third of lease_s, and releases', async () => {
    const { session, calls } = fakeSession(['now 100\ntaken 100 220\n', 'now 140\nrenewed 100 260\n', 'now 150\nreleased\n']);
    const clock = manualEvery();
    const lease = await takeLease(session, claim, { every: clock.every, now: () => 0 });
    expect(lease.taken).toEqual({ now: 100, since: 100, expiry: 220 });
    expect(lease.takenOver).toBeUndefined();
    expect(clock.periodMs()).toBe(40_000);
    clock.tick();
    await settle();
    expect(lease.lost()).toBeUndefined();
    expect(await lease.release()).toBeUndefined();
    expect(clock.stopped()).toBe(true);
    expect(calls).toEqual([
      ['lease', 'take', 'sitio-a', '20220605T201502Z-ab12cd', '120'],
      ['lease', 'renew', 'sitio-a', '20220605T201502Z-ab12cd', '120'],
      ['lease', 'release', 'sitio-a', '20220605T201502Z-ab12cd'],
    ]);
  });

  it('another run\'s live lease is LeaseHeldError naming it; nothing else is asked', async () => {
    const { session, calls } = fakeSession(['now 100\nheld sitio-b r2 50 170\n']);
    const error = await takeLease(session, claim, { every: manualEvery().every }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LeaseHeldError);
    expect((error as LeaseHeldError).holder).toEqual({ host: 'sitio-b', run: 'r2', since: 50, expiry: 170 });
    expect((error as Error).message).toMatch(/^held by sitio-b \(run r2\) since 1970-01-01T00:00:50Z, 70 s left/);
    expect(calls).toHaveLength(1);
  });

  it('says which expired lease it took over', async () => {
    const { session } = fakeSession(['now 300\ntakeover sitio-b r2 50 170\ntaken 300 420\n']);
    const lease = await takeLease(session, claim, { every: manualEvery().every });
    expect(lease.takenOver).toEqual({ host: 'sitio-b', run: 'r2', since: 50, expiry: 170 });
  });

  it('an older helper without the verb is an error naming it', async () => {
    const { session } = fakeSession([{ code: 2, stdout: '', stderr: 'difusion-helper: refused: unknown verb lease\n' }]);
    await expect(takeLease(session, claim, { every: manualEvery().every })).rejects.toThrow('lease take failed (exit 2): difusion-helper: refused: unknown verb lease');
  });

  it('a renewal that finds another holder loses the lease: confirm throws, release asks nothing', async () => {
    const { session, calls } = fakeSession(['now 100\ntaken 100 220\n', 'now 400\nlost sitio-b r2 390 510\n']);
    const clock = manualEvery();
    const lease = await takeLease(session, claim, { every: clock.every, now: () => 0 });
    clock.tick();
    await settle();
    expect(lease.lost()).toMatch(/^lease lost: held by sitio-b \(run r2\)/);
    await expect(lease.confirm()).rejects.toThrow('lease lost: held by sitio-b');
    expect(await lease.release()).toBeUndefined();
    expect(calls).toHaveLength(2);
  });

  it('confirm renews only when the last confirmation is a third of lease_s old', async () => {
    let t = 0;
    const { session, calls } = fakeSession(['now 100\ntaken 100 220\n', 'now 150\nrenewed 100 270\n']);
    const lease = await takeLease(session, claim, { every: manualEvery().every, now: () => t });
    t = 39_000;
    await lease.confirm();
    expect(calls).toHaveLength(1);
    t = 41_000;
    await lease.confirm();
    expect(calls).toHaveLength(2);
  });

  it('confirm fails when the difusor does not answer a renewal in time', async () => {
    let t = 0;
    const { session } = fakeSession(['now 100\ntaken 100 220\n', { code: 255, stdout: '', stderr: 'connection lost' }]);
    const lease = await takeLease(session, claim, { every: manualEvery().every, now: () => t });
    t = 50_000;
    await expect(lease.confirm()).rejects.toThrow('lease not confirmed');
  });
});

describe('never backwards by accident', () => {
  it('refuses a cut older than the live one, by the cut\'s time', () => {
    expect(newerCutLive('20220605_2015', '20220605_2030')).toMatch(/^a newer cut is live: 20220605_2030 /);
    expect(newerCutLive('20220605_2030_PREP', '20220606_0000_PREP')).toMatch(/^a newer cut is live: 20220606_0000_PREP/);
  });

  it('lets through a newer cut, the same cut, another suffix of the same time, and an unknown live', () => {
    expect(newerCutLive('20220605_2030', '20220605_2015')).toBeUndefined();
    expect(newerCutLive('20220605_2030', '20220605_2030')).toBeUndefined();
    expect(newerCutLive('20220605_2030_B', '20220605_2030_A')).toBeUndefined();
    expect(newerCutLive('20220605_2030', undefined)).toBeUndefined();
  });
});
