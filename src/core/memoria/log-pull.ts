import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';

/**
 * A difusor's access logs copied into the state dir, read-only on the difusor (the helper's `logs` verb),
 * never pulling twice what is already here:
 *   1. list the files the registry's access_log glob matches (size, inode, mtime);
 *   2. a file is known by its inode, so a log renamed by logrotate (access_log → access_log.1) is the
 *      same file: only the bytes it gained since are pulled; a file compressed by rotation
 *      (access_log.1 → access_log.2.gz) is a new file and is pulled once;
 *   3. a copy is trusted only when its last 4 KiB match the difusor's at the same offset (same inode
 *      and same bytes: the same file, even if an inode was reused); then a copy cut short by a lost
 *      connection or a killed run is resumed from its local size; a file that shrank or whose bytes
 *      differ is pulled again from the start;
 *   4. files last written before the period are not pulled; local copies of files the difusor no longer
 *      has are removed, so a rotated log is never counted twice.
 * The index is written before each transfer, so a run killed at any point leaves a copy the next resumes.
 * At most the size listed is read: a live log's later bytes come next time, and a difusor that streams
 * without end cannot fill the state dir.
 */

export interface RemoteLogFile {
  path: string;
  size: number;
  inode: number;
  /** Last modification, epoch seconds. */
  mtime: number;
}

/** What the pull asks of a difusor; implemented over the helper's `logs` verb. */
export interface LogRemote {
  list(glob: string): Promise<RemoteLogFile[]>;
  /** sha256 hex of `length` bytes of `file` from `offset`. */
  sum(glob: string, file: string, offset: number, length: number): Promise<string>;
  /** The bytes of `file` from `offset`, at most `length` of them, written to `sink`. */
  send(glob: string, file: string, offset: number, sink: Writable, length: number): Promise<void>;
}

interface IndexEntry {
  inode: number;
  remote: string;
  /** File name in the difusor's log directory. */
  local: string;
  mtime: number;
}

export interface PulledFile {
  remote: string;
  /** Absolute path of the local copy. */
  local: string;
  size: number;
  /** Bytes transferred in this run. */
  pulled: number;
  how: 'new' | 'resumed' | 'complete' | 'again';
}

export interface PullResult {
  files: PulledFile[];
  /** Listed but last written before the period: not pulled, not read. */
  older: string[];
  bytesPulled: number;
}

const INDEX = 'index.json';
const CHECK_BYTES = 4096;

async function readIndex(dir: string): Promise<IndexEntry[]> {
  try {
    const parsed = JSON.parse(await readFile(path.join(dir, INDEX), 'utf8')) as { files?: IndexEntry[] };
    return Array.isArray(parsed.files) ? parsed.files : [];
  } catch {
    // No index, or a torn one: the copies are checked against the difusor again, never trusted blindly.
    return [];
  }
}

async function writeIndex(dir: string, files: IndexEntry[]): Promise<void> {
  const tmp = path.join(dir, `${INDEX}.${process.pid}.tmp`);
  await writeFile(tmp, JSON.stringify({ files }, null, 1) + '\n');
  await rename(tmp, path.join(dir, INDEX));
}

async function sizeOf(file: string): Promise<number | undefined> {
  return stat(file).then(
    (s) => s.size,
    () => undefined,
  );
}

async function localSum(file: string, offset: number, length: number): Promise<string> {
  const hash = createHash('sha256');
  if (length > 0) {
    for await (const chunk of createReadStream(file, { start: offset, end: offset + length - 1 })) hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}

function localName(file: RemoteLogFile): string {
  return `${file.inode}-${path.basename(file.path).replace(/[^A-Za-z0-9._-]/g, '_')}`;
}

/** Passes at most `length` bytes on to `sink` and drops the rest: the port stops the sender, this holds whatever it does. */
function atMost(sink: Writable, length: number): Writable {
  let left = length;
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      const part = chunk.subarray(0, Math.max(0, left));
      left -= part.length;
      if (part.length === 0) return done();
      if (sink.write(part)) done();
      else sink.once('drain', () => done());
    },
  });
}

async function appendFrom(remote: LogRemote, glob: string, file: RemoteLogFile, local: string, offset: number): Promise<number> {
  const sink = createWriteStream(local, { flags: offset === 0 ? 'w' : 'a' });
  const closed = new Promise<void>((resolve, reject) => {
    sink.once('close', resolve);
    sink.once('error', reject);
  });
  const length = file.size - offset;
  try {
    await remote.send(glob, file.path, offset, atMost(sink, length), length);
  } finally {
    sink.end();
    await closed;
  }
  return ((await sizeOf(local)) ?? offset) - offset;
}

export async function pullLogs(
  opts: { dir: string; glob: string; since?: Date },
  remote: LogRemote,
  onFile?: (file: RemoteLogFile, how: PulledFile['how']) => void,
): Promise<PullResult> {
  await mkdir(opts.dir, { recursive: true });
  // Two names for one file (a symlink or a hard link the glob also matches) are read once, or counted twice.
  const listed = (await remote.list(opts.glob)).filter((f, i, all) => all.findIndex((g) => g.inode === f.inode) === i);
  const index = await readIndex(opts.dir);
  const byInode = new Map(index.map((e) => [e.inode, e]));
  const sinceS = opts.since ? opts.since.getTime() / 1000 : -Infinity;
  const kept: IndexEntry[] = index.filter((e) => listed.some((f) => f.inode === e.inode));
  const result: PullResult = { files: [], older: [], bytesPulled: 0 };

  // Copies of files the difusor no longer has go first: a rotation must not leave the same lines twice.
  for (const stale of index.filter((e) => !kept.includes(e))) await rm(path.join(opts.dir, stale.local), { force: true });
  await writeIndex(opts.dir, kept);

  for (const file of listed) {
    if (file.mtime < sinceS) {
      result.older.push(file.path);
      continue;
    }
    let entry = byInode.get(file.inode);
    const have = entry ? await sizeOf(path.join(opts.dir, entry.local)) : undefined;
    let how: PulledFile['how'];
    let offset = 0;
    if (entry && have !== undefined && have <= file.size) {
      const check = Math.min(CHECK_BYTES, have);
      // Checked even when size and mtime agree: a deleted log's inode is soon reused by the next new one.
      const same =
        (await remote.sum(opts.glob, file.path, have - check, check)) === (await localSum(path.join(opts.dir, entry.local), have - check, check));
      if (same) {
        how = have === file.size ? 'complete' : 'resumed';
        offset = have;
      } else {
        how = 'again';
      }
    } else {
      how = entry ? 'again' : 'new';
    }
    entry = { inode: file.inode, remote: file.path, local: entry?.local ?? localName(file), mtime: file.mtime };
    const others = kept.filter((e) => e.inode !== file.inode);
    kept.length = 0;
    kept.push(...others, entry);
    await writeIndex(opts.dir, kept);
    onFile?.(file, how);
    const local = path.join(opts.dir, entry.local);
    const pulled = how === 'complete' ? 0 : await appendFrom(remote, opts.glob, file, local, offset);
    result.bytesPulled += pulled;
    result.files.push({ remote: file.path, local, size: (await sizeOf(local)) ?? 0, pulled, how });
  }
  return result;
}
