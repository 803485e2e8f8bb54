import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { cutLibrary, lastCutsDir } from '../../src/core/publish/cut-library.js';
import { StateStore } from '../../src/core/records/state.js';
import { HashCache, buildManifest } from '../../src/core/shared/manifest.js';
import { scanCut } from '../../src/core/publish/cut.js';

/** The standby of the alternate site: an empty state dir, the same cuts as the host that published them. */

const A = '20220605_2015_PREP';
const B = '20220605_2030_PREP';
let dir: string;
let cuts: string;

async function cut(name: string, files: Record<string, string>): Promise<void> {
  for (const [p, body] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(cuts, name, p)), { recursive: true });
    await writeFile(path.join(cuts, name, p), body);
  }
}

/** The manifest the host that published the cut wrote (the same code, on its own copy). */
async function publishedManifest(name: string): Promise<{ text: string; digest: string }> {
  const m = await buildManifest(path.join(cuts, name), await scanCut(path.join(cuts, name)), new HashCache());
  return { text: m.text, digest: m.digest };
}

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'difusion-cut-library-'));
  cuts = path.join(dir, 'cuts');
  await cut(A, { 'index.html': 'a', 'datos/x.json': '{"v":1}' });
  await cut(B, { 'index.html': 'b', 'datos/x.json': '{"v":2}', 'datos/y.csv': 'y' });
});
afterEach(() => rm(dir, { recursive: true, force: true }));

it("learns a cut's manifest from this host's copy when the digest is the difusor's, and keeps it in the state dir", async () => {
  const state = new StateStore(path.join(dir, 'state'), cutLibrary(cuts));
  const { text, digest } = await publishedManifest(A);
  const hashes = await state.manifestHashes(A, digest);
  expect([...(hashes?.keys() ?? [])].sort()).toEqual(['datos/x.json', 'index.html']);
  expect(await readFile(state.manifestFile(A), 'utf8')).toBe(text);
  expect(await state.sourceOf(A)).toBe(path.join(cuts, A));
  // Known now without the library: the next run and the probe find it in the state dir.
  expect(await new StateStore(path.join(dir, 'state')).manifestHashes(A, digest)).toEqual(hashes);
});

it('never trusts a copy whose digest differs from what the difusor reports (another content under the same name)', async () => {
  const state = new StateStore(path.join(dir, 'state'), cutLibrary(cuts));
  expect(await state.manifestHashes(A, 'f'.repeat(64))).toBeUndefined();
  expect(await state.manifestText(A)).toBeUndefined();
  expect(await state.manifestHashes('not-a-cut', 'f'.repeat(64))).toBeUndefined();
  expect(await state.manifestHashes('20220605_2045_PREP', 'f'.repeat(64))).toBeUndefined();
});

it("names the cut a difusor's served manifest belongs to, hashing only the cuts whose manifest has that length", async () => {
  const state = new StateStore(path.join(dir, 'state'), cutLibrary(cuts));
  const { text, digest } = await publishedManifest(B);
  expect(await state.cutWithManifest(digest, Buffer.byteLength(text))).toBe(B);
  expect(await cutLibrary(cuts).cutsWithManifestLength(Buffer.byteLength(text))).toEqual([B]);
  expect(await state.cutWithManifest('e'.repeat(64), Buffer.byteLength(text))).toBeUndefined();
  expect(await lastCutsDir(state.dir)).toBe(cuts);
});

it('looks among the newest cuts only, so a digest nobody published costs a bounded search', async () => {
  const { text, digest } = await publishedManifest(A);
  const state = new StateStore(path.join(dir, 'state'), cutLibrary(cuts, { newest: 1 }));
  expect(await state.cutWithManifest(digest, Buffer.byteLength(text))).toBeUndefined();
});

it('hashes each cut once while its directory stays the same: a new digest every round costs comparisons, not hashing', async () => {
  const state = new StateStore(path.join(dir, 'state'), cutLibrary(cuts));
  const { text, digest } = await publishedManifest(B);
  const bytes = Buffer.byteLength(text);
  for (let round = 0; round < 3; round++) expect(await state.cutWithManifest(`${round}`.repeat(64), bytes)).toBeUndefined();
  // Rewritten in place (the directory itself unchanged): the manifest hashed in the first round is what counts.
  await writeFile(path.join(cuts, B, 'datos', 'y.csv'), 'z');
  expect(await state.cutWithManifest(digest, bytes)).toBe(B);
});

it('finds a cut whose copy arrived after a first look found nothing (a probe watching all night)', async () => {
  const C = '20220605_2045_PREP';
  const state = new StateStore(path.join(dir, 'state'), cutLibrary(cuts));
  const elsewhere = path.join(dir, 'elsewhere');
  await mkdir(path.join(elsewhere, C), { recursive: true });
  await writeFile(path.join(elsewhere, C, 'index.html'), 'c');
  const m = await buildManifest(path.join(elsewhere, C), await scanCut(path.join(elsewhere, C)), new HashCache());
  expect(await state.cutWithManifest(m.digest, Buffer.byteLength(m.text))).toBeUndefined();
  await rename(path.join(elsewhere, C), path.join(cuts, C));
  expect(await state.cutWithManifest(m.digest, Buffer.byteLength(m.text))).toBe(C);
});

it("never reads a base name from the difusor as a path out of the state dir", async () => {
  const state = new StateStore(path.join(dir, 'state'), cutLibrary(cuts));
  expect(await state.manifestHashes(`../../${path.basename(cuts)}/${A}`, 'f'.repeat(64))).toBeUndefined();
});
