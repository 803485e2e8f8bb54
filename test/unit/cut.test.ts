import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CutRefusedError, compareBytes, scanCut, type CutProblem } from '../../src/core/publish/cut.js';

/** Generous: these tests spawn real processes (sh, rsync, sha256sum), and a loaded machine makes that slow. */
const T = 20_000;

let work: string;
let cut: string;

beforeEach(() => {
  work = mkdtempSync(path.join(tmpdir(), 'difusion-cut-'));
  cut = path.join(work, '20220605_2015');
  mkdirSync(cut);
});

afterEach(() => {
  // coreutils rm walks with openat, so it also removes trees deeper than PATH_MAX.
  execFileSync('rm', ['-rf', work]);
});

function put(rel: string, content = 'x'): void {
  mkdirSync(path.dirname(path.join(cut, rel)), { recursive: true });
  writeFileSync(path.join(cut, rel), content);
}

async function refusal(dir = cut): Promise<CutRefusedError> {
  const error = await scanCut(dir).then(
    (files) => new Error(`expected a refusal, got ${files.length} files`),
    (e: unknown) => e,
  );
  if (!(error instanceof CutRefusedError)) throw error;
  return error;
}

const problemAt = (error: CutRefusedError, p: string): CutProblem | undefined => error.problems.find((x) => x.path === p);

describe('scanCut: what a cut may hold', () => {
  it('lists regular files in nested directories, sorted by path bytes, with size, inode and mtime', async () => {
    put('index.html', '<h1>PREP</h1>');
    put('datos/DGO_GUB_2022.csv', 'a,b\n');
    put('actas/0001-B_A.jpg', 'jpeg');
    put('Z.txt', '');
    mkdirSync(path.join(cut, 'vacío'));
    const files = await scanCut(cut);
    expect(files.map((f) => f.path)).toEqual(['Z.txt', 'actas/0001-B_A.jpg', 'datos/DGO_GUB_2022.csv', 'index.html']);
    expect(files.map((f) => f.size)).toEqual([0, 4, 4, 13]);
    for (const f of files) {
      expect(f.ino).toBeGreaterThan(0);
      expect(f.mtimeMs).toBeGreaterThan(0);
    }
  }, T);

  it('accepts an empty cut', async () => {
    await expect(scanCut(cut)).resolves.toEqual([]);
  }, T);

  it('keeps legal hostile names intact: spaces, accents, quotes, leading dash, $(x), backslash, * and ?', async () => {
    const names = [
      'con espacio.html',
      'Año ñandú á.txt',
      "it's.txt",
      'say "hi".txt',
      '-rf',
      '--help',
      '$(touch pwned)',
      'back\\slash',
      '*',
      'what?',
      '  leading and trailing  ',
      'sub dir/-n',
      "sub dir/'quoted'/x y.json",
    ];
    for (const n of names) put(n, n);
    const files = await scanCut(cut);
    expect(files.map((f) => f.path)).toEqual([...names].sort(compareBytes));
    for (const f of files) expect(f.size).toBe(Buffer.byteLength(f.path));
  }, T);

  it('allows MANIFEST.sha256 below the root: only the root name is reserved', async () => {
    put('docs/MANIFEST.sha256', 'not ours');
    expect((await scanCut(cut)).map((f) => f.path)).toEqual(['docs/MANIFEST.sha256']);
  }, T);
});

