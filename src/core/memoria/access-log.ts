import { isbot } from 'isbot';

/**
 * One line of an Apache access log (combined or common format) read the way AWStats 7.8 reads it
 * with LogFormat=1: host, [time offset], "METHOD URL PROTO", status, size, and for the combined
 * format "referer" "user agent". The parser is written by hand, not as a regular expression,
 * because it runs once per line of logs that hold millions of them.
 */

export interface LogRecord {
  host: string;
  /** UTC epoch ms of the line's own time and offset. */
  ms: number;
  /** The line's own wall time as the number YYYYMMDDhhmmss (offset ignored), as AWStats compares lines. */
  stamp: number;
  method: string;
  /** The request target as logged (query included). */
  url: string;
  status: number;
  /** Response size; '-' reads as 0. */
  size: number;
  /** undefined in the common format (no such field); '' for '-' or "". */
  agent: string | undefined;
}

const MONTHS: Record<string, number> = {
  Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11,
};

let lastStamp = '';
let lastStampMs = NaN;
let lastStampNumber = NaN;

/** '05/Jun/2022:20:00:00 -0500' → UTC epoch ms, NaN when it is not such a time. */
export function parseLogTime(stamp: string): number {
  if (stamp === lastStamp) return lastStampMs;
  let ms = NaN;
  let number = NaN;
  if (stamp.length === 26 && stamp[2] === '/' && stamp[6] === '/' && stamp[11] === ':' && stamp[20] === ' ') {
    const day = num2(stamp, 0);
    const month = MONTHS[stamp.slice(3, 6)];
    const year = num2(stamp, 7) * 100 + num2(stamp, 9);
    const hour = num2(stamp, 12);
    const minute = num2(stamp, 15);
    const second = num2(stamp, 18);
    const sign = stamp[21] === '-' ? -1 : stamp[21] === '+' ? 1 : NaN;
    const offset = sign * (num2(stamp, 22) * 60 + num2(stamp, 24)) * 60_000;
    if (month !== undefined && day >= 1 && day <= 31 && hour <= 23 && minute <= 59 && second <= 60) {
      const wall = Date.UTC(year, month, day, hour, minute, second);
      // 31/Jun would roll over to 1 July; it is not a time.
      if (new Date(wall).getUTCDate() === day) {
        ms = wall - offset;
        number = ((((year * 100 + month + 1) * 100 + day) * 100 + hour) * 100 + minute) * 100 + second;
      }
    }
  }
  lastStamp = stamp;
  lastStampMs = ms;
  lastStampNumber = number;
  return ms;
}

function num2(s: string, at: number): number {
  const a = s.charCodeAt(at) - 48;
  const b = s.charCodeAt(at + 1) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : NaN;
}

