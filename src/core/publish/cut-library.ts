import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { CutRefusedError, scanCut } from './cut.js';
import { HashCache, buildManifest, manifestLine } from '../shared/manifest.js';
import { compareCutIds, isCutId } from '../shared/cut-id.js';
import { StateStore, type CutManifestSource, type LearnedManifest } from '../records/state.js';

/**
 * The cuts directory as a library of manifests. A standby host (the alternate site) has the same cuts as the
 * primary, so the manifest of a cut the other host published is this host's own copy of that cut, hashed here:
 * trusted only where its digest equals what the difusor reports (records/state.ts checks it), never the
 * difusor's word for it.
 */

/** How many of the newest cuts a digest nobody knows is looked for among: a few hours of a night's cuts. */
export const LEARN_AMONG_NEWEST = 12;

type CutFiles = Awaited<ReturnType<typeof scanCut>>;

interface Known {
  /** The cut directory as it was when read: a directory replaced under the same name is read again. */
  key: string;
  files: Promise<CutFiles | undefined>;
  manifest?: Promise<LearnedManifest | undefined>;
}

export function cutLibrary(cutsDir: string, opts: { hashCacheFile?: string; newest?: number } = {}): CutManifestSource {
  const newest = opts.newest ?? LEARN_AMONG_NEWEST;
  // Each cut is scanned and hashed at most once while its directory stays the same: a difusor answering a new
  // digest every round (a probe watching all night) costs a comparison, not a hashing of every recent cut.
  const known = new Map<string, Known>();

  const cutOf = async (cut: string): Promise<Known | undefined> => {
    const dir = path.join(cutsDir, cut);
    const info = await stat(dir).catch(() => undefined);
    if (!info?.isDirectory()) return undefined;
    const key = `${info.dev}:${info.ino}:${info.mtimeMs}`;
    let entry = known.get(cut);
    if (entry?.key !== key) {
      // A cut this host's copy of which is damaged teaches nothing; publishing it is refused elsewhere.
      const files = scanCut(dir).catch((error: unknown) => {
        if (error instanceof CutRefusedError) return undefined;
        throw error;
      });
      entry = { key, files };
      known.set(cut, entry);
    }
    return entry;
  };

  const hash = async (cut: string, files: CutFiles): Promise<LearnedManifest> => {
    // The publish's cache spares reading files shared with cuts already hashed; it is not rewritten from here.
    const cache = new HashCache(opts.hashCacheFile);
    await cache.load();
    const manifest = await buildManifest(path.join(cutsDir, cut), files, cache);
    return { text: manifest.text, entries: manifest.entries.map((e) => ({ path: e.path, size: e.size })), source: path.join(cutsDir, cut) };
  };

  return {
    async manifestOf(cut: string): Promise<LearnedManifest | undefined> {
      if (!isCutId(cut)) return undefined;
      const entry = await cutOf(cut);
      if (!entry) return undefined;
      entry.manifest ??= entry.files.then((files) => (files ? hash(cut, files) : undefined));
      return entry.manifest;
    },

    async cutsWithManifestLength(bytes: number): Promise<string[]> {
      const names = await readdir(cutsDir).catch(() => [] as string[]);
      const recent = names.filter(isCutId).sort((a, b) => compareCutIds(b, a)).slice(0, newest);
      const matching: string[] = [];
      for (const cut of recent) {
        const files = await (await cutOf(cut))?.files;
        // Every line is as long as its path makes it, whatever the hash: no file needs reading to rule a cut out.
        if (files && files.reduce((n, f) => n + Buffer.byteLength(manifestLine({ path: f.path, sha256: '0'.repeat(64) })), 0) === bytes) matching.push(cut);
      }
      return matching;
    },
  };
}

/** Where this host last published a cut from: the cuts directory its probe learns the other host's cuts in. */
export async function lastCutsDir(stateDir: string): Promise<string | undefined> {
  const state = new StateStore(stateDir);
  const cuts = (await readdir(path.join(stateDir, 'cuts')).catch(() => [] as string[])).filter(isCutId).sort((a, b) => compareCutIds(b, a));
  for (const cut of cuts) {
    const source = await state.sourceOf(cut);
    if (source) return path.dirname(source);
  }
  return undefined;
}

/**
 * The manifest of a cut as this host's own copy of it makes it, from the cuts directory it last published from:
 * what a standby checks a release against when it rolls back to a cut the other host published.
 */
export async function manifestFromOwnCopy(stateDir: string, cut: string): Promise<string | undefined> {
  const dir = await lastCutsDir(stateDir);
  return dir ? (await cutLibrary(dir).manifestOf(cut))?.text : undefined;
}
