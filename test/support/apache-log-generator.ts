/**
 * Access logs as a real Apache 2.4 writes them, for the differential test against AWStats: written apart
 * from the implementation (nothing here imports src/ or test/support/logs.ts), from a seed that picks the
 * proportions too. Apache writes a line when the request ends, stamped with the time it began, so the
 * file is in order of *end*: a long download shows up late, across the hour or across midnight.
 *
 * Every family of line a server produces is here: pages, assets, downloads (some lasting hours), 206
 * ranges, 304 with '-', 404, HEAD, CORS OPTIONS, PATCH (405), methods Apache does not know (501), IPv4,
 * IPv6 and IPv4-mapped clients, robots, no user agent ('-' and ""), favicon, robots.txt, Apache's own
 * `OPTIONS *` internal dummy connections, lines cut short by a crash (then a newline), garbage, dates no
 * calendar has (in the past, as a clock glitch writes them), days with no traffic, and rotations split
 * mid-day with the older files gzipped.
 *
 * Each line carries its family, so a test can account for the differences the README lists, line by line.
 */

export type Family =
  | 'page'
  | 'asset'
  | 'download'
  | 'long-download'
  | 'not-modified'
  | 'not-found'
  | 'head'
  | 'cors-options'
  | 'patch'
  | 'unknown-method'
  | 'robot'
  | 'no-agent'
  | 'favicon'
  | 'robots-txt'
  | 'range'
  | 'dummy'
  | 'truncated'
  | 'garbage'
  | 'impossible-date';

export interface GeneratedLine {
  text: string;
  family: Family;
  /** When the request began: the line's stamp, as wall seconds since 1970 at -0500 (no zone arithmetic). */
  startS: number;
  /** When Apache wrote it. */
  writtenS: number;
  host: string;
  url: string;
  status: number;
  size: number;
  /** 'browser' | 'bot' | 'none' | 'apache' */
  agentKind: 'browser' | 'bot' | 'none' | 'apache';
}

export interface GeneratedFile {
  /** access_log, access_log.1, access_log.2.gz, ... (newest first in the numbering, as logrotate names them). */
  name: string;
  gzip: boolean;
  lines: GeneratedLine[];
}

export interface GeneratedLogs {
  seed: number;
  files: GeneratedFile[];
  /** Every line, in the order Apache wrote them. */
  lines: GeneratedLine[];
  /** 'YYYY-MM-DD' days that have traffic, and those left empty on purpose. */
  busyDays: string[];
  emptyDays: string[];
}

/** xoshiro128** seeded by splitmix32: not the generator test/support/logs.ts uses. */
function random(seed: number): () => number {
  let h = seed >>> 0;
  const split = (): number => {
    h = (h + 0x9e3779b9) >>> 0;
    let z = h;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  const s = [split(), split(), split(), split()];
  return () => {
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result / 4294967296;
  };
}
const rotl = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0;

const MON = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number): string => String(n).padStart(2, '0');

/** '[05/Jun/2022:23:59:50 -0500]' from wall seconds. */
function bracketTime(wallS: number): string {
  const d = new Date(wallS * 1000);
  return `[${two(d.getUTCDate())}/${MON[d.getUTCMonth()]}/${d.getUTCFullYear()}:${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} -0500]`;
}

export const BROWSERS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/102.0.0.0 Safari/537.36',
  'Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:101.0) Gecko/20100101 Firefox/101.0',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 15_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/15.5 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Linux; Android 12; SM-A525M) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/102.0.0.0 Mobile Safari/537.36',
];
export const BOTS = [
  'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
  'Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)',
];
export const DUMMY_AGENT = 'Apache/2.4.54 (Debian) (internal dummy connection)';
export const DUMMY_HOSTS = ['::1', '127.0.0.1'];

const PAGES = ['/', '/index.html', '/gubernatura/', '/ayuntamientos/', '/presidencia.php?id=3', '/datos/avance.json', '/casillas'];
const ASSETS = ['/css/prep.css', '/js/app.js', '/img/logo.png', '/img/mapa.svg', '/fonts/r.woff2', '/img/foto.jpg'];
const DOWNLOADS = ['/datos/PREP_GUB.csv', '/datos/PREP.zip', '/datos/acta.pdf'];
const UNKNOWN_METHODS = ['FOO', 'BREW', 'SEARCHX'];
/** Download paths AWStats' mime table marks 'd' (csv, zip, pdf): the 206 rule depends on it. */
export const AWSTATS_DOWNLOAD = /\.(csv|zip|pdf)$/;

