import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { linkSync, mkdirSync, readdirSync, mkdtempSync, openSync, readFileSync, rmSync, utimesSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { scanCut } from '../../src/core/publish/cut.js';
import {
  HashCache,
  buildManifest,
  hashFile,
  manifestLine,
  manifestText,
  parseManifest,
  sha256Hex,
} from '../../src/core/shared/manifest.js';

const sha = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');
const H = 'a'.repeat(64);

let work: string;

beforeEach(() => {
  work = mkdtempSync(path.join(tmpdir(), 'difusion-manifest-'));
});

afterEach(() => {
  rmSync(work, { recursive: true, force: true });
});

function writeTree(dir: string, files: Record<string, string>): void {
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), content);
  }
}

/** The same content and size, with the mtime put back: only the cache key's fields stay as they were. */
function rewriteInPlaceKeepingKey(file: string, content: string, mtime: Date): void {
  const fd = openSync(file, 'r+');
  writeSync(fd, content, 0);
  closeSync(fd);
  utimesSync(file, mtime, mtime);
}

describe('manifestLine', () => {
  it('writes "<sha256>  <path>" for a plain name', () => {
    expect(manifestLine({ path: 'actas/0001-B_A.jpg', sha256: H })).toBe(`${H}  actas/0001-B_A.jpg\n`);
  });

  it('leaves spaces, quotes, a leading dash and a leading asterisk as they are', () => {
    for (const name of ['con espacio.html', "it's \"x\"", '-rf', '*star', ' lead']) {
      expect(manifestLine({ path: name, sha256: H })).toBe(`${H}  ${name}\n`);
    }
  });

  it("escapes a backslash as sha256sum does: a leading '\\' and the backslash doubled", () => {
    expect(manifestLine({ path: 'back\\slash\\x', sha256: H })).toBe(`\\${H}  back\\\\slash\\\\x\n`);
  });

  it('escapes a newline as \\n with the leading backslash', () => {
    expect(manifestLine({ path: 'a\nb\\c', sha256: H })).toBe(`\\${H}  a\\nb\\\\c\n`);
  });

  it('writes byte for byte what GNU sha256sum writes for the same files', () => {
    const names = ['plain.txt', 'back\\slash', 'ñandú á.html', '-n', "q'uote"];
    writeTree(work, Object.fromEntries(names.map((n) => [n, `content of ${n}`])));
    const real = execFileSync('sha256sum', ['--', ...names], { cwd: work, encoding: 'utf8' });
    expect(manifestText(names.map((n) => ({ path: n, sha256: sha(`content of ${n}`) })))).toBe(real);
  });
});

describe('parseManifest', () => {
  it('reads back what manifestText wrote, escapes included', () => {
    const entries = [
      { path: 'index.html', sha256: sha('1') },
      { path: 'back\\slash', sha256: sha('2') },
      { path: 'new\nline', sha256: sha('3') },
      { path: 'tricky \\n literal', sha256: sha('4') },
      { path: '  two  spaces  ', sha256: sha('5') },
    ];
    const parsed = parseManifest(manifestText(entries));
    expect([...parsed]).toEqual(entries.map((e) => [e.path, e.sha256]));
  });

  it('ignores a final empty line and gives an empty map for an empty manifest', () => {
    expect(parseManifest('').size).toBe(0);
    expect(parseManifest(`${H}  a\n\n`)).toEqual(new Map([['a', H]]));
  });
});

describe('hashFile and sha256Hex', () => {
  it('hash a file and a string as sha256sum does', async () => {
    writeFileSync(path.join(work, 'f'), 'hola\n');
    const real = execFileSync('sha256sum', ['f'], { cwd: work, encoding: 'utf8' }).slice(0, 64);
    expect(await hashFile(path.join(work, 'f'))).toBe(real);
    expect(sha256Hex('hola\n')).toBe(real);
  });

  it('reject when the file cannot be read', async () => {
    await expect(hashFile(path.join(work, 'missing'))).rejects.toThrow(/ENOENT/);
  });
});

