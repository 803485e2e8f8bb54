import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { isPage, parseLogLine, pathOf } from '../../src/core/memoria/access-log.js';
import { countMerged } from '../../src/core/memoria/log-merge.js';
import { TrafficCounter } from '../../src/core/memoria/traffic.js';
import { logFileSource } from '../../src/adapters/log-files.js';
import { BINGBOT, GOOGLEBOT, line, lines, type Hit } from '../support/logs.js';

const TZ = 'America/Mexico_City';
const PERIOD = { from: '2022-06-05', to: '2022-06-12' };

function count(hits: Array<Hit | string>, period = PERIOD) {
  const counter = new TrafficCounter(period, TZ);
  for (const h of hits) counter.addLine(typeof h === 'string' ? h : line(h));
  return counter.result();
}

describe('lines out of order, judged as AWStats judges them ($NOTSORTEDRECORDTOLERANCE = 20000 on YYYYMMDDhhmmss)', () => {
  test('a download that ended after midnight, stamped 23:59:50 and written after 00:00:02, is dropped and tallied', () => {
    const r = count([
      { at: '2022-06-05 23:59:40', host: '192.0.2.9', size: 10 },
      { at: '2022-06-06 00:00:02', host: '192.0.2.8', size: 20 },
      { at: '2022-06-05 23:59:50', url: '/datos/PREP.zip', size: 50_000_000 },
    ]);
    expect(r).toMatchObject({ hits: 2, bytes: 30, outOfOrder: 1, malformed: 0 });
  });
  test('within a day, up to 2 hours back is kept; older is dropped', () => {
    const r = count([
      { at: '2022-06-05 14:00:00', host: '192.0.2.8' },
      { at: '2022-06-05 12:00:00', url: '/kept.zip', size: 7 },
      { at: '2022-06-05 11:59:59', url: '/dropped.zip', size: 11 },
      // Across the hour the numbers still work out: 14:00:00 − 20000 is 12:00:00.
      { at: '2022-06-05 13:59:59', url: '/kept-too.zip', size: 3 },
    ]);
    expect(r).toMatchObject({ hits: 3, bytes: 1000 + 7 + 3, outOfOrder: 1 });
  });
  test('a dropped line does not become the newest; a PATCH neither counts nor moves the newest', () => {
    const r = count([
      { at: '2022-06-05 20:00:00', host: '192.0.2.8' },
      { at: '2022-06-06 00:00:00', method: 'PATCH' },
      { at: '2022-06-05 23:59:00', host: '192.0.2.9' },
    ]);
    expect(r).toMatchObject({ hits: 2, outOfOrder: 0, methods: { PATCH: 1 } });
  });
  test('the line\'s own clock is compared, not the instant: a line an hour "older" in another offset is judged by its digits', () => {
    const r = count([
      { at: '2022-06-06 00:00:05', offset: -300 },
      // 23:59:59 at -0600 is 00:59:59 at -0500, later; AWStats reads 20220605235959 and drops it.
      { at: '2022-06-05 23:59:59', offset: -360, host: '192.0.2.7' },
    ]);
    expect(r).toMatchObject({ hits: 1, outOfOrder: 1 });
  });
  test('a line out of order outside the period is outside, not out of order', () => {
    const r = count([
      { at: '2022-06-13 00:00:05' },
      { at: '2022-06-12 23:59:59', host: '192.0.2.7' },
      { at: '2022-06-13 00:00:01', host: '192.0.2.6' },
    ]);
    expect(r).toMatchObject({ hits: 0, outOfOrder: 1, outside: 2 });
  });
});

