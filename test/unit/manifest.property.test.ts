import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { compareBytes, scanCut } from '../../src/core/publish/cut.js';
import { HashCache, buildManifest, parseManifest } from '../../src/core/shared/manifest.js';

/** Generous: these tests spawn real processes (sh, rsync, sha256sum), and a loaded machine makes that slow. */
const T = 60_000;

/**
 * For any legal cut, the manifest difusion writes is one GNU sha256sum accepts as is
 * (`sha256sum -c --strict`), and parseManifest reads the same names back.
 */

// The same rule scanCut applies: C0, DEL and C1 controls are refused, so they are not "legal names".
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

const fragment = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 6 }) },
  { weight: 2, arbitrary: fc.constantFrom(' ', '  ', '\\', '\\\\', '-', '--', "'", '"', '$(x)', '`id`', '*', '?', '[a]', '#', '%', '~') },
  { weight: 2, arbitrary: fc.constantFrom('ñ', 'á', 'Ñandú', 'e\u0301', '😀', '\u2028', '\ufeff', 'índice.html', '.jpg', 'MANIFEST.sha256') },
);

const segment = fc
  .array(fragment, { minLength: 1, maxLength: 4 })
  .map((parts) => parts.join(''))
  .filter((s) => !s.includes('/') && !CONTROL.test(s) && s !== '.' && s !== '..' && Buffer.byteLength(s) <= 255);

const relPath = fc.array(segment, { minLength: 1, maxLength: 3 }).map((segments) => segments.join('/'));

/** Distinct paths where none is a directory of another, minus the names a cut may not hold at its root. */
const cutPaths = fc
  .uniqueArray(relPath, { minLength: 1, maxLength: 12 })
  .map((paths) => paths.filter((p) => !paths.some((q) => q !== p && q.startsWith(`${p}/`))))
  // MANIFEST.sha256 is reserved at the root; "-" at the root is sha256sum's stdin (a known bug, see cut.test.ts).
  .map((paths) => paths.filter((p) => !['MANIFEST.sha256', 'MANIFEST.sha256.sig'].includes(p.split('/')[0] as string) && p !== '-'))
  .filter((paths) => paths.length > 0);

const sha = (data: string): string => createHash('sha256').update(data).digest('hex');

describe('MANIFEST.sha256 for arbitrary legal names', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(path.join(tmpdir(), 'difusion-manifest-prop-'));
  }, T);
  afterAll(() => {
    rmSync(work, { recursive: true, force: true });
  }, T);

  it('passes the real `sha256sum -c --strict` and parses back to the same names and hashes', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(cutPaths, async (paths) => {
        const cut = path.join(work, `case-${n++}`);
        for (const p of paths) {
          mkdirSync(path.dirname(path.join(cut, p)), { recursive: true });
          writeFileSync(path.join(cut, p), `content of ${p}\n`);
        }
        const files = await scanCut(cut);
        expect(files.map((f) => f.path)).toEqual([...paths].sort(compareBytes));

        const manifest = await buildManifest(cut, files, new HashCache());
        writeFileSync(path.join(cut, 'MANIFEST.sha256'), manifest.text);
        // Throws (failing the property) on any line sha256sum cannot parse or any file that does not match.
        execFileSync('sha256sum', ['-c', '--strict', '--quiet', 'MANIFEST.sha256'], {
          cwd: cut,
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, LC_ALL: 'C' },
        });

        const parsed = parseManifest(manifest.text);
        expect([...parsed.keys()]).toEqual(files.map((f) => f.path));
        for (const p of paths) expect(parsed.get(p)).toBe(sha(`content of ${p}\n`));
        rmSync(cut, { recursive: true, force: true });
      }),
      { numRuns: 35 },
    );
  }, T);
});