describe('buildManifest', () => {
  it('hashes every file in order, totals the bytes and digests the exact text', async () => {
    const cut = path.join(work, '20220605_2015');
    writeTree(cut, { 'index.html': '<h1>PREP</h1>', 'datos/a.csv': 'a,b\n', 'back\\slash': 'x' });
    const files = await scanCut(cut);
    const progress: Array<[number, number]> = [];
    const manifest = await buildManifest(cut, files, new HashCache(), (done, total) => progress.push([done, total]));
    expect(manifest.entries).toEqual([
      { path: 'back\\slash', size: 1, sha256: sha('x') },
      { path: 'datos/a.csv', size: 4, sha256: sha('a,b\n') },
      { path: 'index.html', size: 13, sha256: sha('<h1>PREP</h1>') },
    ]);
    expect(manifest.text).toBe(
      `\\${sha('x')}  back\\\\slash\n${sha('a,b\n')}  datos/a.csv\n${sha('<h1>PREP</h1>')}  index.html\n`,
    );
    expect(manifest.digest).toBe(sha(manifest.text));
    expect(manifest.totalBytes).toBe(18);
    expect(progress).toEqual([
      [1, 3],
      [2, 3],
      [3, 3],
    ]);
  });

  it('gives an empty manifest for an empty cut', async () => {
    const manifest = await buildManifest(work, [], new HashCache());
    expect(manifest).toEqual({ entries: [], text: '', digest: sha(''), totalBytes: 0 });
  });

  it('hashes many files with parallel workers, each with its own hash', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 40; i++) files[`f${String(i).padStart(2, '0')}`] = `file ${i}`.repeat(i + 1);
    writeTree(work, files);
    const manifest = await buildManifest(work, await scanCut(work), new HashCache(), undefined, 7);
    expect(manifest.entries.map((e) => [e.path, e.sha256])).toEqual(Object.entries(files).map(([p, c]) => [p, sha(c)]));
  });
});