describe('what a request counts for', () => {
  test('a 304 with size "-" is a hit and a page of 0 bytes', () => {
    const r = count([{ at: '2022-06-05 20:00:00', status: 304, size: '-' }]);
    expect(r).toMatchObject({ hits: 1, pages: 1, bytes: 0, visits: 1, visitors: 1 });
  });
  test('a 304 that logs a size still counts 0 bytes', () => {
    expect(count([{ at: '2022-06-05 20:00:00', status: 304, size: 512 }]).bytes).toBe(0);
  });
  test('favicon.ico and robots.txt are never counted; robots.txt is a robot', () => {
    const r = count([
      { at: '2022-06-05 20:00:00', url: '/favicon.ico', size: 1150 },
      { at: '2022-06-05 20:00:01', url: '/favicon.ico', status: 404 },
      { at: '2022-06-05 20:00:02', url: '/robots.txt?x=1', size: 30 },
    ]);
    expect(r).toMatchObject({ hits: 0, pages: 0, bytes: 0, visitors: 0, favicon: 2 });
    expect(r.robots).toEqual({ hits: 1, bytes: 30, robotsTxt: 1 });
    expect(r.errors).toEqual({});
  });
  test('bots, "-" and empty user agents are robots, with their bytes apart', () => {
    const r = count([
      { at: '2022-06-05 20:00:00', agent: GOOGLEBOT, size: 100 },
      { at: '2022-06-05 20:00:01', agent: BINGBOT, size: 200 },
      { at: '2022-06-05 20:00:02', agent: '-', size: 300 },
      { at: '2022-06-05 20:00:03', agent: '', size: 400 },
      { at: '2022-06-05 20:00:04', size: 500 },
    ]);
    expect(r).toMatchObject({ hits: 1, pages: 1, bytes: 500, visitors: 1 });
    expect(r.robots).toEqual({ hits: 4, bytes: 1000, robotsTxt: 0 });
  });
  test('a robot that gets a 404 is an error, as in AWStats', () => {
    const r = count([{ at: '2022-06-05 20:00:00', agent: GOOGLEBOT, status: 404 }]);
    expect(r.errors).toEqual({ '404': 1 });
    expect(r.robots.hits).toBe(0);
  });
  test('404 and 500 are tallied by status, not counted', () => {
    const r = count([
      { at: '2022-06-05 20:00:00', status: 404 },
      { at: '2022-06-05 20:00:01', status: 404 },
      { at: '2022-06-05 20:00:02', status: 500 },
      { at: '2022-06-05 20:00:03', status: 206 },
      { at: '2022-06-05 20:00:04', status: 301 },
    ]);
    expect(r).toMatchObject({ hits: 0, pages: 0, visits: 0, errors: { '404': 2, '500': 1, '206': 1, '301': 1 } });
  });
  test('PATCH, TRACE and CONNECT are dropped; HEAD, POST and PUT count', () => {
    const r = count([
      { at: '2022-06-05 20:00:00', method: 'PATCH' },
      { at: '2022-06-05 20:00:01', method: 'TRACE' },
      { at: '2022-06-05 20:00:02', method: 'CONNECT', url: 'example.com:443' },
      { at: '2022-06-05 20:00:03', method: 'HEAD' },
      { at: '2022-06-05 20:00:04', method: 'POST' },
      { at: '2022-06-05 20:00:05', method: 'PUT' },
    ]);
    expect(r.methods).toEqual({ PATCH: 1, TRACE: 1, CONNECT: 1 });
    expect(r.hits).toBe(3);
  });
  test('IPv6 clients are addresses like any other', () => {
    const r = count([
      { host: '2001:db8::1', at: '2022-06-05 20:00:00' },
      { host: '2001:db8::2', at: '2022-06-05 20:00:01' },
      { host: '2001:db8::1', at: '2022-06-05 20:00:02' },
      { host: '::ffff:192.0.2.9', at: '2022-06-05 20:00:03' },
    ]);
    expect(r).toMatchObject({ hits: 4, pages: 4, visits: 3, visitors: 3 });
  });
  test('.json and paths ending in / are pages; .csv, images and assets are hits only', () => {
    const r = count(
      ['/datos/resultados.json', '/gubernatura/', '/presidencia', '/a.b/c', '/datos/PREP.csv', '/datos/PREP.CSV?v=2', '/img/a.png', '/css/x.css', '/f/x.woff2', '/i/x.svg', '/feed.xml'].map(
        (url, i) => ({ at: `2022-06-05 20:00:${String(i).padStart(2, '0')}`, url }),
      ),
    );
    expect(r).toMatchObject({ hits: 11, pages: 4 });
  });
  test('the page rule is AWStats\' extension rule', () => {
    expect(isPage('/')).toBe(true);
    expect(isPage('/x.json')).toBe(true);
    expect(isPage('/x.html')).toBe(true);
    expect(isPage('/x.abcdefg')).toBe(true); // more than 6 characters is no extension
    expect(isPage('/x.tar.gz')).toBe(false);
    expect(isPage('/x.JPG')).toBe(false);
    expect(pathOf('/x.csv?download=1')).toBe('/x.csv');
    expect(pathOf('/x%2Ecsv;jsessionid=1')).toBe('/x.csv');
    expect(pathOf('/a%2Fb')).toBe('/a%2Fb');
  });
});

