import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface ManifestEntry {
  path: string;
  size: number;
  sha256: string;
}

export interface Manifest {
  entries: ManifestEntry[];
  /** The exact bytes of MANIFEST.sha256. */
  text: string;
  /** SHA-256 of `text`: identifies the release's content as a whole. */
  digest: string;
  totalBytes: number;
}

/** sha256sum's own escaping: a name holding a backslash or newline gets a leading '\' on its line. */
export function manifestLine(entry: { path: string; sha256: string }): string {
  if (/[\\\n]/.test(entry.path)) {
    return `\\${entry.sha256}  ${entry.path.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n`;
  }
  return `${entry.sha256}  ${entry.path}\n`;
}

export function manifestText(entries: Array<{ path: string; sha256: string }>): string {
  return entries.map(manifestLine).join('');
}

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function hashFile(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file, { highWaterMark: 1 << 20 })
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}

/**
 * Remembers hashes by (device, inode, size, mtime): a new cut is mostly hard links to the previous
 * one, so most of its files need no reading at all.
 */
export class HashCache {
  private readonly known = new Map<string, string>();
  private readonly used = new Map<string, string>();

  constructor(private readonly file?: string) {}

  static key(f: CutFile): string {
    return `${f.dev}:${f.ino}:${f.size}:${f.mtimeMs}`;
  }

  async load(): Promise<void> {
    if (!this.file) return;
    const text = await readFile(this.file, 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      const [key, hash] = line.split(' ');
      if (key && hash && /^[0-9a-f]{64}$/.test(hash)) this.known.set(key, hash);
    }
  }

  get(f: CutFile): string | undefined {
    const key = HashCache.key(f);
    const hash = this.known.get(key);
    if (hash) this.used.set(key, hash);
    return hash;
  }

  set(f: CutFile, hash: string): void {
    this.used.set(HashCache.key(f), hash);
  }

  /** Keeps only what the last cut used, so the cache never outgrows one cut. */
  async save(): Promise<void> {
    if (!this.file) return;
    await mkdir(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    await writeFile(tmp, [...this.used].map(([k, h]) => `${k} ${h}\n`).join(''));
    await rename(tmp, this.file);
  }
}

const SMALL_FILE = 8 << 20;

export interface ManifestProgress {
  (done: number, total: number): void;
}

export async function buildManifest(
  cutDir: string,
  files: CutFile[],
  cache: HashCache,
  onProgress?: ManifestProgress,
  parallel = 4,
): Promise<Manifest> {
  const hashes = new Array<string>(files.length);
  let readSinceYield = 0;
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const i = next++;
      const f = files[i] as CutFile;
      let hash = cache.get(f);
      if (!hash) {
        // Pages and aggregates are small: one read beats a stream's setup; acta images and zips still stream.
        const file = path.join(cutDir, f.path);
        hash = f.size <= SMALL_FILE ? sha256Hex(readFileSync(file)) : await hashFile(file);
        cache.set(f, hash);
        if (++readSinceYield >= 64) {
          readSinceYield = 0;
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
      hashes[i] = hash;
      onProgress?.(++done, files.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, files.length) }, worker));
  const entries = files.map((f, i) => ({ path: f.path, size: f.size, sha256: hashes[i] as string }));
  const text = manifestText(entries);
  return { entries, text, digest: sha256Hex(text), totalBytes: entries.reduce((n, e) => n + e.size, 0) };
}

/** Reads a MANIFEST.sha256 back (the format written above). */
export function parseManifest(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const escaped = line.startsWith('\\');
    const body = escaped ? line.slice(1) : line;
    const hash = body.slice(0, 64);
    let name = body.slice(66);
    if (escaped) name = name.replace(/\\(\\|n)/g, (_m, c: string) => (c === 'n' ? '\n' : '\\'));
    out.set(name, hash);
  }
  return out;
}

/** One regular file of a cut, as found on the publication host. */
export interface CutFile {
  /** Relative, '/'-separated, as it will appear in MANIFEST.sha256 and on the difusor. */
  path: string;
  size: number;
  mtimeMs: number;
  dev: number;
  ino: number;
}