function isDigits(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** The closing quote of a quoted field starting after `from`; Apache writes a quote inside a field as \". */
function closingQuote(line: string, from: number): number {
  let at = line.indexOf('"', from);
  while (at > 0 && line.charCodeAt(at - 1) === 92 /* \ */) at = line.indexOf('"', at + 1);
  return at;
}

/** A record, or undefined for a line that is not an access-log line (tallied as malformed). */
export function parseLogLine(text: string): LogRecord | undefined {
  const line = text.charCodeAt(text.length - 1) === 13 ? text.slice(0, -1) : text;
  const hostEnd = line.indexOf(' ');
  if (hostEnd <= 0) return undefined;
  const open = line.indexOf('[', hostEnd);
  if (open < 0 || line.charCodeAt(open + 27) !== 93 /* ] */) return undefined;
  // Most lines share their second with the line before: compare in place before slicing a new string.
  const ms = lastStamp !== '' && line.startsWith(lastStamp, open + 1) ? lastStampMs : parseLogTime(line.slice(open + 1, open + 27));
  if (Number.isNaN(ms)) return undefined;
  const stamp = lastStampNumber;
  if (line.charCodeAt(open + 28) !== 32 || line.charCodeAt(open + 29) !== 34) return undefined;
  const requestStart = open + 30;
  const requestEnd = closingQuote(line, requestStart);
  if (requestEnd < 0) return undefined;
  const methodEnd = line.indexOf(' ', requestStart);
  if (methodEnd < 0 || methodEnd >= requestEnd || methodEnd === requestStart) return undefined;
  let urlEnd = line.indexOf(' ', methodEnd + 1);
  if (urlEnd < 0 || urlEnd > requestEnd) urlEnd = requestEnd;
  if (urlEnd === methodEnd + 1) return undefined;
  const statusStart = requestEnd + 2;
  const statusEnd = line.indexOf(' ', statusStart);
  if (line.charCodeAt(requestEnd + 1) !== 32 || statusEnd < 0) return undefined;
  const statusText = line.slice(statusStart, statusEnd);
  if (statusText.length !== 3 || !isDigits(statusText)) return undefined;
  let sizeEnd = line.indexOf(' ', statusEnd + 1);
  if (sizeEnd < 0) sizeEnd = line.length;
  const sizeText = line.slice(statusEnd + 1, sizeEnd);
  let size = 0;
  if (sizeText !== '-') {
    if (!isDigits(sizeText)) return undefined;
    size = Number(sizeText);
  }
  let agent: string | undefined;
  if (sizeEnd < line.length) {
    // Combined: "referer" "agent" (anything after them, as in vhost_combined variants, is ignored).
    if (line.charCodeAt(sizeEnd + 1) !== 34) return undefined;
    const refererEnd = closingQuote(line, sizeEnd + 2);
    if (refererEnd < 0 || line.charCodeAt(refererEnd + 1) !== 32 || line.charCodeAt(refererEnd + 2) !== 34) return undefined;
    const agentEnd = closingQuote(line, refererEnd + 3);
    if (agentEnd < 0) return undefined;
    agent = line.slice(refererEnd + 3, agentEnd);
    if (agent === '-') agent = '';
  }
  return {
    host: line.slice(0, hostEnd),
    ms,
    stamp,
    method: line.slice(requestStart, methodEnd),
    url: line.slice(methodEnd + 1, urlEnd),
    status: Number(statusText),
    size,
    agent,
  };
}

/** Methods SPEC never counts (AWStats drops them as "not qualified"). */
export const UNCOUNTED_METHODS = new Set(['PATCH', 'TRACE', 'CONNECT']);

/**
 * The methods AWStats 7.8 qualifies for a web log (LogType=W), the only lines it judges for order: a line of
 * any other method is dropped before its date is read, so it neither moves nor fails the out-of-order check.
 */
const AWSTATS_METHODS = new Set(
  'GET POST HEAD PROPFIND CHECKOUT LOCK PROPPATCH OPTIONS MKACTIVITY PUT MERGE DELETE REPORT MKCOL COPY RPC_IN_DATA RPC_OUT_DATA OK ERR! PRIV'.split(' '),
);
const AWSTATS_STREAM_METHODS = new Set(['GET', 'MMS', 'RTSP', 'HTTP', 'RTP']);

export function awstatsQualifies(method: string): boolean {
  return AWSTATS_METHODS.has(method) || AWSTATS_STREAM_METHODS.has(method.toUpperCase());
}

/**
 * Extensions that are not pages: AWStats' default NotPageList, its images, and its downloads
 * (mime.pm's 'i' and 'd' types), which AWStats excludes from pages as well.
 */
const NOT_PAGE_LIST = 'css js class gif jpg jpeg png bmp ico svg svgz webp heic tif tiff rss xml swf eot woff woff2';
const DOWNLOADS =
  '7z aac ace ai apk asf avi azw azw3 bin bz2 cab cdr csv deb divx dmg doc docx emz epub f4v flac flv frl gpx gz iso jar ' +
  'kml kmz lit log lzma m3u m4a m4v mdb mkv mobi mov mp3 mp4 mpeg mpg msi mso odb odf odg odm odp ods odt oga ogg ogv ogx ' +
  'otg oth otp ots ott ova ovf oxt pdf pkg pps ppt pptx psd qcow2 qt rar raw rm rpm rpt rtf sxc sxd sxg sxi sxm sxw tar ' +
  'tbz2 tgz toast txt vcd vdi vhdx vmdk vpc wav webm wma wmf wmv wmz xls xlsx xsl xz z zip';
export const NOT_PAGE_EXTENSIONS: ReadonlySet<string> = new Set(`${NOT_PAGE_LIST} ${DOWNLOADS}`.split(' '));

/** The path AWStats keeps: %-escapes of unreserved characters decoded, anchor and query ('?' or ';') removed. */
export function pathOf(url: string): string {
  let end = url.length;
  for (let i = 0; i < url.length; i++) {
    const c = url.charCodeAt(i);
    if (c === 63 /* ? */ || c === 59 /* ; */ || c === 35 /* # */) {
      end = i;
      break;
    }
  }
  const path = end === url.length ? url : url.slice(0, end);
  return path.includes('%') ? decodeUnreserved(path) : path;
}

function decodeUnreserved(path: string): string {
  return path.replace(/%([0-9A-Fa-f]{2})/g, (escape, hex: string) => {
    const ch = String.fromCharCode(parseInt(hex, 16));
    return /[A-Za-z0-9\-._~]/.test(ch) ? ch : escape;
  });
}

/** AWStats' extension rule: `\.(\w{1,6})$` on the path, lower-cased; a path ending in '/' is a page. */
export function isPage(path: string): boolean {
  const dot = path.lastIndexOf('.');
  if (dot < 0 || path.length - dot - 1 > 6 || path.length - dot - 1 < 1) return true;
  for (let i = dot + 1; i < path.length; i++) {
    const c = path.charCodeAt(i);
    const word = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
    if (!word) return true;
  }
  return !NOT_PAGE_EXTENSIONS.has(path.slice(dot + 1).toLowerCase());
}

const BOT_CACHE_LIMIT = 50_000;
const botCache = new Map<string, boolean>();

/**
 * A robot per SPEC: a user agent isbot recognizes, or none at all ('-' or empty). A common-format line has
 * no user-agent field, so it is not judged by one (AWStats skips robot detection there too).
 */
export function isRobot(agent: string | undefined): boolean {
  if (agent === undefined) return false;
  if (agent === '') return true;
  let known = botCache.get(agent);
  if (known === undefined) {
    // isbot runs one large regular expression; real logs repeat a few thousand agents millions of times.
    if (botCache.size >= BOT_CACHE_LIMIT) botCache.clear();
    known = isbot(agent);
    botCache.set(ownCopy(agent), known);
  }
  return known;
}

/**
 * A copy of `text` that does not keep alive the string it was cut from. A line is a slice of its chunk (a
 * megabyte, held by V8 outside its heap as an external string), and a slice kept in a long-lived map (an
 * address, a user agent) would keep the whole chunk: memory would follow the log, not the addresses.
 */
export function ownCopy(text: string): string {
  return (' ' + text).slice(1);
}
