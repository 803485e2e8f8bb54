import { chooseRenderer, formatBytes, localStamp, renderTable } from '../../src/ui/render.js';
import { renderPublishSummary } from '../../src/ui/publish-view.js';

describe('chooseRenderer', () => {
  const base = { isTTY: true, json: false, noColor: false, ci: false };

  it('draws live rows on a terminal', () => {
    expect(chooseRenderer(base)).toBe('live');
  });

  it('prints plain lines without a terminal (cron), with NO_COLOR, or in CI', () => {
    expect(chooseRenderer({ ...base, isTTY: false })).toBe('plain');
    expect(chooseRenderer({ ...base, noColor: true })).toBe('plain');
    expect(chooseRenderer({ ...base, ci: true })).toBe('plain');
  });

  it('stays silent with --json, terminal or not, so stdout holds only the document', () => {
    expect(chooseRenderer({ ...base, json: true })).toBe('silent');
    expect(chooseRenderer({ isTTY: false, json: true, noColor: true, ci: true })).toBe('silent');
  });
});

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [1024, '1.0 KB'],
    [1536, '1.5 KB'],
    [10 * 1024, '10 KB'],
    [1024 * 1024, '1.0 MB'],
    [812_345_678, '775 MB'],
    [5 * 1024 ** 3, '5.0 GB'],
    [3 * 1024 ** 4, '3.0 TB'],
    [2048 * 1024 ** 4, '2048 TB'],
  ])('%i → %s', (n, text) => {
    expect(formatBytes(n)).toBe(text);
  });
});

describe('renderTable', () => {
  it('pads every column but the last to its widest cell, with a rule under the header', () => {
    const text = renderTable(
      ['difusor', 'estado', 'corte'],
      [
        ['ujed', 'live', '20220605_2030'],
        ['itd-durango', 'failed', '20220605_2015'],
      ],
    );
    expect(text).toBe(
      [
        'difusor      estado  corte',
        '-----------  ------  -------------',
        'ujed         live    20220605_2030',
        'itd-durango  failed  20220605_2015',
      ].join('\n'),
    );
  });

  it('trims trailing spaces, tolerates missing cells and holds no escape codes', () => {
    const text = renderTable(['a', 'b', 'c'], [['x', '', ''], ['long value']]);
    expect(text.split('\n')).toEqual(['a           b  c', '----------  -  -', 'x', 'long value']);
    // eslint-disable-next-line no-control-regex
    expect(text).not.toMatch(/\u001b/);
  });

  it('prints only the header and rule when there are no rows', () => {
    expect(renderTable(['id', 'estado'], [])).toBe('id  estado\n--  ------');
  });
});

describe('localStamp', () => {
  it('shows the wall time in the publication timezone (UTC-5 in June 2022 in central Mexico)', () => {
    expect(localStamp(new Date('2022-06-06T01:16:00Z'), 'America/Mexico_City')).toBe('2022-06-05 20:16:00');
  });

  it('uses 00, not 24, for midnight', () => {
    expect(localStamp(new Date('2022-06-06T05:00:00Z'), 'America/Mexico_City')).toBe('2022-06-06 00:00:00');
  });
});

describe('renderPublishSummary after the switch deadline', () => {
  const base = { cut: '20220605_2030', filesToSend: 2, bytesToSend: 200, filesLinked: 1, filesSent: 2, bytesSent: 2048, seconds: 3 };
  const result = {
    cut: '20220605_2030',
    dryRun: false,
    exitCode: 3 as const,
    run: 'r',
    mode: 'window' as const,
    targets: ['a', 'b', 'slow', 'down'],
    skipped: [],
    switchSpreadMs: 12,
    groupSwitchAt: 1,
    deadlinePassed: true,
    outcomes: [
      { ...base, id: 'a', name: 'A', result: 'live' as const, lateSeconds: 0 },
      { ...base, id: 'b', name: 'B', result: 'live' as const, lateSeconds: 0 },
      { ...base, id: 'slow', name: 'S', result: 'live' as const, lateSeconds: 41.25 },
      { ...base, id: 'down', name: 'D', result: 'failed' as const, previous: '20220605_2015', failedPhase: 'staging' as const, error: 'rsync exit 30' },
    ],
  };

  it('names the late difusor and how late it went live, and the one that failed keeping its previous cut', () => {
    const text = renderPublishSummary(result, 20);
    expect(text).toMatch(/^slow\s+live\s+20220605_2030\s.*late: live 41\.3 s after the others$/m);
    expect(text).toMatch(/^down\s+failed\s+20220605_2015\s.*staging: rsync exit 30$/m);
    expect(text).toContain('20220605_2030: 3 of 4 difusores live, 1 failed (they keep their previous cut); switches within 12 ms of each other.');
    expect(text).toContain('Not everyone was ready within the 20 s deadline: the ready ones switched together; late, each on its own: slow 41.3 s.');
  });

  it('says nothing of a deadline when everyone was ready in time', () => {
    expect(renderPublishSummary({ ...result, deadlinePassed: false, outcomes: result.outcomes.slice(0, 2) }, 20)).not.toMatch(/deadline|late/);
  });
});
