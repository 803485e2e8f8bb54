import fc from 'fast-check';
import type { Publication } from '../../src/core/registry/types.js';
import {
  checkPublication,
  formatLocal,
  instantToWall,
  isValidTimeZone,
  parseTimeArgument,
  parseWall,
  utcOffsetLabel,
  wallToInstant,
} from '../../src/core/registry/window.js';

const MX = 'America/Mexico_City';

function publication(window: { start: string; end: string }, simulacros = [{ start: '2022-05-22T09:00', end: '2022-05-22T21:00' }]): Publication {
  return {
    timezone: MX,
    window,
    simulacros,
    keep_releases: 5,
    concurrency: 8,
    switch_deadline_s: 20,
    ssh: { connect_timeout_s: 10 },
    state_dir: '/tmp/difusion-state',
  };
}

const durango2022 = publication({ start: '2022-06-05T20:00', end: '2022-06-06T20:00' });
const june2024 = publication({ start: '2024-06-02T20:00', end: '2024-06-03T20:00' }, []);

function check(pub: Publication, nowIso: string, cutWall: string, flags: { simulacro?: boolean; dryRun?: boolean } = {}) {
  return checkPublication({
    publication: pub,
    now: new Date(nowIso),
    cutWall,
    simulacro: flags.simulacro ?? false,
    dryRun: flags.dryRun ?? false,
  });
}

function reasonOf(decision: ReturnType<typeof check>): string {
  if (decision.allowed) throw new Error(`expected a refusal, got ${JSON.stringify(decision)}`);
  return decision.reason;
}