describe('HashCache', () => {
  const stamp = new Date('2022-06-05T20:10:00Z');

  async function firstCut(): Promise<string> {
    const a = path.join(work, '20220605_2015');
    writeTree(a, { 'actas/0001-B_A.jpg': 'acta one', 'actas/0001-B_B.jpg': 'acta two', 'index.html': 'corte 20:15' });
    for (const f of ['actas/0001-B_A.jpg', 'actas/0001-B_B.jpg', 'index.html']) utimesSync(path.join(a, f), stamp, stamp);
    return a;
  }

  /** The next cut as a producer makes it: unchanged actas hard-linked, the index rewritten. */
  function nextCut(a: string): string {
    const b = path.join(work, '20220605_2030');
    mkdirSync(path.join(b, 'actas'), { recursive: true });
    linkSync(path.join(a, 'actas/0001-B_A.jpg'), path.join(b, 'actas/0001-B_A.jpg'));
    linkSync(path.join(a, 'actas/0001-B_B.jpg'), path.join(b, 'actas/0001-B_B.jpg'));
    writeFileSync(path.join(b, 'index.html'), 'corte 20:30');
    writeFileSync(path.join(b, 'actas/0002-B_A.jpg'), 'acta three');
    return b;
  }

  /** One run as publish does it: load the cache file, build, save. */
  async function run(dir: string): Promise<Map<string, string>> {
    const cache = new HashCache(path.join(work, 'state', 'hash-cache'));
    await cache.load();
    const manifest = await buildManifest(dir, await scanCut(dir), cache);
    await cache.save();
    return new Map(manifest.entries.map((e) => [e.path, e.sha256]));
  }

  it('does not re-read a hard-linked file: the hash is keyed by device, inode, size and mtime', async () => {
    const a = await firstCut();
    await run(a);
    const b = nextCut(a);
    // Same inode, same size, mtime put back: only a re-read would notice the new bytes.
    rewriteInPlaceKeepingKey(path.join(b, 'actas/0001-B_A.jpg'), 'ACTA ONE', stamp);
    const hashes = await run(b);
    expect(hashes.get('actas/0001-B_A.jpg')).toBe(sha('acta one'));
    expect(hashes.get('actas/0001-B_B.jpg')).toBe(sha('acta two'));
    expect(hashes.get('actas/0002-B_A.jpg')).toBe(sha('acta three'));
    expect(hashes.get('index.html')).toBe(sha('corte 20:30'));
  });

  it('re-reads a file whose mtime changed, even with the same inode and size', async () => {
    const a = await firstCut();
    await run(a);
    rewriteInPlaceKeepingKey(path.join(a, 'index.html'), 'CORTE 20:15', new Date(stamp.getTime() + 1000));
    rewriteInPlaceKeepingKey(path.join(a, 'actas/0001-B_B.jpg'), 'ACTA TWO', stamp);
    const hashes = await run(a);
    expect(hashes.get('index.html')).toBe(sha('CORTE 20:15'));
    // The control: the file whose key did not change still answers from the cache.
    expect(hashes.get('actas/0001-B_B.jpg')).toBe(sha('acta two'));
  });

  it('re-reads a file whose size changed, even with the same inode and mtime', async () => {
    const a = await firstCut();
    await run(a);
    rewriteInPlaceKeepingKey(path.join(a, 'index.html'), 'corte 20:15 bis', stamp);
    expect((await run(a)).get('index.html')).toBe(sha('corte 20:15 bis'));
  });

  it('survives a save and a load, and a saved file keeps only the entries the last cut used', async () => {
    const file = path.join(work, 'state', 'hash-cache');
    const a = await firstCut();
    const first = new HashCache(file);
    await first.load();
    const filesA = await scanCut(a);
    await buildManifest(a, filesA, first);
    await first.save();
    expect(readFileSync(file, 'utf8').trim().split('\n').sort()).toEqual(
      filesA.map((f) => `${HashCache.key(f)} ${sha(readFileSync(path.join(a, f.path)))}`).sort(),
    );

    const b = nextCut(a);
    rewriteInPlaceKeepingKey(path.join(b, 'actas/0001-B_A.jpg'), 'ACTA ONE', stamp);
    const second = new HashCache(file);
    await second.load();
    const filesB = await scanCut(b);
    const manifest = await buildManifest(b, filesB, second);
    // Loaded from disk: the stale hash proves the file was not read again.
    expect(manifest.entries.find((e) => e.path === 'actas/0001-B_A.jpg')?.sha256).toBe(sha('acta one'));
    await second.save();

    const saved = readFileSync(file, 'utf8').trim().split('\n');
    expect(saved.map((l) => l.split(' ')[0]).sort()).toEqual(filesB.map((f) => HashCache.key(f)).sort());
    const oldIndex = filesA.find((f) => f.path === 'index.html');
    expect(saved.some((l) => l.startsWith(`${HashCache.key(oldIndex as never)} `))).toBe(false);
  });

  it('loads nothing from a missing file and skips malformed lines', async () => {
    const file = path.join(work, 'hash-cache');
    const f = { path: 'x', size: 1, mtimeMs: 5, dev: 1, ino: 2 };
    const g = { ...f, ino: 3 };
    const missing = new HashCache(file);
    await missing.load();
    expect(missing.get(f)).toBeUndefined();
    writeFileSync(file, `${HashCache.key(f)} ${H}\n${HashCache.key(g)} not-a-hash\ngarbage\n\n`);
    const cache = new HashCache(file);
    await cache.load();
    expect(cache.get(f)).toBe(H);
    expect(cache.get(g)).toBeUndefined();
  });

  it('without a file, load and save touch nothing on disk', async () => {
    const cache = new HashCache();
    await cache.load();
    cache.set({ path: 'x', size: 1, mtimeMs: 5, dev: 1, ino: 2 }, H);
    await cache.save();
    expect(readdirSync(work)).toEqual([]);
  });
});
