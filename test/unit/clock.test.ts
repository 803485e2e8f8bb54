import { fixedClock, systemClock } from '../../src/adapters/clock.js';

describe('systemClock', () => {
  it('is the real clock when DIFUSION_NOW is not set', () => {
    const clock = systemClock({});
    const before = Date.now();
    const now = clock.now().getTime();
    expect(clock.fromEnv).toBe(false);
    expect(clock.setting).toBeUndefined();
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(Date.now());
  });

  it('treats an empty DIFUSION_NOW as unset', () => {
    expect(systemClock({ DIFUSION_NOW: '' }).fromEnv).toBe(false);
  });

  it('holds the instant from DIFUSION_NOW and says it came from there', async () => {
    const clock = systemClock({ DIFUSION_NOW: '2022-06-05T19:59:59-05:00' });
    expect(clock.fromEnv).toBe(true);
    expect(clock.setting).toBe('DIFUSION_NOW=2022-06-05T19:59:59-05:00');
    expect(clock.now().toISOString()).toBe('2022-06-06T00:59:59.000Z');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(clock.now().toISOString()).toBe('2022-06-06T00:59:59.000Z');
  });

  it('hands out copies, so a caller mutating a Date does not move the clock', () => {
    const clock = systemClock({ DIFUSION_NOW: '2022-06-06T01:00:00Z' });
    clock.now().setUTCFullYear(1999);
    expect(clock.now().toISOString()).toBe('2022-06-06T01:00:00.000Z');
  });

  it('reads a wall time without offset in the given publication timezone', () => {
    const clock = systemClock({ DIFUSION_NOW: '2022-06-05T20:00:00' }, { timezone: 'America/Mexico_City' });
    expect(clock.now().toISOString()).toBe('2022-06-06T01:00:00.000Z');
  });

  it.each(['tomorrow', '2022-06-31T20:00:00Z', '2022-06-05T20:00:00+99:00', '1654477200'])(
    'throws naming the variable and the value for %p',
    (value) => {
      expect(() => systemClock({ DIFUSION_NOW: value }, { timezone: 'America/Mexico_City' })).toThrow(
        `DIFUSION_NOW="${value}"`,
      );
    },
  );
});

describe('fixedClock', () => {
  it('always answers the same instant and is not marked as from the environment', () => {
    const clock = fixedClock(new Date('2022-06-06T01:00:00Z'));
    expect(clock.now().toISOString()).toBe('2022-06-06T01:00:00.000Z');
    expect(clock.fromEnv).toBe(false);
  });
});