export function generateApacheLogs(seed: number, opts: { requests?: number } = {}): GeneratedLogs {
  const r = random(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(r() * list.length)] as T;
  const between = (a: number, b: number): number => a + Math.floor(r() * (b - a + 1));

  // Proportions drawn from the seed: one log is mostly pages, another mostly robots or downloads.
  const weights: Array<[Family, number]> = (
    [
      ['page', 20], ['asset', 25], ['download', 4], ['long-download', 2], ['not-modified', 6], ['not-found', 3],
      ['head', 1], ['cors-options', 1], ['patch', 0.5], ['unknown-method', 0.5], ['robot', 5], ['no-agent', 1.5],
      ['favicon', 2], ['robots-txt', 0.5], ['range', 2], ['dummy', 2], ['truncated', 0.5], ['garbage', 0.3],
      ['impossible-date', 0.3],
    ] as Array<[Family, number]>
  ).map(([f, w]) => [f, w * (0.2 + r() * 1.8)]);
  const totalWeight = weights.reduce((t, [, w]) => t + w, 0);
  const family = (): Family => {
    let x = r() * totalWeight;
    for (const [f, w] of weights) if ((x -= w) < 0) return f;
    return 'page';
  };

  // A window of 3 to 6 days in June 2022; one or two of its inner days have no traffic.
  const firstDay = between(3, 20);
  const dayCount = between(3, 6);
  const empty = new Set<number>();
  for (let i = 0, n = between(0, 2); i < n; i++) empty.add(firstDay + between(1, dayCount - 2));
  const busy = Array.from({ length: dayCount }, (_, i) => firstDay + i).filter((d) => !empty.has(d));
  const dayStart = (d: number): number => Date.UTC(2022, 5, d) / 1000;

  const clients = between(30, 400);
  const host = (n: number): string => {
    const kind = n % 7;
    if (kind === 0) return `2001:db8:${(n >> 4).toString(16)}::${(n & 15).toString(16)}`;
    if (kind === 1) return `::ffff:203.0.113.${n % 256}`;
    return `198.51.${(n >> 8) & 255}.${n & 255}`;
  };

  const requests = opts.requests ?? between(1500, 4000);
  const lines: GeneratedLine[] = [];
  for (let i = 0; i < requests; i++) {
    const day = pick(busy);
    // More traffic in the evening, and always some right around midnight and the hour.
    const shape = r();
    const secondOfDay =
      shape < 0.12 ? 86_400 - between(1, 900) : shape < 0.2 ? between(0, 900) : shape < 0.3 ? between(0, 23) * 3600 + between(0, 59) + (r() < 0.5 ? 3540 : 0) : Math.floor(86_400 * Math.sqrt(r()));
    const startS = dayStart(day) + Math.min(secondOfDay, 86_399);
    lines.push(request(family(), startS));
  }
  // A long pause in a busy day: visits break after an hour of silence.
  lines.sort((a, b) => a.writtenS - b.writtenS);
  // The log starts with an ordinary request (an impossible first line would be the one AWStats keeps as newest).
  lines.unshift(request('page', lines[0]!.writtenS - 1));

  function request(f: Family, startS: number): GeneratedLine {
    const client = Math.floor(Math.pow(r(), 1.5) * clients);
    let h = host(client);
    let method = 'GET';
    let url = pick(PAGES);
    let status = 200;
    let size: number | '-' = between(400, 60_000);
    let agentKind: GeneratedLine['agentKind'] = 'browser';
    let agent = pick(BROWSERS);
    let duration = r() < 0.9 ? 0 : between(1, 4);
    let proto = r() < 0.3 ? 'HTTP/2.0' : 'HTTP/1.1';
    switch (f) {
      case 'asset': url = pick(ASSETS); break;
      case 'download': url = pick(DOWNLOADS); size = between(100_000, 5_000_000); break;
      case 'long-download':
        url = pick(DOWNLOADS);
        size = between(50_000_000, 900_000_000);
        // Minutes to hours: past the hour, past midnight, past AWStats' two hours.
        duration = pick([between(60, 900), between(900, 7000), between(7000, 14_000)]);
        break;
      case 'not-modified': status = 304; size = '-'; url = pick([...PAGES, ...ASSETS]); break;
      case 'not-found': status = 404; size = 196; url = `/no/${between(1, 50)}.html`; break;
      case 'head': method = 'HEAD'; size = '-'; url = pick([...PAGES, ...DOWNLOADS]); break;
      case 'cors-options': method = 'OPTIONS'; size = '-'; url = '/datos/avance.json'; break;
      case 'patch': method = 'PATCH'; status = 405; size = 225; break;
      case 'unknown-method': method = pick(UNKNOWN_METHODS); status = 501; size = 207; break;
      case 'robot': agentKind = 'bot'; agent = pick(BOTS); url = pick([...PAGES, ...ASSETS]); break;
      case 'no-agent': agentKind = 'none'; agent = pick(['-', '']); break;
      case 'favicon': url = '/favicon.ico'; size = r() < 0.2 ? 209 : 1150; status = size === 209 ? 404 : 200; break;
      case 'robots-txt': url = '/robots.txt'; size = 67; agentKind = r() < 0.5 ? 'bot' : 'browser'; agent = agentKind === 'bot' ? pick(BOTS) : agent; break;
      case 'range':
        // A range: a resumed download, or a page a player asks in parts. Short, so written in order.
        status = 206;
        url = r() < 0.7 ? pick(DOWNLOADS) : pick(PAGES);
        size = between(1, 2_000_000);
        duration = 0;
        if (r() < 0.2) {
          agentKind = r() < 0.5 ? 'bot' : 'none';
          agent = agentKind === 'bot' ? pick(BOTS) : '-';
        }
        break;
      case 'dummy':
        // mpm's wake-up of its own children: from loopback, no size, Apache's own agent.
        h = pick(DUMMY_HOSTS);
        method = 'OPTIONS';
        url = '*';
        proto = 'HTTP/1.0';
        size = '-';
        agentKind = 'apache';
        agent = DUMMY_AGENT;
        duration = 0;
        break;
      default: break;
    }
    const writtenS = startS + duration;
    let text = `${h} - - ${bracketTime(startS)} "${method} ${url} ${proto}" ${status} ${size} "${r() < 0.5 ? '-' : 'https://prep.example.mx/'}" "${agent}"`;
    if (f === 'truncated') {
      // Apache killed mid-write; the next start writes on a new line.
      text = text.slice(0, between(1, text.length - 2));
    } else if (f === 'garbage') {
      text = pick(['\u0000\u0000\u0000\u0000', 'GET / HTTP/1.1', '-- MARK --', `${h} - - [ - ] "" 0 0`, '\u0016\u0003\u0001\u0002\u0000\u0001']);
    } else if (f === 'impossible-date') {
      // A clock glitch: a day that does not exist, always in the past of what surrounds it.
      // Another month's: a glitch read first of all by AWStats' merge would otherwise start June's data file.
      const bad = pick(['30/Feb/2022', '31/Apr/2022', '15/Foo/2022']);
      text = text.replace(/\[\d\d\/\w\w\w\/\d{4}/, `[${bad}`);
    }
    return { text, family: f, startS, writtenS, host: h, url, status, size: size === '-' ? 0 : size, agentKind };
  }

  // Rotations at moments of the log, not at midnight: the older files gzipped, as logrotate's delaycompress leaves them.
  const fileCount = between(1, 4);
  const cuts = Array.from({ length: fileCount - 1 }, () => between(1, lines.length - 1)).sort((a, b) => a - b);
  const bounds = [0, ...cuts, lines.length];
  const files: GeneratedFile[] = [];
  for (let i = 0; i < fileCount; i++) {
    const age = fileCount - 1 - i;
    files.push({ name: age === 0 ? 'access_log' : `access_log.${age}${age >= 2 ? '.gz' : ''}`, gzip: age >= 2, lines: lines.slice(bounds[i], bounds[i + 1]) });
  }
  const iso = (d: number): string => `2022-06-${two(d)}`;
  return { seed, files: files.filter((f) => f.lines.length > 0), lines, busyDays: busy.map(iso), emptyDays: [...empty].sort().map(iso) };
}
