import { lstatSync, type Stats } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { CutFile } from '../shared/manifest.js';

export type { CutFile } from '../shared/manifest.js';


export interface CutProblem {
  path: string;
  problem: string;
}

export class CutRefusedError extends Error {
  constructor(
    readonly cutDir: string,
    readonly problems: CutProblem[],
  ) {
    const shown = problems.slice(0, 20).map((p) => `  ${JSON.stringify(p.path)}: ${p.problem}`);
    const more = problems.length > 20 ? [`  … and ${problems.length - 20} more`] : [];
    super(`refused cut ${cutDir}: ${problems.length} problem(s), nothing was sent\n${[...shown, ...more].join('\n')}`);
    this.name = 'CutRefusedError';
  }
}

/** Names the release root reserves for itself: difusion writes them, a cut may not bring its own. */
export const RESERVED_ROOT_NAMES = new Set(['MANIFEST.sha256', 'MANIFEST.sha256.sig']);

// Control characters would break line-oriented tools on the difusor (sha256sum -c, find), so they are refused.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const MAX_NAME_BYTES = 255;
const MAX_PATH_BYTES = 4000;

function describeNonRegular(st: Stats): string {
  if (st.isSymbolicLink()) return 'is a symbolic link (a cut holds only regular files and directories)';
  if (st.isFIFO()) return 'is a named pipe (fifo)';
  if (st.isSocket()) return 'is a socket';
  if (st.isBlockDevice() || st.isCharacterDevice()) return 'is a device';
  return 'is not a regular file or directory';
}

/**
 * Walks a cut without following anything, so nothing outside it can be reached.
 * Returns every file sorted by path bytes, or throws CutRefusedError naming every bad entry.
 */
export async function scanCut(cutDir: string): Promise<CutFile[]> {
  const root = path.resolve(cutDir);
  const rootStat = await lstat(root).catch((error: NodeJS.ErrnoException) => {
    throw new CutRefusedError(cutDir, [{ path: '.', problem: error.code === 'ENOENT' ? 'does not exist' : error.message }]);
  });
  if (!rootStat.isDirectory()) throw new CutRefusedError(cutDir, [{ path: '.', problem: describeNonRegular(rootStat) }]);

  const files: CutFile[] = [];
  const problems: CutProblem[] = [];
  const pending: string[] = [''];
  while (pending.length > 0) {
    const rel = pending.pop() as string;
    const names = await readdir(path.join(root, rel), { encoding: 'buffer' }).catch((error: NodeJS.ErrnoException) => {
      problems.push({ path: rel || '.', problem: `cannot be read: ${error.code ?? error.message}` });
      return [] as Buffer[];
    });
    for (const raw of names) {
      const name = raw.toString('utf8');
      const relPath = rel === '' ? name : `${rel}/${name}`;
      if (!Buffer.from(name, 'utf8').equals(raw)) {
        problems.push({ path: relPath, problem: 'name is not valid UTF-8' });
        continue;
      }
      if (CONTROL.test(name)) {
        problems.push({ path: relPath, problem: 'name contains a control character' });
        continue;
      }
      if (raw.length > MAX_NAME_BYTES) {
        problems.push({ path: relPath, problem: `name is longer than ${MAX_NAME_BYTES} bytes` });
        continue;
      }
      if (Buffer.byteLength(relPath) > MAX_PATH_BYTES) {
        problems.push({ path: relPath, problem: `path is longer than ${MAX_PATH_BYTES} bytes` });
        continue;
      }
      if (rel === '' && RESERVED_ROOT_NAMES.has(name)) {
        problems.push({ path: relPath, problem: 'is reserved at the cut root: difusion writes its own manifest' });
        continue;
      }
      // Synchronous on purpose: thousands of tiny lstat calls cost far more through the promise pool.
      let st: Stats;
      try {
        st = lstatSync(path.join(root, relPath));
      } catch (error) {
        const e = error as NodeJS.ErrnoException;
        problems.push({ path: relPath, problem: `cannot be read: ${e.code ?? e.message}` });
        continue;
      }
      // `sha256sum -c MANIFEST.sha256` reads a line for a file "-" from stdin: it could never be checked.
      if (rel === '' && name === '-' && !st.isDirectory()) {
        problems.push({ path: relPath, problem: 'a file named "-" at the cut root cannot be checked with sha256sum -c' });
        continue;
      }
      if (st.isDirectory()) pending.push(relPath);
      else if (st.isFile()) files.push({ path: relPath, size: st.size, mtimeMs: st.mtimeMs, dev: st.dev, ino: st.ino });
      else problems.push({ path: relPath, problem: describeNonRegular(st) });
    }
  }
  if (problems.length > 0) throw new CutRefusedError(cutDir, problems.sort((a, b) => compareBytes(a.path, b.path)));
  return files.sort((a, b) => compareBytes(a.path, b.path));
}

export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