describe('visits', () => {
  test('3,600 s after the previous page is the same visit; 3,601 s is a new one', () => {
    const r = count([
      { at: '2022-06-05 20:00:00' },
      { at: '2022-06-05 21:00:00' },
      { at: '2022-06-05 22:00:01' },
      { at: '2022-06-05 22:30:00', url: '/img/a.png' },
      // 3,601 s after the last page: the image in between does not keep the visit alive.
      { at: '2022-06-05 23:00:02' },
    ]);
    expect(r).toMatchObject({ pages: 4, hits: 5, visits: 3, visitors: 1 });
  });
  test('a visit never spans midnight; each day counts its own visitors', () => {
    const r = count([
      { at: '2022-06-05 23:59:00', host: '192.0.2.1' },
      { at: '2022-06-06 00:01:00', host: '192.0.2.1' },
      { at: '2022-06-06 00:02:00', host: '192.0.2.2' },
    ]);
    expect(r).toMatchObject({ visits: 3, visitors: 2 });
    expect(r.days.slice(0, 2)).toEqual([
      { date: '2022-06-05', hits: 1, pages: 1, bytes: 1000, visits: 1, visitors: 1 },
      { date: '2022-06-06', hits: 2, pages: 2, bytes: 2000, visits: 2, visitors: 2 },
    ]);
    expect(r.days).toHaveLength(8);
  });
});

describe('time', () => {
  test('lines outside the period are tallied apart, at its exact edges', () => {
    const r = count([
      { at: '2022-06-04 23:59:59' },
      { at: '2022-06-05 00:00:00' },
      { at: '2022-06-12 23:59:59' },
      { at: '2022-06-13 00:00:00' },
    ]);
    expect(r).toMatchObject({ hits: 2, outside: 2, lines: 4 });
  });
  test('an offset other than the publication\'s is converted to its timezone', () => {
    // 05:30 UTC on 6 June is 00:30 on 6 June in Mexico City (UTC-5); 04:59:59 UTC is still 5 June.
    const r = count([
      { at: '2022-06-06 05:30:00', offset: 0 },
      { at: '2022-06-06 04:59:59', offset: 0 },
      { at: '2022-06-13 06:00:00', offset: 60 },
    ]);
    expect(r.days[0]).toMatchObject({ date: '2022-06-05', hits: 1 });
    expect(r.days[1]).toMatchObject({ date: '2022-06-06', hits: 1 });
    expect(r.hours[0]).toMatchObject({ hour: 0, hits: 1 });
    expect(r.hours[23]).toMatchObject({ hour: 23, hits: 1 });
    // 06:00 at UTC+1 on 13 June is 00:00 on 13 June in Mexico City: outside.
    expect(r.outside).toBe(1);
  });
});

