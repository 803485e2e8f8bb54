import { readdir } from 'node:fs/promises';
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

export function cutLibrary(cutsDir: string, opts: { hashCacheFile?: string; newest?: number } = {}): CutManifestSource {
  const newest = opts.newest ?? LEARN_AMONG_NEWEST;
  const scanned = new Map<string, Promise<Awaited<ReturnType<typeof scanCut>> | undefined>>();
  const scan = (cut: string): Promise<Awaited<ReturnType<typeof scanCut>> | undefined> => {
    let files = scanned.get(cut);
    if (!files) {
      // A cut this host's copy of which is damaged or missing teaches nothing; publishing it is refused elsewhere.
      files = scanCut(path.join(cutsDir, cut)).catch((error: unknown) => {
        if (error instanceof CutRefusedError) return undefined;
        throw error;
      });
      scanned.set(cut, files);
    }
    return files;
  };

  return {
    async manifestOf(cut: string): Promise<LearnedManifest | undefined> {
      if (!isCutId(cut)) return undefined;
      const files = await scan(cut);
      if (!files) return undefined;
      // The publish's cache spares reading files shared with cuts already hashed; it is not rewritten from here.
      const cache = new HashCache(opts.hashCacheFile);
      await cache.load();
      const manifest = await buildManifest(path.join(cutsDir, cut), files, cache);
      return { text: manifest.text, entries: manifest.entries.map((e) => ({ path: e.path, size: e.size })), source: path.join(cutsDir, cut) };
    },

    async cutsWithManifestLength(bytes: number): Promise<string[]> {
      const names = await readdir(cutsDir).catch(() => [] as string[]);
      const recent = names.filter(isCutId).sort((a, b) => compareCutIds(b, a)).slice(0, newest);
      const matching: string[] = [];
      for (const cut of recent) {
        const files = await scan(cut);
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
