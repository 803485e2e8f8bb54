import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import type { LogSource } from '../core/memoria/log-merge.js';

/**
 * Under Node's limit for external strings (about 1 MB): a chunk's text then lives in V8's young generation,
 * freed at the next scavenge, instead of in malloc'd memory that glibc keeps once the process has used it.
 */
const CHUNK_BYTES = 256 * 1024;

/**
 * A log file on this machine as the core reads it: chunks of whole lines, gunzipped when the file is
 * gzip (by its magic bytes, whatever its name). Bytes are read as latin1: a log line is ASCII where it
 * matters, and a stray byte must not make a line unreadable. A last line without its newline is reported
 * as cut short (a live log copied mid-write), not as a line.
 */
export async function logFileSource(file: string): Promise<LogSource> {
  const { size } = await stat(file);
  const gzip = size >= 2 && (await isGzip(file));
  return {
    name: file,
    size,
    async *chunks() {
      const raw = createReadStream(file, { highWaterMark: CHUNK_BYTES });
      let consumed = 0;
      raw.on('data', (chunk) => {
        consumed += chunk.length;
      });
      const stream = gzip ? raw.pipe(createGunzip({ chunkSize: CHUNK_BYTES })) : raw;
      if (gzip) raw.on('error', (error) => stream.destroy(error));
      let rest = '';
      let reported = 0;
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        const lastNewline = chunk.lastIndexOf(10);
        if (lastNewline < 0) {
          rest += chunk.toString('latin1');
          continue;
        }
        // Split the chunk alone and glue the previous tail to its first line: no copy of the whole chunk.
        const lines = chunk.toString('latin1', 0, lastNewline).split('\n');
        lines[0] = rest + (lines[0] as string);
        rest = chunk.toString('latin1', lastNewline + 1);
        yield { lines, bytes: consumed - reported };
        reported = consumed;
      }
      yield { lines: [], bytes: consumed - reported, cutShort: rest.trim() === '' ? 0 : 1 };
    },
  };
}

async function isGzip(file: string): Promise<boolean> {
  const handle = await open(file, 'r');
  try {
    const head = Buffer.alloc(2);
    await handle.read(head, 0, 2, 0);
    return head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    await handle.close();
  }
}