test('a malformed line is tallied and the rest still counted', () => {
  const r = count([
    'this is not a log line',
    '192.0.2.1 - - [05/Jun/2022:20:00:00 -0500] "-" 408 - "-" "-"',
    '192.0.2.1 - - [31/Jun/2022:20:00:00 -0500] "GET / HTTP/1.1" 200 10 "-" "x"',
    '',
    { at: '2022-06-05 20:00:00' },
  ]);
  expect(r).toMatchObject({ malformed: 3, hits: 1, lines: 4 });
});

test('the common format has no user agent to judge: counted, not a robot', () => {
  const r = count([{ at: '2022-06-05 20:00:00', agent: null, size: 77 }]);
  expect(r).toMatchObject({ hits: 1, pages: 1, bytes: 77 });
  expect(parseLogLine(line({ at: '2022-06-05 20:00:00', agent: null }))?.agent).toBeUndefined();
});

test('a user agent holding an escaped quote is read whole', () => {
  const text = '192.0.2.1 - - [05/Jun/2022:20:00:00 -0500] "GET /a HTTP/1.1" 200 5 "-" "Mozilla/5.0 \\"quoted\\" Googlebot/2.1"';
  expect(parseLogLine(text)?.agent).toBe('Mozilla/5.0 \\"quoted\\" Googlebot/2.1');
  expect(count([text]).robots.hits).toBe(1);
});

describe('files merged in time order', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'difusion-traffic-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a .gz rotation and the live file count as one log, visits across them', async () => {
    // The rotated file holds the evening; the live one the night. Read in any order, the visits are the same.
    await writeFile(
      join(dir, 'access_log.1.gz'),
      gzipSync(lines([{ at: '2022-06-05 20:00:00' }, { at: '2022-06-05 20:30:00', host: '2001:db8::5' }, { at: '2022-06-05 20:59:00' }])),
    );
    await writeFile(join(dir, 'access_log'), lines([{ at: '2022-06-05 21:00:00' }, { at: '2022-06-05 22:00:01' }]) + 'garbage\n');
    for (const order of [['access_log', 'access_log.1.gz'], ['access_log.1.gz', 'access_log']]) {
      const counter = new TrafficCounter(PERIOD, TZ);
      const sources = await Promise.all(order.map((name) => logFileSource(join(dir, name))));
      await countMerged(sources, counter);
      expect(counter.result()).toMatchObject({ hits: 5, pages: 5, visits: 3, visitors: 2, malformed: 1, lines: 6 });
    }
  });

  test('lines cut across read chunks are read whole; a last line without its newline is malformed', async () => {
    const text = lines(Array.from({ length: 12_000 }, (_, i) => ({ at: '2022-06-05 20:00:00', url: `/p${'x'.repeat(i % 300)}` })));
    for (const [name, bytes] of [
      ['big', Buffer.from(text.slice(0, -1))],
      ['big.gz', gzipSync(text)],
    ] as const) {
      await writeFile(join(dir, name), bytes);
      const counter = new TrafficCounter(PERIOD, TZ);
      await countMerged([await logFileSource(join(dir, name))], counter);
      expect(bytes.length > 1 << 20 || name.endsWith('.gz')).toBe(true);
      // The plain copy lost its last newline: that line was being written when the file was copied.
      expect(counter.result()).toMatchObject(name === 'big' ? { hits: 11_999, malformed: 1 } : { hits: 12_000, malformed: 0 });
    }
  });

  test('interleaved files are merged line by line', async () => {
    await writeFile(join(dir, 'a'), lines([{ at: '2022-06-05 20:00:00' }, { at: '2022-06-05 22:00:00' }]));
    await writeFile(join(dir, 'b'), lines([{ at: '2022-06-05 21:00:00' }, { at: '2022-06-05 23:00:00' }]));
    const counter = new TrafficCounter(PERIOD, TZ);
    await countMerged([await logFileSource(join(dir, 'a')), await logFileSource(join(dir, 'b'))], counter);
    // In time order the gaps are 3,600 s: one visit. Read file after file it would be three.
    expect(counter.result()).toMatchObject({ visits: 1 });
  });
});
