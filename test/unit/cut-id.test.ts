import fc from 'fast-check';
import { CUT_ID_PATTERN, compareCutIds, isCutId, newestCut, parseCutId } from '../../src/core/shared/cut-id.js';

describe('parseCutId', () => {
  it('reads the PREP package name with a suffix', () => {
    expect(parseCutId('20220605_2015_PREP_DGO')).toEqual({
      id: '20220605_2015_PREP_DGO',
      date: '2022-06-05',
      time: '20:15',
      wall: '2022-06-05T20:15',
    });
  });

  it('reads a name without suffix', () => {
    expect(parseCutId('20220606_2000')?.wall).toBe('2022-06-06T20:00');
  });

  it.each(['20220605_2015_a-b_C9', '20240229_0000', '20220605_2359_x'])('accepts %s', (name) => {
    expect(parseCutId(name)?.id).toBe(name);
  });

  it.each([
    ['20220631_2000', 'June has 30 days'],
    ['20220229_1200', '2022 is not a leap year'],
    ['21000229_1200', '2100 is not a leap year'],
    ['20221301_1200', 'month 13'],
    ['20220600_1200', 'day 0'],
    ['20220605_2460', 'hour 24'],
    ['20220605_2360', 'minute 60'],
    ['20220605_2015_', 'empty suffix'],
    ['20220605_2015_PREP DGO', 'space in suffix'],
    ['20220605_2015_PREP.DGO', 'dot in suffix'],
    ['20220605_2015.tmp', 'temporary name'],
    ['.20220605_2015', 'hidden temporary name'],
    ['2022060_2015', 'short date'],
    ['20220605-2015', 'wrong separator'],
    ['', 'empty'],
  ])('rejects %s (%s)', (name) => {
    expect(parseCutId(name)).toBeUndefined();
    expect(isCutId(name)).toBe(false);
  });

  it('CUT_ID_PATTERN matches the shape only; parseCutId also checks the calendar', () => {
    expect(CUT_ID_PATTERN.test('20220631_2000')).toBe(true);
    expect(CUT_ID_PATTERN.test('20220605_2015_PREP_DGO')).toBe(true);
    expect(CUT_ID_PATTERN.test('20220605_2015/x')).toBe(false);
    expect(CUT_ID_PATTERN.test(`20220605_2015_${'A'.repeat(64)}`)).toBe(true);
    expect(CUT_ID_PATTERN.test(`20220605_2015_${'A'.repeat(65)}`)).toBe(false);
  });
});

describe('compareCutIds and newestCut', () => {
  it('orders by cut time, then by name', () => {
    const names = ['20220606_0100', '20220605_2015_PREP_DGO', '20220605_2015', '20220605_2000_Z', '20220605_2030'];
    expect([...names].sort(compareCutIds)).toEqual([
      '20220605_2000_Z',
      '20220605_2015',
      '20220605_2015_PREP_DGO',
      '20220605_2030',
      '20220606_0100',
    ]);
  });

  it('picks the newest cut and never a temporary or impossible name', () => {
    expect(
      newestCut(['20220605_2015_PREP_DGO', '20220605_2030_PREP_DGO', '.20220605_2045_PREP_DGO', '20220605_2045.partial', '20229999_9999', 'notes']),
    ).toBe('20220605_2030_PREP_DGO');
  });

  it('has no newest cut when nothing matches', () => {
    expect(newestCut([])).toBeUndefined();
    expect(newestCut(['tmp', 'README'])).toBeUndefined();
  });

  it('a later day beats a later time of day', () => {
    expect(newestCut(['20220605_2345', '20220606_0000'])).toBe('20220606_0000');
  });

  const cutName = fc
    .record({
      day: fc.date({ min: new Date('2020-01-01T00:00:00Z'), max: new Date('2030-12-31T23:59:00Z'), noInvalidDate: true }),
      suffix: fc.option(fc.stringMatching(/^[A-Za-z0-9_-]{1,8}$/), { nil: undefined }),
    })
    .map(({ day, suffix }) => {
      const iso = day.toISOString();
      const base = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}_${iso.slice(11, 13)}${iso.slice(14, 16)}`;
      return suffix ? `${base}_${suffix}` : base;
    });

  it('every generated name parses back to its own date and time', () => {
    fc.assert(
      fc.property(cutName, (name) => {
        const cut = parseCutId(name);
        expect(cut?.wall.replace(/[-T:]/g, '')).toBe(name.slice(0, 8) + name.slice(9, 13));
      }),
    );
  });

  it('is a total order and newestCut is its maximum', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(cutName, fc.string({ maxLength: 12 })), { maxLength: 20 }), (names) => {
        for (const a of names) {
          for (const b of names) expect(Math.sign(compareCutIds(a, b))).toBe(-Math.sign(compareCutIds(b, a)) || 0);
        }
        const cuts = names.filter(isCutId).sort(compareCutIds);
        expect(newestCut(names)).toBe(cuts.at(-1));
      }),
    );
  });
});
