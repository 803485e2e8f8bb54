import { parseLogLine, type LogRecord } from './access-log.js';
import type { TrafficCounter } from './traffic.js';

/**
 * A difusor's log files (the live one and its rotations, plain or gzip) read as one stream in time
 * order: a k-way merge on each file's next line. Files are read in chunks, one chunk per file held
 * at a time, so memory does not grow with the logs. A malformed line has no time; it is tallied
 * where it is met. Apache writes one format per file: in a file whose first chunk holds a combined line,
 * a line without referer and user agent is a combined line cut short (a crash mid-write), malformed, as
 * AWStats reads it with LogFormat=1, never a common-format line with half its size.
 */

/**
 * What the core asks of a log file: its lines in chunks, and how many bytes of the file each chunk consumed.
 * `cutShort` counts a last line without its newline: Apache ends every line, so it is a line still being
 * written when the file was copied, and is tallied as malformed, never counted from half its fields.
 */
export interface LogChunk {
  lines: string[];
  bytes: number;
  cutShort?: number;
}

export interface LogSource {
  name: string;
  /** Bytes on disk, for progress. */
  size: number;
  chunks(): AsyncIterable<LogChunk>;
}

interface Cursor {
  source: LogSource;
  iterator: AsyncIterator<LogChunk>;
  lines: string[];
  index: number;
  head: LogRecord | undefined;
  combined: boolean | undefined;
}

/** Reads every source once; each line goes to every counter (the election period and the baseline in one pass). */
export async function countMerged(
  sources: LogSource[],
  counter: TrafficCounter | TrafficCounter[],
  onProgress?: (bytesDone: number, bytesTotal: number) => void,
): Promise<void> {
  const counters = Array.isArray(counter) ? counter : [counter];
  const malformed = (): void => {
    for (const c of counters) c.addMalformed();
  };
  const total = sources.reduce((sum, s) => sum + s.size, 0);
  let done = 0;

  // The cursor's next well-formed line within the chunk it holds; false when the chunk is used up.
  const nextInChunk = (c: Cursor): boolean => {
    while (c.index < c.lines.length) {
      const line = c.lines[c.index++] as string;
      const record = parseLogLine(line);
      if (record && (record.agent !== undefined || !c.combined)) {
        c.head = record;
        return true;
      }
      if (line.trim() !== '') malformed();
    }
    return false;
  };
  // Reads chunks until a well-formed line; false at the end of the file.
  const advance = async (c: Cursor): Promise<boolean> => {
    while (!nextInChunk(c)) {
      const next = await c.iterator.next();
      if (next.done) {
        c.head = undefined;
        return false;
      }
      done += next.value.bytes;
      for (let i = 0; i < (next.value.cutShort ?? 0); i++) malformed();
      onProgress?.(done, total);
      c.lines = next.value.lines;
      c.index = 0;
      if (c.combined === undefined) c.combined = isCombined(c.lines);
    }
    return true;
  };

  const live: Cursor[] = [];
  for (const source of sources) {
    const cursor: Cursor = { source, iterator: source.chunks()[Symbol.asyncIterator](), lines: [], index: 0, head: undefined, combined: undefined };
    if (await advance(cursor)) live.push(cursor);
  }
  while (live.length > 0) {
    let min = 0;
    for (let i = 1; i < live.length; i++) if ((live[i] as Cursor).head!.ms < (live[min] as Cursor).head!.ms) min = i;
    const cursor = live[min] as Cursor;
    let bound = Infinity;
    for (let i = 0; i < live.length; i++) if (i !== min) bound = Math.min(bound, (live[i] as Cursor).head!.ms);
    // Take from the earliest file until another file's next line comes first: rotated files rarely overlap.
    do {
      for (const c of counters) c.addRecord(cursor.head as LogRecord);
    } while ((nextInChunk(cursor) || (await advance(cursor))) && (cursor.head as LogRecord).ms <= bound);
    if (!cursor.head) live.splice(min, 1);
  }
}

/** true when a line of the chunk is a combined-format line; undefined when none is well formed. */
function isCombined(lines: string[]): boolean | undefined {
  let common = false;
  for (const line of lines) {
    const record = parseLogLine(line);
    if (record?.agent !== undefined) return true;
    if (record) common = true;
  }
  return common ? false : undefined;
}
