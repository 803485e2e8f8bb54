/**
 * Access-log lines written as Apache writes them (combined or common format), for tests and the
 * benchmark: every figure a test expects comes from lines it wrote itself.
 */
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number): string => String(n).padStart(2, '0');

export const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:101.0) Gecko/20100101 Firefox/101.0';
export const CHROME =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/102.0.5005.63 Safari/537.36';
export const SAFARI_IPHONE =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 15_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/15.5 Mobile/15E148 Safari/604.1';
export const GOOGLEBOT = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';
export const BINGBOT = 'Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)';

/** '05/Jun/2022:20:00:00 -0500' for a wall time and an offset in minutes (-300 for UTC-5). */
export function logTime(wall: string, offsetMinutes = -300): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})$/.exec(wall);
  if (!m) throw new Error(`bad wall time ${wall}`);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  return `${m[3]}/${MONTHS[Number(m[2]) - 1]}/${m[1]}:${m[4]}:${m[5]}:${m[6]} ${sign}${pad(Math.floor(abs / 60))}${pad(abs % 60)}`;
}

export interface Hit {
  host?: string;
  /** Wall time 'YYYY-MM-DD HH:MM:SS' at the line's offset. */
  at: string;
  offset?: number;
  method?: string;
  url?: string;
  status?: number;
  size?: number | '-';
  referer?: string;
  /** undefined: Firefox; null: the common format (no referer, no agent). */
  agent?: string | null;
}

export function line(hit: Hit): string {
  const head =
    `${hit.host ?? '192.0.2.1'} - - [${logTime(hit.at, hit.offset ?? -300)}] ` +
    `"${hit.method ?? 'GET'} ${hit.url ?? '/'} HTTP/1.1" ${hit.status ?? 200} ${hit.size ?? 1000}`;
  if (hit.agent === null) return head;
  return `${head} "${hit.referer ?? '-'}" "${hit.agent ?? FIREFOX}"`;
}

export function lines(hits: Hit[]): string {
  return hits.map((h) => line(h) + '\n').join('');
}

/** A seeded generator, so a generated log is the same on every run. */
export function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PAGES = ['/', '/index.html', '/gubernatura/', '/ayuntamientos/durango.html', '/datos/resultados.json', '/presidencia.htm'];
const ASSETS = ['/css/prep.css', '/js/prep.js', '/img/logo.png', '/img/escudo.svg', '/fonts/roboto.woff2', '/actas/0001.jpg'];
const DOWNLOADS = ['/datos/PREP_GUB.csv', '/datos/PREP_AYUN.zip', '/datos/LEEME.pdf'];

const NOISE_URLS = ['/favicon.ico', '/robots.txt', '/a.JSON', '/x.CSV?y=1', '/d/x.tar.gz', '/p;jsessionid=3', '/q?a=b.png', '/%7Euser/', '/x%2Ecss', '/docs/', '/img.WEBP', '/file.abcdefgh'];
const NOISE_METHODS = ['GET', 'HEAD', 'POST', 'PATCH', 'PUT', 'DELETE', 'OPTIONS', 'TRACE'];
const NOISE_STATUSES = [200, 200, 304, 404, 500, 301, 403];

/**
 * A day-shaped log in time order: `count` lines from `start` (wall time, UTC-5), browsers and robots that
 * isbot and AWStats both classify the same way, pages, assets and downloads, 304s, 404s, IPv6 clients.
 * With `noise`, about one line in seven more is an odd one: favicon, robots.txt, PATCH/TRACE and other
 * methods, upper-case extensions, ';' parameters, %-escapes, other statuses, no user agent.
 */
export function* generateLog(
  count: number,
  opts: { seed?: number; start?: string; stepMs?: number; clients?: number; noise?: boolean } = {},
): Generator<string> {
  const random = seeded(opts.seed ?? 1);
  const startMs = Date.parse(`${(opts.start ?? '2022-06-05 18:00:00').replace(' ', 'T')}Z`);
  const step = opts.stepMs ?? 250;
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
  for (let i = 0; i < count; i++) {
    const wall = new Date(startMs + Math.floor(i * step)).toISOString().slice(0, 19).replace('T', ' ');
    const r = random();
    const client = Math.floor(random() * (opts.clients ?? 300));
    const host = client % 10 === 0 ? `2001:db8::${client.toString(16)}` : `198.51.${client >> 8}.${client & 255}`;
    const agent = r < 0.05 ? pick([GOOGLEBOT, BINGBOT]) : r < 0.06 ? '-' : pick([FIREFOX, CHROME, SAFARI_IPHONE]);
    const kind = random();
    const url = kind < 0.35 ? pick(PAGES) : kind < 0.9 ? pick(ASSETS) : pick(DOWNLOADS);
    const s = random();
    const status = s < 0.1 ? 304 : s < 0.13 ? 404 : 200;
    const size = status === 304 ? '-' : status === 404 ? 196 : 200 + Math.floor(random() * 90_000);
    yield line({ host, at: wall, url, status, size, agent, referer: 'https://prep.example.mx/' });
    if (opts.noise && random() < 0.15) {
      yield line({
        host: pick(['198.51.0.1', '2001:db8::a', '198.51.0.2', '::1']),
        at: wall,
        method: pick(NOISE_METHODS),
        url: pick(NOISE_URLS),
        status: pick(NOISE_STATUSES),
        size: pick([0, 10, 555, '-'] as const),
        agent: pick(['', '-', GOOGLEBOT, FIREFOX, CHROME]),
      });
    }
  }
}