describe('wall time and instants in America/Mexico_City', () => {
  it('June 2022 was summer time, UTC-5', () => {
    expect(wallToInstant('2022-06-05T20:00', MX).toISOString()).toBe('2022-06-06T01:00:00.000Z');
    expect(formatLocal(new Date('2022-06-06T00:59:59Z'), MX)).toBe('2022-06-05 19:59:59 (UTC-5)');
  });

  it('January 2022 was UTC-6', () => {
    expect(wallToInstant('2022-01-15T12:00:30', MX).toISOString()).toBe('2022-01-15T18:00:30.000Z');
  });

  it('after summer time was abolished (end of October 2022) June is UTC-6', () => {
    expect(wallToInstant('2024-06-02T20:00', MX).toISOString()).toBe('2024-06-03T02:00:00.000Z');
    expect(utcOffsetLabel(new Date('2024-06-03T02:00:00Z'), MX)).toBe('UTC-6');
  });

  it('a wall time that happens twice (clocks back, 2022-10-30 02:00 → 01:00) is the earlier one', () => {
    expect(wallToInstant('2022-10-30T01:30', MX).toISOString()).toBe('2022-10-30T06:30:00.000Z');
    expect(instantToWall(new Date('2022-10-30T07:30:00Z'), MX)).toBe('2022-10-30T01:30:00');
  });

  it('a wall time that never happens (clocks forward, 2022-04-03 02:00 → 03:00) moves forward by the gap', () => {
    const instant = wallToInstant('2022-04-03T02:30', MX);
    expect(instant.toISOString()).toBe('2022-04-03T08:30:00.000Z');
    expect(instantToWall(instant, MX)).toBe('2022-04-03T03:30:00');
  });

  it('works for other zones and half-hour offsets', () => {
    expect(wallToInstant('2022-03-13T02:30', 'America/New_York').toISOString()).toBe('2022-03-13T07:30:00.000Z');
    expect(formatLocal(new Date('2022-06-06T01:00:00Z'), 'Asia/Kolkata')).toBe('2022-06-06 06:30:00 (UTC+5:30)');
    expect(formatLocal(new Date('2022-06-06T01:00:00Z'), 'UTC')).toBe('2022-06-06 01:00:00 (UTC+0)');
    expect(utcOffsetLabel(new Date('2022-06-06T01:00:00Z'), 'America/St_Johns')).toBe('UTC-2:30');
  });

  it('rejects malformed wall times and unknown zones', () => {
    expect(() => wallToInstant('2022-06-31T20:00', MX)).toThrow(/not a wall time/);
    expect(() => wallToInstant('2022-06-05 24:00', MX)).toThrow(/not a wall time/);
    expect(() => wallToInstant('2022-06-05T20:00', 'Mars/Olympus')).toThrow(/Mars\/Olympus/);
    expect(isValidTimeZone('Mars/Olympus')).toBe(false);
    expect(isValidTimeZone(MX)).toBe(true);
    expect(parseWall('2022-06-05T20:00:60')).toBeUndefined();
    expect(parseWall('2022-06-05 20:00:30')).toEqual({ year: 2022, month: 6, day: 5, hour: 20, minute: 0, second: 30 });
  });

  it('the wall time of any instant maps back to the same wall time', () => {
    fc.assert(
      fc.property(
        fc.date({ min: new Date('2015-01-01T00:00:00Z'), max: new Date('2030-12-31T00:00:00Z'), noInvalidDate: true }),
        fc.constantFrom(MX, 'America/New_York', 'Europe/Madrid', 'America/Tijuana', 'Asia/Kolkata'),
        (instant, zone) => {
          const wall = instantToWall(instant, zone);
          expect(instantToWall(wallToInstant(wall, zone), zone)).toBe(wall);
          const wholeSecond = Math.floor(instant.getTime() / 1000) * 1000;
          // Only in the repeated hour after clocks go back can the instant differ: then it is the earlier one.
          expect(wallToInstant(wall, zone).getTime()).toBeLessThanOrEqual(wholeSecond);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('parseTimeArgument', () => {
  it.each([
    ['2022-06-05T20:00:00-05:00', '2022-06-06T01:00:00.000Z'],
    ['2022-06-05T20:00-05', '2022-06-06T01:00:00.000Z'],
    ['2022-06-05T20:00:00-0500', '2022-06-06T01:00:00.000Z'],
    ['2022-06-06T01:00:00.250Z', '2022-06-06T01:00:00.250Z'],
    ['2022-06-05T20:00', '2022-06-06T01:00:00.000Z'],
    ['2022-06-05 20:00:30', '2022-06-06T01:00:30.000Z'],
    ['2022-06-05', '2022-06-05T05:00:00.000Z'],
    ['2024-06-02', '2024-06-02T06:00:00.000Z'],
  ])('%s is %s', (text, iso) => {
    expect(parseTimeArgument(text, MX)?.toISOString()).toBe(iso);
  });

  it.each(['yesterday', '2022-06-31', '2022-06-05T25:00Z', '2022-06-05T20:00+25:00', '1654477200', ''])('rejects %p', (text) => {
    expect(parseTimeArgument(text, MX)).toBeUndefined();
  });
});

describe('checkPublication: the window of 5-6 June 2022 (UTC-5)', () => {
  it('refuses one second before the opening, naming the local time, the window and the alternatives', () => {
    const reason = reasonOf(check(durango2022, '2022-06-06T00:59:59.999Z', '2022-06-05T20:00'));
    expect(reason).toContain('2022-06-05 19:59:59 (UTC-5)');
    expect(reason).toContain('2022-06-05 20:00:00 (UTC-5) to 2022-06-06 20:00:00 (UTC-5)');
    expect(reason).toContain(MX);
    expect(reason).toContain('--dry-run');
    expect(reason).toContain('--simulacro');
    expect(reason).toContain('2022-05-22 09:00:00 (UTC-5)');
  });

  it('allows the opening second', () => {
    expect(check(durango2022, '2022-06-06T01:00:00Z', '2022-06-05T20:00')).toEqual({ allowed: true, mode: 'window' });
  });

  it('allows the last cut, 20220606_2000, at the close, inclusive to the second', () => {
    expect(check(durango2022, '2022-06-07T01:00:00Z', '2022-06-06T20:00')).toEqual({ allowed: true, mode: 'window' });
    expect(check(durango2022, '2022-06-07T01:00:00.999Z', '2022-06-06T20:00')).toEqual({ allowed: true, mode: 'window' });
  });

  it('after the close still delivers a cut stamped at or before the end', () => {
    expect(check(durango2022, '2022-06-07T01:00:01Z', '2022-06-06T20:00')).toEqual({ allowed: true, mode: 'late-delivery' });
    expect(check(durango2022, '2022-06-08T15:00:00Z', '2022-06-06T19:45')).toEqual({ allowed: true, mode: 'late-delivery' });
  });

  it('refuses a cut stamped 20:01 after the close, saying when it is and what the window is', () => {
    const reason = reasonOf(check(durango2022, '2022-06-07T01:02:00Z', '2022-06-06T20:01'));
    expect(reason).toContain('2022-06-06 20:01:00 (UTC-5)');
    expect(reason).toContain('outside the publication window');
    expect(reason).toContain('2022-06-06 20:02:00 (UTC-5)');
    expect(reason).toContain('2022-06-05 20:00:00 (UTC-5) to 2022-06-06 20:00:00 (UTC-5)');
    expect(reason).toContain('--dry-run');
  });

  it('refuses a cut stamped 20:01 even while the window is still open', () => {
    expect(check(durango2022, '2022-06-07T00:30:00Z', '2022-06-06T20:01').allowed).toBe(false);
  });

  it('refuses a cut stamped before the opening, during the window', () => {
    expect(reasonOf(check(durango2022, '2022-06-06T01:20:00Z', '2022-06-05T19:45'))).toContain('2022-06-05 19:45:00 (UTC-5)');
  });

  it('reads the window in the publication timezone, not as UTC-6', () => {
    // 20:00 at UTC-6 would be 02:00Z; an hour earlier the window is already open.
    expect(check(durango2022, '2022-06-06T01:30:00Z', '2022-06-05T20:15')).toEqual({ allowed: true, mode: 'window' });
  });
});

describe('checkPublication: a June 2024 window, after Mexico dropped summer time (UTC-6)', () => {
  it('refuses at 19:59:59 local and allows 20:00:00 local', () => {
    const reason = reasonOf(check(june2024, '2024-06-03T01:59:59Z', '2024-06-02T20:00'));
    expect(reason).toContain('2024-06-02 19:59:59 (UTC-6)');
    expect(reason).toContain('no simulacro is declared');
    expect(check(june2024, '2024-06-03T02:00:00Z', '2024-06-02T20:00')).toEqual({ allowed: true, mode: 'window' });
  });

  it('would be wrong with last year\'s offset: 01:00Z is still 19:00 local', () => {
    expect(check(june2024, '2024-06-03T01:00:00Z', '2024-06-02T20:00').allowed).toBe(false);
  });

  it('closes at 20:00:00 local: the last cut allowed, 20:01 refused, late delivery after', () => {
    expect(check(june2024, '2024-06-04T02:00:00Z', '2024-06-03T20:00')).toEqual({ allowed: true, mode: 'window' });
    expect(check(june2024, '2024-06-04T02:00:01Z', '2024-06-03T20:00')).toEqual({ allowed: true, mode: 'late-delivery' });
    expect(reasonOf(check(june2024, '2024-06-04T02:05:00Z', '2024-06-03T20:01'))).toContain('2024-06-03 20:01:00 (UTC-6)');
  });
});

describe('checkPublication: simulacros', () => {
  it('allows --simulacro inside a declared simulacro for a cut stamped inside it', () => {
    expect(check(durango2022, '2022-05-22T15:00:00Z', '2022-05-22T09:45', { simulacro: true })).toEqual({
      allowed: true,
      mode: 'simulacro',
    });
  });

  it('simulacro boundaries are inclusive to the second', () => {
    expect(check(durango2022, '2022-05-22T14:00:00Z', '2022-05-22T09:00', { simulacro: true }).allowed).toBe(true);
    expect(check(durango2022, '2022-05-22T13:59:59Z', '2022-05-22T09:00', { simulacro: true }).allowed).toBe(false);
    expect(check(durango2022, '2022-05-23T02:00:00Z', '2022-05-22T21:00', { simulacro: true }).allowed).toBe(true);
    expect(check(durango2022, '2022-05-23T02:00:01Z', '2022-05-22T21:00', { simulacro: true }).allowed).toBe(false);
  });

  it('refuses a cut stamped outside the simulacro in progress', () => {
    const reason = reasonOf(check(durango2022, '2022-05-22T15:00:00Z', '2022-06-05T20:15', { simulacro: true }));
    expect(reason).toContain('outside the simulacro in progress');
    expect(reason).toContain('2022-05-22 09:00:00 (UTC-5) to 2022-05-22 21:00:00 (UTC-5)');
    expect(reason).toContain('2022-05-22 10:00:00 (UTC-5)');
  });

  it('refuses --simulacro outside every declared simulacro, even during the publication window', () => {
    const before = reasonOf(check(durango2022, '2022-05-29T15:00:00Z', '2022-05-29T09:45', { simulacro: true }));
    expect(before).toContain('only during a declared simulacro');
    expect(before).toContain('2022-05-29 10:00:00 (UTC-5)');
    expect(before).toContain('2022-05-22 09:00:00 (UTC-5) to 2022-05-22 21:00:00 (UTC-5)');
    expect(before).toContain('--dry-run');
    expect(check(durango2022, '2022-06-06T02:00:00Z', '2022-06-05T20:45', { simulacro: true }).allowed).toBe(false);
  });

  it('refuses --simulacro when the registry declares none', () => {
    expect(reasonOf(check(june2024, '2024-05-26T15:00:00Z', '2024-05-26T09:45', { simulacro: true }))).toContain(
      'no simulacro is declared',
    );
  });

  it('during a simulacro, a publish without --simulacro is still refused by the window', () => {
    expect(reasonOf(check(durango2022, '2022-05-22T15:00:00Z', '2022-05-22T09:45'))).toContain('has not opened');
  });
});

describe('checkPublication: --dry-run', () => {
  it('is always allowed, and says why a real run would be refused', () => {
    const decision = check(durango2022, '2022-06-06T00:59:59Z', '2022-06-05T20:00', { dryRun: true });
    expect(decision).toMatchObject({ allowed: true, mode: 'dry-run' });
    expect(decision.allowed && decision.wouldRefuse).toContain('2022-06-05 19:59:59 (UTC-5)');
  });

  it('inside the window is a plain dry run', () => {
    expect(check(durango2022, '2022-06-06T02:00:00Z', '2022-06-05T20:45', { dryRun: true })).toEqual({ allowed: true, mode: 'dry-run' });
  });

  it('wins over --simulacro outside any simulacro', () => {
    const decision = check(durango2022, '2022-05-29T15:00:00Z', '2022-05-29T09:45', { dryRun: true, simulacro: true });
    expect(decision).toMatchObject({ allowed: true, mode: 'dry-run' });
    expect(decision.allowed && decision.wouldRefuse).toContain('declared simulacro');
  });

  it('also covers a cut outside the window after the close', () => {
    expect(check(durango2022, '2022-06-07T02:00:00Z', '2022-06-06T20:15', { dryRun: true })).toMatchObject({ allowed: true, mode: 'dry-run' });
  });
});