describe('scanCut: what it refuses', () => {
  it('refuses a symlink to a file inside the cut without following it', async () => {
    put('index.html');
    symlinkSync('index.html', path.join(cut, 'alias.html'));
    const error = await refusal();
    expect(error.problems).toEqual([{ path: 'alias.html', problem: expect.stringContaining('symbolic link') }]);
    expect(error.message).toContain('"alias.html": is a symbolic link');
  }, T);

  it('refuses a symlink pointing outside the cut, and a symlinked directory, without walking into it', async () => {
    mkdirSync(path.join(work, 'outside'));
    writeFileSync(path.join(work, 'outside', 'secret'), 's');
    symlinkSync('/etc/passwd', path.join(cut, 'passwd'));
    put('sub/ok.txt');
    symlinkSync(path.join(work, 'outside'), path.join(cut, 'sub', 'escape'));
    const error = await refusal();
    expect(error.problems.map((p) => p.path)).toEqual(['passwd', 'sub/escape']);
    expect(error.message).not.toContain('secret');
  }, T);

  it('refuses a dangling symlink', async () => {
    symlinkSync('nowhere', path.join(cut, 'dangling'));
    expect(problemAt(await refusal(), 'dangling')?.problem).toMatch(/symbolic link/);
  }, T);

  it('refuses a named pipe', async () => {
    mkdirSync(path.join(cut, 'datos'));
    execFileSync('mkfifo', [path.join(cut, 'datos', 'pipe')]);
    const error = await refusal();
    expect(error.problems).toEqual([{ path: 'datos/pipe', problem: 'is a named pipe (fifo)' }]);
  }, T);

  it('refuses a unix socket', async () => {
    const sock = path.join(cut, 's.sock');
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    try {
      const error = await refusal();
      expect(error.problems).toEqual([{ path: 's.sock', problem: 'is a socket' }]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  }, T);

  it.each([
    ['a newline', 'line\nbreak.html'],
    ['a tab', 'tab\there'],
    ['DEL', 'del\x7f'],
    ['a carriage return', 'cr\r.txt'],
    ['a C1 control', 'c1\u0085.txt'],
    ['an escape sequence', '\x1b[31mred'],
  ])('refuses a name with %s', async (_what, name) => {
    put(name);
    const error = await refusal();
    expect(error.problems).toEqual([{ path: name, problem: 'name contains a control character' }]);
    // The message shows the name escaped, never the raw control character.
    expect(error.message).toContain(JSON.stringify(name));
    expect(error.message.split('\n')).toHaveLength(2);
  }, T);

  it('refuses a name that is not valid UTF-8', async () => {
    mkdirSync(path.join(cut, 'actas'));
    writeFileSync(Buffer.concat([Buffer.from(`${cut}/actas/`), Buffer.from([0xff, 0xfe]), Buffer.from('.jpg')]), 'x');
    const error = await refusal();
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]?.problem).toBe('name is not valid UTF-8');
    expect(error.problems[0]?.path).toMatch(/^actas\/\uFFFD+\.jpg$/);
  }, T);

  it('refuses a path longer than 4000 bytes (deep nesting) and does not walk below it', async () => {
    const segment = 'd'.repeat(250);
    // 17 levels of 251 bytes: level 16 crosses 4000 bytes. mkdir -p descends one directory at a time, so it can
    // build a tree whose absolute paths pass PATH_MAX.
    execFileSync('mkdir', ['-p', Array.from({ length: 17 }, () => segment).join('/')], { cwd: cut });
    put('ok.txt');
    const error = await refusal();
    const deep = Array.from({ length: 16 }, () => segment).join('/');
    expect(error.problems).toEqual([{ path: deep, problem: 'path is longer than 4000 bytes' }]);
    expect(Buffer.byteLength(deep)).toBeGreaterThan(4000);
  }, T);

  // Below 4000 bytes relative but past PATH_MAX absolute (the cut itself sits deep): lstat fails with
  // ENAMETOOLONG, which escapes as an unexpected error (exit 1) instead of a refusal (exit 2). See the report.
  test('refuses, rather than crashes on, a legal relative path whose absolute path passes PATH_MAX', async () => {
    const long = 'r'.repeat(250);
    const segment = 'd'.repeat(250);
    execFileSync('mkdir', ['-p', `${long}/${long}/20220605_2015/${Array.from({ length: 15 }, () => segment).join('/')}`], { cwd: work });
    const deepCut = path.join(work, long, long, '20220605_2015');
    const error = await scanCut(deepCut).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CutRefusedError);
  }, T);

  it('refuses MANIFEST.sha256 and its signature at the root: difusion writes its own', async () => {
    put('MANIFEST.sha256', 'forged');
    put('MANIFEST.sha256.sig', 'forged');
    put('index.html');
    const error = await refusal();
    expect(error.problems.map((p) => p.path)).toEqual(['MANIFEST.sha256', 'MANIFEST.sha256.sig']);
    expect(error.problems[0]?.problem).toMatch(/reserved/);
  }, T);

  // sha256sum reads a manifest line for "-" as standard input, so `sha256sum -c MANIFEST.sha256` (and the helper's
  // verify, whose stdin is the check list) never checks that file. See the report: src/core/publish/cut.ts should refuse it.
  test('refuses a file named "-" at the cut root, which sha256sum -c would read as stdin', async () => {
    put('-', 'hi\n');
    const error = await refusal();
    expect(error.problems.map((p) => p.path)).toEqual(['-']);
  }, T);

  it('lists every problem with its path in one refusal, sorted, and the message says nothing was sent', async () => {
    put('index.html');
    symlinkSync('index.html', path.join(cut, 'b-link'));
    execFileSync('mkfifo', [path.join(cut, 'a-fifo')]);
    put('sub/tab\there');
    put('MANIFEST.sha256');
    const error = await refusal();
    expect(error).toBeInstanceOf(CutRefusedError);
    expect(error.cutDir).toBe(cut);
    expect(error.problems.map((p) => p.path)).toEqual(['MANIFEST.sha256', 'a-fifo', 'b-link', 'sub/tab\there']);
    expect(error.message).toMatch(/^refused cut .*20220605_2015: 4 problem\(s\), nothing was sent\n/);
    for (const p of ['"MANIFEST.sha256"', '"a-fifo"', '"b-link"', '"sub/tab\\there"']) expect(error.message).toContain(p);
  }, T);

  it('shows the first 20 problems and counts the rest', async () => {
    for (let i = 0; i < 25; i++) symlinkSync('x', path.join(cut, `l${String(i).padStart(2, '0')}`));
    const error = await refusal();
    expect(error.problems).toHaveLength(25);
    expect(error.message).toContain('"l19"');
    expect(error.message).not.toContain('"l20"');
    expect(error.message).toContain('… and 5 more');
  }, T);

  it('refuses a cut directory that does not exist, is a file, or is a symlink', async () => {
    expect((await refusal(path.join(work, 'missing'))).problems).toEqual([{ path: '.', problem: 'does not exist' }]);
    writeFileSync(path.join(work, 'file'), 'x');
    expect((await refusal(path.join(work, 'file'))).problems[0]?.path).toBe('.');
    symlinkSync(cut, path.join(work, '20220605_2030'));
    expect((await refusal(path.join(work, '20220605_2030'))).problems[0]?.problem).toMatch(/symbolic link/);
  }, T);
});
