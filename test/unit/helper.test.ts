import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { HELPER_PROTOCOL, parseHelperStatus } from '../../src/core/publish/status.js';

/** Generous: these tests spawn real processes (sh, rsync, sha256sum), and a loaded machine makes that slow. */
const T = 20_000;

/** templates/difusion-helper.sh run locally, as a shell account runs it inline and a restricted one from authorized_keys. */
const SCRIPT = readFileSync(new URL('../../templates/difusion-helper.sh', import.meta.url), 'utf8');

let work: string;
let root: string;

beforeEach(() => {
  work = mkdtempSync(path.join(tmpdir(), 'difusion-helper-'));
  root = path.join(work, 'prep');
  mkdirSync(root);
});

afterEach(() => {
  rmSync(work, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function helper(verb: string, args: string[] = [], input = ''): Run {
  const r = spawnSync('sh', ['-c', SCRIPT, 'difusion-helper', root, verb, ...args], { input, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Restricted access: only ROOT on the command line, the request in SSH_ORIGINAL_COMMAND. */
function restricted(request: string | undefined, input = ''): Run {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  if (request !== undefined) env.SSH_ORIGINAL_COMMAND = request;
  const r = spawnSync('sh', ['-c', SCRIPT, 'difusion-helper', root], { input, encoding: 'utf8', env });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ok(r: Run): string {
  if (r.code !== 0) throw new Error(`helper exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

const sha = (data: string): string => createHash('sha256').update(data).digest('hex');

function put(rel: string, content: string): void {
  mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
  writeFileSync(path.join(root, rel), content);
}

/** A published release: files plus its MANIFEST.sha256. */
function release(cut: string, files: Record<string, string>): string {
  const lines = Object.entries(files).map(([p, c]) => `${sha(c)}  ${p}\n`).join('');
  for (const [p, c] of Object.entries(files)) put(`releases/${cut}/${p}`, c);
  put(`releases/${cut}/MANIFEST.sha256`, lines);
  return lines;
}

/** Every entry below a directory with type, size and inode: equal listings mean nothing changed. */
function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const name of readdirSync(path.join(dir, rel)).sort()) {
      const p = rel ? `${rel}/${name}` : name;
      const st = lstatSync(path.join(dir, p));
      out.push(`${p} ${st.isSymbolicLink() ? `-> ${readlinkSync(path.join(dir, p))}` : st.isDirectory() ? 'd' : `f ${st.size}`} ${st.ino} ${st.mtimeMs}`);
      if (st.isDirectory() && !st.isSymbolicLink()) walk(p);
    }
  };
  walk('');
  return out;
}

describe('difusion-helper: arguments', () => {
  it('refuses a relative root', () => {
    const r = spawnSync('sh', ['-c', SCRIPT, 'difusion-helper', 'prep', 'status'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('difusion-helper: root must be an absolute path: prep\n');
  }, T);

  it('refuses an unknown verb', () => {
    const r = helper('rm', ['-rf', '/']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('difusion-helper: refused: unknown verb rm\n');
  }, T);

  it.each([['../etc'], ['20220605_2015/../x'], ['20220605_2015_a/b'], ['2022-06-05'], ['']])('refuses %j as a cut id', (cut) => {
    const r = helper('prepare', [cut]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`difusion-helper: not a cut id: ${cut}\n`);
  }, T);
});

describe('difusion-helper: status', () => {
  it('reports the live cut, the releases, free space, rsync and write access', () => {
    release('20220605_2015', { 'index.html': 'a' });
    release('20220605_2030', { 'index.html': 'b' });
    mkdirSync(path.join(root, 'releases', 'tmp.junk'));
    symlinkSync('releases/20220605_2030', path.join(root, 'current'));
    const out = ok(helper('status'));
    expect(out).toMatch(/^live 20220605_2030\nrelease 20220605_2015\nrelease 20220605_2030\nfree \d+\nprotocol \d+\nrsync \d+\.\d+\.\d+\S*\nwritable yes\n$/);
  }, T);

  it('says the protocol the client expects (HELPER_PROTOCOL in the script and in status.ts are one number)', () => {
    expect(parseHelperStatus(ok(helper('status'))).protocol).toBe(HELPER_PROTOCOL);
    expect(SCRIPT).toContain(`\nHELPER_PROTOCOL=${HELPER_PROTOCOL}\n`);
  }, T);

  it('says current-invalid when current points outside releases', () => {
    symlinkSync('/etc', path.join(root, 'current'));
    expect(ok(helper('status'))).toMatch(/^current-invalid\n/);
  }, T);
});

describe('difusion-helper: prepare and inspect', () => {
  it('prepare creates the layout on a fresh difusor and reports no base', () => {
    const out = ok(helper('prepare', ['20220605_2015']));
    expect(out).toMatch(/^free \d+\n$/);
    expect(statSync(path.join(root, 'releases')).isDirectory()).toBe(true);
    expect(statSync(path.join(root, '.staging')).isDirectory()).toBe(true);
  }, T);

  it('prepare cleans the leftovers of an interrupted run and reports the live release as base', () => {
    const manifest = release('20220605_2015', { 'index.html': 'hola', 'actas/1 A.jpg': 'jpeg' });
    symlinkSync('releases/20220605_2015', path.join(root, 'current'));
    put('.staging/20220605_2030/index.html', 'half');
    symlinkSync('releases/20220605_2030', path.join(root, '.current.new'));
    const out = ok(helper('prepare', ['20220605_2030']));
    expect(readdirSync(path.join(root, '.staging'))).toEqual([]);
    expect(lstatSync(path.join(root, '.current.new'), { throwIfNoEntry: false })).toBeUndefined();
    const lines = out.trim().split('\n');
    expect(lines[0]).toBe('live 20220605_2015');
    expect(lines).toContain('base 20220605_2015');
    expect(lines).toContain(`manifest ${sha(manifest)}`);
    expect(lines).toEqual(
      expect.arrayContaining(['f 4 index.html', 'f 4 actas/1 A.jpg', `f ${Buffer.byteLength(manifest)} MANIFEST.sha256`]),
    );
  }, T);

  it.each([['.drop.20220605_2030'], ['..raro'], ['enlace-roto']])('prepare cleans a staging that holds only %j', (name) => {
    mkdirSync(path.join(root, '.staging'));
    if (name === 'enlace-roto') symlinkSync('no/existe', path.join(root, '.staging', name));
    else put(`.staging/${name}`, 'x');
    ok(helper('prepare', ['20220605_2030']));
    expect(readdirSync(path.join(root, '.staging'))).toEqual([]);
  }, T);

  it('prepare takes an existing releases/<cut> as base, even when another cut is live', () => {
    release('20220605_2015', { a: '1' });
    release('20220605_2030', { b: '2' });
    symlinkSync('releases/20220605_2015', path.join(root, 'current'));
    const out = ok(helper('prepare', ['20220605_2030']));
    expect(out).toContain('base 20220605_2030\n');
    expect(out).toContain('f 1 b\n');
    expect(out).not.toContain('f 1 a\n');
  }, T);

  it('reports what in the base is neither file nor directory', () => {
    release('20220605_2015', { 'index.html': 'x' });
    symlinkSync('/etc/passwd', path.join(root, 'releases/20220605_2015/enlace'));
    symlinkSync('releases/20220605_2015', path.join(root, 'current'));
    expect(ok(helper('prepare', ['20220605_2030']))).toContain('o enlace\n');
  }, T);

  it('prepare refuses when releases is a symlink', () => {
    mkdirSync(path.join(work, 'elsewhere'));
    symlinkSync(path.join(work, 'elsewhere'), path.join(root, 'releases'));
    const r = helper('prepare', ['20220605_2015']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('difusion-helper: releases is not a directory\n');
  }, T);

  it('inspect (dry run) reports the same and changes nothing', () => {
    release('20220605_2015', { 'index.html': 'hola' });
    symlinkSync('releases/20220605_2015', path.join(root, 'current'));
    put('.staging/20220605_2030/index.html', 'half');
    const before = listing(root);
    const out = ok(helper('inspect', ['20220605_2030']));
    expect(out).toContain('live 20220605_2015\n');
    expect(out).toContain('f 4 index.html\n');
    expect(listing(root)).toEqual(before);
  }, T);

  it('inspect leaves alone the manifest a concurrent prepare --stage is reading', () => {
    release('20220605_2015', { 'index.html': 'hola' });
    symlinkSync('releases/20220605_2015', path.join(root, 'current'));
    put('.staging/.manifest.20220605_2030', 'm');
    ok(helper('inspect', ['20220605_2030']));
    expect(existsSync(path.join(root, '.staging/.manifest.20220605_2030'))).toBe(true);
  }, T);

  it('inspect on a fresh difusor creates nothing', () => {
    expect(ok(helper('inspect', ['20220605_2015']))).toMatch(/^free \d+\n$/);
    expect(readdirSync(root)).toEqual([]);
  }, T);
});

describe('difusion-helper: prepare --stage (a new release staged in the same round trip)', () => {
  const NEW = '20220605_2030';
  const manifestOf = (files: Record<string, string>): string =>
    Object.entries(files).map(([p, c]) => `${sha(c)}  ${p}\n`).join('');
  const staged = (...p: string[]): string => path.join(root, '.staging', NEW, ...p);

  it('links what both manifests agree on, leaves out what changed or left, and lists the staging', () => {
    release('20220605_2015', { 'index.html': 'viejo', 'actas/1_A.jpg': 'acta 1A', 'datos/viejo.csv': 'se va', 'vacio/x': 'x' });
    symlinkSync('releases/20220605_2015', path.join(root, 'current'));
    const manifest = manifestOf({ 'index.html': 'nuevo', 'actas/1_A.jpg': 'acta 1A', 'actas/2_A.jpg': 'acta 2A' });
    const out = ok(helper('prepare', [NEW, '--stage'], `/MANIFEST.sha256\n${manifest}/MANIFEST.sha256.sig\nZmlybWE=\n`));
    const lines = out.trim().split('\n');
    expect(lines).toEqual(expect.arrayContaining(['live 20220605_2015', 'base 20220605_2015', `staged ${NEW}`]));
    // The inventory after "staged" is the staging's: the kept acta and the new manifest, nothing of the base's else.
    const inventory = lines.slice(lines.indexOf(`staged ${NEW}`) + 1).sort();
    expect(inventory).toEqual(['f 7 actas/1_A.jpg', `f ${Buffer.byteLength(manifest)} MANIFEST.sha256`, 'f 8 MANIFEST.sha256.sig'].sort());
    expect(statSync(staged('actas/1_A.jpg')).ino).toBe(statSync(path.join(root, 'releases/20220605_2015/actas/1_A.jpg')).ino);
    expect(readFileSync(staged('MANIFEST.sha256'), 'utf8')).toBe(manifest);
    expect(readFileSync(staged('MANIFEST.sha256.sig'), 'utf8')).toBe('ZmlybWE=');
    // Directories the cut no longer has are gone; the live release and its manifest are untouched.
    expect(existsSync(staged('vacio'))).toBe(false);
    expect(existsSync(staged('datos'))).toBe(false);
    expect(readFileSync(path.join(root, 'releases/20220605_2015/index.html'), 'utf8')).toBe('viejo');
    expect(readFileSync(path.join(root, 'releases/20220605_2015/MANIFEST.sha256'), 'utf8')).toContain('viejo.csv');
    expect(readdirSync(path.join(root, '.staging'))).toEqual([NEW]);
  }, T);

  it('with nothing live (a notice), links from the newest release kept there', () => {
    release('20220605_2000', { 'index.html': 'más viejo', 'actas/1_A.jpg': 'acta 1A' });
    release('20220605_2015', { 'index.html': 'viejo', 'actas/1_A.jpg': 'acta 1A' });
    put('notices/20220605_202000/aviso.json', '{}');
    symlinkSync('notices/20220605_202000', path.join(root, 'current'));
    const manifest = manifestOf({ 'index.html': 'nuevo', 'actas/1_A.jpg': 'acta 1A' });
    const lines = ok(helper('prepare', [NEW, '--stage'], `/MANIFEST.sha256\n${manifest}`)).trim().split('\n');
    expect(lines.filter((l) => l.startsWith('live '))).toEqual([]);
    expect(lines).toEqual(expect.arrayContaining(['base 20220605_2015', `staged ${NEW}`]));
    expect(statSync(staged('actas/1_A.jpg')).ino).toBe(statSync(path.join(root, 'releases/20220605_2015/actas/1_A.jpg')).ino);
    expect(existsSync(staged('index.html'))).toBe(false);
  }, T);

  it('never links what is not a regular file, nor a file the base manifest does not vouch for', () => {
    release('20220605_2015', { 'index.html': 'igual', 'a.csv': 'igual' });
    symlinkSync('/etc/passwd', path.join(root, 'releases/20220605_2015/enlace'));
    put('releases/20220605_2015/colado.html', 'no está en el manifiesto');
    symlinkSync('releases/20220605_2015', path.join(root, 'current'));
    const manifest = manifestOf({ 'index.html': 'igual', enlace: 'x', 'colado.html': 'no está en el manifiesto' });
    const out = ok(helper('prepare', [NEW, '--stage'], `/MANIFEST.sha256\n${manifest}`));
    expect(out).toContain('f 5 index.html\n');
    expect(out).not.toMatch(/enlace|colado/);
    expect(readdirSync(staged()).sort()).toEqual(['MANIFEST.sha256', 'index.html']);
  }, T);

  it('links nothing from a base whose manifest is a symlink, even to one that vouches for the file', () => {
    release('20220605_2015', { 'index.html': 'igual' });
    const vouching = path.join(work, 'vouching.sha256');
    writeFileSync(vouching, `${sha('igual')}  index.html\n`);
    rmSync(path.join(root, 'releases/20220605_2015/MANIFEST.sha256'));
    symlinkSync(vouching, path.join(root, 'releases/20220605_2015/MANIFEST.sha256'));
    symlinkSync('releases/20220605_2015', path.join(root, 'current'));
    ok(helper('prepare', [NEW, '--stage'], `/MANIFEST.sha256\n${manifestOf({ 'index.html': 'igual' })}`));
    expect(readdirSync(staged())).toEqual(['MANIFEST.sha256']);
  }, T);

  it('links nothing from a base without a manifest', () => {
    release('20220605_2015', { 'index.html': 'igual' });
    rmSync(path.join(root, 'releases/20220605_2015/MANIFEST.sha256'));
    symlinkSync('releases/20220605_2015', path.join(root, 'current'));
    ok(helper('prepare', [NEW, '--stage'], `/MANIFEST.sha256\n${manifestOf({ 'index.html': 'igual' })}`));
    expect(readdirSync(staged())).toEqual(['MANIFEST.sha256']);
  }, T);

  it('refuses a base whose names forge an inventory line with a path outside the release, and removes nothing', () => {
    release('20220605_2015', { 'index.html': 'igual' });
    const victim = path.join(work, 'victim');
    writeFileSync(victim, 'keep');
    // A directory named "x\nf 0 " makes find print "f 0 <victim>" as a line of its own.
    put(`releases/20220605_2015/x\nf 0 ${victim}`, 'x');
    symlinkSync('releases/20220605_2015', path.join(root, 'current'));
    const r = helper('prepare', [NEW, '--stage'], `/MANIFEST.sha256\n${manifestOf({ 'index.html': 'igual' })}`);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`difusion-helper: refused path: ${victim}\n`);
    expect(readFileSync(victim, 'utf8')).toBe('keep');
  }, T);

  it('on a fresh difusor stages only the manifest', () => {
    const manifest = manifestOf({ 'index.html': 'hola' });
    const out = ok(helper('prepare', [NEW, '--stage'], `/MANIFEST.sha256\n${manifest}`));
    expect(out).toMatch(new RegExp(`^free \\d+\nstaged ${NEW}\nf ${Buffer.byteLength(manifest)} MANIFEST.sha256\n$`));
  }, T);

  it('stages nothing when releases/<cut> exists: the client repairs or switches it, and gets its inventory', () => {
    release('20220605_2015', { a: '1' });
    release(NEW, { b: '2' });
    symlinkSync('releases/20220605_2015', path.join(root, 'current'));
    const out = ok(helper('prepare', [NEW, '--stage'], `/MANIFEST.sha256\n${manifestOf({ b: '2' })}`));
    expect(out).toContain(`base ${NEW}\n`);
    expect(out).toContain('f 1 b\n');
    expect(out).not.toContain('staged');
    expect(readdirSync(path.join(root, '.staging'))).toEqual([]);
  }, T);

  it('with --incoming, spares this run\'s incoming directory while clearing every other leftover', () => {
    release('20220605_2015', { 'index.html': 'viejo' });
    symlinkSync('releases/20220605_2015', path.join(root, 'current'));
    put(`.staging/${NEW}.in-run1/index.html`, 'nuevo');
    put(`.staging/${NEW}.in-run0/index.html`, 'de una corrida muerta');
    put(`.staging/${NEW}/index.html`, 'a medias');
    put('.staging/.oculto', 'x');
    ok(helper('prepare', [NEW, '--stage', '--incoming', 'run1'], `/MANIFEST.sha256\n${manifestOf({ 'index.html': 'nuevo' })}`));
    expect(readdirSync(path.join(root, '.staging')).sort()).toEqual([NEW, `${NEW}.in-run1`]);
    expect(readFileSync(path.join(root, '.staging', `${NEW}.in-run1`, 'index.html'), 'utf8')).toBe('nuevo');
    expect(readdirSync(staged())).toEqual(['MANIFEST.sha256']);
  }, T);

  it.each([['run-1'], [''], ['a'.repeat(41)], ['../x']])('refuses the incoming token %j', (token) => {
    const r = helper('prepare', [NEW, '--stage', '--incoming', token]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`difusion-helper: not an incoming token: ${token}\n`);
  }, T);

  it('refuses other options, and --stage on inspect', () => {
    expect(helper('prepare', [NEW, '--link']).stderr).toBe(`difusion-helper: refused: prepare ${NEW} --link\n`);
    const r = helper('inspect', [NEW, '--stage']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('difusion-helper: refused: inspect --stage\n');
  }, T);
});

describe('difusion-helper: link', () => {
  beforeEach(() => {
    release('20220605_2015', { 'index.html': 'old', 'actas/1.jpg': 'acta', 'datos/viejo.csv': 'x' });
    mkdirSync(path.join(root, '.staging'));
  }, T);

  it('hard-links the base into staging and drops the listed paths', () => {
    ok(helper('link', ['20220605_2030', '20220605_2015'], 'index.html\ndatos/viejo.csv\nMANIFEST.sha256\n'));
    const staged = path.join(root, '.staging', '20220605_2030');
    expect(statSync(path.join(staged, 'actas/1.jpg')).ino).toBe(statSync(path.join(root, 'releases/20220605_2015/actas/1.jpg')).ino);
    expect(existsSync(path.join(staged, 'index.html'))).toBe(false);
    expect(existsSync(path.join(staged, 'datos/viejo.csv'))).toBe(false);
    // The live release keeps every file.
    expect(readFileSync(path.join(root, 'releases/20220605_2015/index.html'), 'utf8')).toBe('old');
  }, T);

  it('with "-" as base, creates an empty staging', () => {
    ok(helper('link', ['20220605_2030', '-']));
    expect(readdirSync(path.join(root, '.staging', '20220605_2030'))).toEqual([]);
  }, T);

  it.each([['../x'], ['/etc/passwd'], ['actas/../../x'], ['..'], ['a/..']])('refuses the drop path %j and removes nothing outside', (bad) => {
    writeFileSync(path.join(root, '.staging', 'x'), 'keep');
    writeFileSync(path.join(work, 'x'), 'keep');
    const r = helper('link', ['20220605_2030', '20220605_2015'], `index.html\n${bad}\n`);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`difusion-helper: refused path: ${bad}\n`);
    expect(readFileSync(path.join(root, '.staging', 'x'), 'utf8')).toBe('keep');
    expect(readFileSync(path.join(work, 'x'), 'utf8')).toBe('keep');
    expect(existsSync('/etc/passwd')).toBe(true);
  }, T);

  it('refuses when the staging already exists', () => {
    mkdirSync(path.join(root, '.staging', '20220605_2030'));
    const r = helper('link', ['20220605_2030', '-']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('difusion-helper: staging for 20220605_2030 already exists\n');
  }, T);

  it('writes the manifest and its signature that follow their marker lines, byte for byte, never into the live release', () => {
    const base = path.join(root, 'releases/20220605_2015/MANIFEST.sha256');
    const before = readFileSync(base, 'utf8');
    const manifest = `${sha('nuevo')}  index.html\n\\${sha('x')}  a\\\\b\n`;
    // MANIFEST.sha256 is not in the drop list: the linked copy of the live one is replaced by a rename, not written.
    ok(helper('link', ['20220605_2030', '20220605_2015'], `index.html\n/MANIFEST.sha256\n${manifest}/MANIFEST.sha256.sig\nc2lnbmF0dXJh\n`));
    const staged = path.join(root, '.staging', '20220605_2030');
    expect(readFileSync(path.join(staged, 'MANIFEST.sha256'), 'utf8')).toBe(manifest);
    expect(readFileSync(path.join(staged, 'MANIFEST.sha256.sig'), 'utf8')).toBe('c2lnbmF0dXJh');
    expect(readFileSync(base, 'utf8')).toBe(before);
    expect(existsSync(path.join(staged, 'index.html'))).toBe(false);
    expect(readdirSync(path.join(root, '.staging')).sort()).toEqual(['20220605_2030']);
  }, T);

  it('an empty manifest is written empty; paths after the marker are the manifest, not paths to drop', () => {
    ok(helper('link', ['20220605_2030', '20220605_2015'], '/MANIFEST.sha256\n'));
    expect(readFileSync(path.join(root, '.staging/20220605_2030/MANIFEST.sha256'), 'utf8')).toBe('');
    rmSync(path.join(root, '.staging', '20220605_2030'), { recursive: true });
    ok(helper('link', ['20220605_2030', '20220605_2015'], '/MANIFEST.sha256\nindex.html\n'));
    expect(readFileSync(path.join(root, '.staging/20220605_2030/index.html'), 'utf8')).toBe('old');
  }, T);

  it('a refused drop path leaves no manifest behind', () => {
    const r = helper('link', ['20220605_2030', '20220605_2015'], '../x\n/MANIFEST.sha256\nm\n/MANIFEST.sha256.sig\ns\n');
    expect(r.code).toBe(2);
    expect(readdirSync(path.join(root, '.staging'))).toEqual([]);
  }, T);

  it('drops a name with a leading dash, spaces and quotes as a path, never as an option', () => {
    put('releases/20220605_2015/-rf', 'x');
    put("releases/20220605_2015/it's a \"file\"", 'x');
    ok(helper('link', ['20220605_2030', '20220605_2015'], "-rf\nit's a \"file\"\n"));
    expect(readdirSync(path.join(root, '.staging', '20220605_2030')).sort()).toEqual(['MANIFEST.sha256', 'actas', 'datos', 'index.html']);
  }, T);
});

describe('difusion-helper: verify, promote', () => {
  beforeEach(() => {
    mkdirSync(path.join(root, 'releases'));
    put('.staging/20220605_2030/index.html', 'nuevo');
  }, T);

  it('verify checks the stdin sums and lists the staging', () => {
    const out = ok(helper('verify', ['20220605_2030'], `${sha('nuevo')}  index.html\n`));
    expect(out).toBe('check 0\nf 5 index.html\n');
  }, T);

  it('verify --incoming first merges what was sent early: a sent file replaces a linked one, the live one stays', () => {
    put('releases/20220605_2015/index.html', 'vivo');
    rmSync(path.join(root, '.staging/20220605_2030/index.html'));
    linkSync(path.join(root, 'releases/20220605_2015/index.html'), path.join(root, '.staging/20220605_2030/index.html'));
    put('.staging/20220605_2030.in-run1/index.html', 'enviado');
    put('.staging/20220605_2030.in-run1/actas/1_A.jpg', 'acta');
    const out = ok(helper('verify', ['20220605_2030', '--incoming', 'run1'], `${sha('enviado')}  index.html\n${sha('acta')}  actas/1_A.jpg\n`));
    expect(out.split('\n')[0]).toBe('check 0');
    expect(out.split('\n').slice(1).filter(Boolean).sort()).toEqual(['f 4 actas/1_A.jpg', 'f 7 index.html']);
    expect(existsSync(path.join(root, '.staging/20220605_2030.in-run1'))).toBe(false);
    expect(readFileSync(path.join(root, 'releases/20220605_2015/index.html'), 'utf8')).toBe('vivo');
  }, T);

  it('verify refuses other options', () => {
    expect(helper('verify', ['20220605_2030', '--merge']).stderr).toBe('difusion-helper: refused: verify 20220605_2030 --merge\n');
    expect(helper('verify', ['20220605_2030', '--incoming', 'a/b']).stderr).toBe('difusion-helper: not an incoming token: a/b\n');
  }, T);

  it('verify names the file that differs', () => {
    const out = ok(helper('verify', ['20220605_2030'], `${sha('otro')}  index.html\n`));
    expect(out).toMatch(/^check 1\nx index.html: FAILED\n(x .*\n)*f 5 index.html\n$/);
  }, T);

  it('promote moves the staging into releases', () => {
    expect(ok(helper('promote', ['20220605_2030']))).toBe('promoted 20220605_2030\n');
    expect(readFileSync(path.join(root, 'releases/20220605_2030/index.html'), 'utf8')).toBe('nuevo');
    expect(existsSync(path.join(root, '.staging/20220605_2030'))).toBe(false);
  }, T);

  it('promote repairs an existing release file by file', () => {
    put('releases/20220605_2030/index.html', 'dañado');
    put('releases/20220605_2030/intruso.php', 'x');
    put('releases/20220605_2030/ok.txt', 'ok');
    expect(ok(helper('promote', ['20220605_2030'], 'M index.html\nD intruso.php\n'))).toBe('repaired 20220605_2030\n');
    expect(readdirSync(path.join(root, 'releases/20220605_2030')).sort()).toEqual(['index.html', 'ok.txt']);
    expect(readFileSync(path.join(root, 'releases/20220605_2030/index.html'), 'utf8')).toBe('nuevo');
    expect(existsSync(path.join(root, '.staging/20220605_2030'))).toBe(false);
  }, T);

  it.each([['D ../../x'], ['M /etc/passwd'], ['X index.html']])('promote refuses the line %j', (line) => {
    put('releases/20220605_2030/index.html', 'viejo');
    writeFileSync(path.join(work, 'x'), 'keep');
    const r = helper('promote', ['20220605_2030'], `${line}\n`);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^difusion-helper: refused (path|promote line): /);
    expect(readFileSync(path.join(work, 'x'), 'utf8')).toBe('keep');
    expect(readFileSync(path.join(root, 'releases/20220605_2030/index.html'), 'utf8')).toBe('viejo');
  }, T);
});

describe('difusion-helper: switch', () => {
  it('points current at the release by renaming a new symlink over it', () => {
    release('20220605_2015', { a: '1' });
    release('20220605_2030', { a: '2' });
    symlinkSync('releases/20220605_2015', path.join(root, 'current'));
    expect(ok(helper('switch', ['20220605_2030']))).toBe('live releases/20220605_2030\n');
    expect(readlinkSync(path.join(root, 'current'))).toBe('releases/20220605_2030');
    expect(readFileSync(path.join(root, 'current/a'), 'utf8')).toBe('2');
    expect(existsSync(path.join(root, '.current.new'))).toBe(false);
  }, T);

  it('refuses when current is a real directory, and leaves it untouched', () => {
    release('20220605_2030', { a: '2' });
    put('current/index.html', 'sitio anterior');
    const before = listing(root);
    const r = helper('switch', ['20220605_2030']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('difusion-helper: current is not a symlink; refusing to replace it\n');
    expect(listing(root)).toEqual(before);
    expect(readFileSync(path.join(root, 'current/index.html'), 'utf8')).toBe('sitio anterior');
  }, T);

  it('refuses a release that is not there', () => {
    const r = helper('switch', ['20220605_2030']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('difusion-helper: releases/20220605_2030 is not there\n');
    expect(lstatSync(path.join(root, 'current'), { throwIfNoEntry: false })).toBeUndefined();
  }, T);
});

describe('difusion-helper: prune', () => {
  it('keeps the N newest and always the live one, and ignores names that are not cuts', () => {
    for (const cut of ['20220605_2000', '20220605_2015', '20220605_2030', '20220605_2045', '20220605_2100']) release(cut, { a: cut });
    for (const junk of ['tmp.20220605_2045', '20220605_2045.partial', 'lost+found']) mkdirSync(path.join(root, 'releases', junk));
    symlinkSync('releases/20220605_2015', path.join(root, 'current'));
    const out = ok(helper('prune', ['2']));
    expect(out.split('\n').filter(Boolean).sort()).toEqual(['pruned 20220605_2000', 'pruned 20220605_2030']);
    expect(readdirSync(path.join(root, 'releases')).sort()).toEqual([
      '20220605_2015',
      '20220605_2045',
      '20220605_2045.partial',
      '20220605_2100',
      'lost+found',
      'tmp.20220605_2045',
    ]);
  }, T);

  it('clears what a transfer sent on a useless guess, and nothing else in staging', () => {
    release('20220605_2015', { a: '1' });
    symlinkSync('releases/20220605_2015', path.join(root, 'current'));
    put('.staging/20220605_2030.in-run1/index.html', 'enviado de más');
    put('.staging/otra-cosa/x', 'x');
    mkdirSync(path.join(work, 'fuera'));
    symlinkSync(path.join(work, 'fuera'), path.join(root, '.staging', '20220605_2045.in-run2'));
    ok(helper('prune', ['2']));
    expect(readdirSync(path.join(root, '.staging')).sort()).toEqual(['20220605_2045.in-run2', 'otra-cosa']);
    expect(existsSync(path.join(work, 'fuera'))).toBe(true);
  }, T);

  it('refuses a keep that is not a number', () => {
    const r = helper('prune', ['-1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('difusion-helper: keep must be a number: -1\n');
  }, T);
});

describe('difusion-helper: restricted access (SSH_ORIGINAL_COMMAND)', () => {
  it('runs a plain request', () => {
    const r = restricted('status');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('writable yes');
  }, T);

  it.each([
    ['no request at all', undefined, 'difusion-helper: refused: not a difusion request\n'],
    ['an empty request', '', 'difusion-helper: refused: not a difusion request\n'],
    ['another program', 'cat /etc/shadow', 'difusion-helper: refused: unknown verb cat\n'],
    ['shell syntax', 'status; rm -rf /', 'difusion-helper: refused: not a difusion request\n'],
    ['a substitution', 'prepare $(id)', 'difusion-helper: refused: not a difusion request\n'],
    ['a glob', 'prune *', 'difusion-helper: refused: not a difusion request\n'],
    ['quotes', "prepare '20220605_2015'", 'difusion-helper: refused: not a difusion request\n'],
    ['a newline', 'status\nrm -rf /', 'difusion-helper: refused: not a difusion request\n'],
    ['rsync as sender', 'rsync --server --sender -WtprIRe.iLsfxCIvu . releases/20220605_2015/', 'difusion-helper: refused: rsync --sender\n'],
    ['rsync into /etc', 'rsync --server -WtprIRe.iLsfxCIvu . /etc/', 'difusion-helper: refused: rsync into /etc/\n'],
    ['rsync into a release', 'rsync --server -WtprIRe.iLsfxCIvu . releases/20220605_2015/', 'difusion-helper: refused: rsync into releases/20220605_2015/\n'],
    ['rsync with --delete', 'rsync --server --delete . .staging/20220605_2015/', 'difusion-helper: refused: rsync --delete\n'],
    ['rsync not as server', 'rsync -a /etc/ .staging/20220605_2015/', 'difusion-helper: refused: rsync must run as --server\n'],
    [
      'rsync escaping staging',
      'rsync --server -WtprIRe.iLsfxCIvu . .staging/20220605_2015_a/../../../etc/',
      'difusion-helper: not a cut id: 20220605_2015_a/../../../etc\n',
    ],
    ['rsync into the staging root', 'rsync --server -WtprIRe.iLsfxCIvu . .staging/', 'difusion-helper: refused: rsync into .staging/\n'],
    ['rsync into a staging without its slash', 'rsync --server -WtprIRe.iLsfxCIvu . .staging/20220605_2015', 'difusion-helper: refused: rsync into .staging/20220605_2015\n'],
    // The staging holds hard links to the live release: writing into a file would write into what visitors get.
    ['rsync --inplace', 'rsync --server -WtprIRe.iLsfxCIvu --inplace . .staging/20220605_2015/', 'difusion-helper: refused: rsync --inplace\n'],
    ['rsync --append', 'rsync --server -WtprIRe.iLsfxCIvu --append . .staging/20220605_2015/', 'difusion-helper: refused: rsync --append\n'],
    ['rsync --append-verify', 'rsync --server --append-verify . .staging/20220605_2015/', 'difusion-helper: refused: rsync --append-verify\n'],
    // What difusion's rsync sends is files only: no symlink in staging, none followed, no temp dir elsewhere.
    ['rsync making symlinks', 'rsync --server -WtprlIRe.iLsfxCIvu --timeout=60 . .staging/20220605_2015/', 'difusion-helper: refused: rsync -WtprlIRe.iLsfxCIvu\n'],
    ['rsync following symlinked dirs', 'rsync --server -rK . .staging/20220605_2015/', 'difusion-helper: refused: rsync -rK\n'],
    ['rsync with a temp dir elsewhere', 'rsync --server -WtprIRe.iLsfxCIvu -T /tmp . .staging/20220605_2015/', 'difusion-helper: refused: rsync -T\n'],
    ['rsync with a temp dir in the cluster', 'rsync --server -rT/tmp . .staging/20220605_2015/', 'difusion-helper: refused: rsync -rT/tmp\n'],
    ['rsync --links', 'rsync --server --links . .staging/20220605_2015/', 'difusion-helper: refused: rsync --links\n'],
    ['rsync --keep-dirlinks', 'rsync --server --keep-dirlinks . .staging/20220605_2015/', 'difusion-helper: refused: rsync --keep-dirlinks\n'],
    ['rsync --only-write-batch', 'rsync --server --only-write-batch=/tmp/b . .staging/20220605_2015/', 'difusion-helper: refused: rsync --only-write-batch=/tmp/b\n'],
    ['rsync into a crafted incoming name', 'rsync --server -WtprIRe.iLsfxCIvu . .staging/x/../../etc.in-a/', 'difusion-helper: not a cut id: x/../../etc\n'],
    ['rsync into an incoming directory with a bad token', 'rsync --server -WtprIRe.iLsfxCIvu . .staging/20220605_2015.in-a.b/', 'difusion-helper: not an incoming token: a.b\n'],
  ])('refuses %s', (_what, request, message) => {
    const r = restricted(request);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(message);
    expect(r.stdout).toBe('');
  }, T);

  it('lets rsync write into this run\'s incoming directory before prepare ran, making .staging for it', () => {
    // Past every check the helper execs rsync, which finds no client on its stdin: the complaint is rsync's.
    const r = restricted('rsync --server -WtprIRe.iLsfxCIvu --timeout=30 --stats . .staging/20220605_2015.in-run1/');
    expect(r.stderr).not.toContain('difusion-helper');
    expect(r.stderr).toMatch(/rsync/);
    expect(r.code).not.toBe(0);
    expect(statSync(path.join(root, '.staging')).isDirectory()).toBe(true);
  }, T);

  it('refuses an incoming directory that is a symlink, or a .staging that is one', () => {
    mkdirSync(path.join(root, '.staging'));
    symlinkSync('/tmp', path.join(root, '.staging', '20220605_2015.in-run1'));
    expect(restricted('rsync --server -WtprIRe.iLsfxCIvu . .staging/20220605_2015.in-run1/').stderr).toBe(
      'difusion-helper: refused: .staging/20220605_2015.in-run1 is a symlink\n',
    );
    rmSync(path.join(root, '.staging'), { recursive: true });
    symlinkSync('/tmp', path.join(root, '.staging'));
    expect(restricted('rsync --server -WtprIRe.iLsfxCIvu . .staging/20220605_2015.in-run1/').stderr).toBe('difusion-helper: .staging is not a directory\n');
  }, T);

  it('lets rsync write into a cut\'s staging only once prepare made it', () => {
    const request = 'rsync --server -WtprIze.iLsfxCIvu --timeout=30 --stats . .staging/20220605_2015/';
    const before = restricted(request);
    expect(before.code).toBe(2);
    expect(before.stderr).toBe('difusion-helper: no staging for 20220605_2015\n');

    mkdirSync(path.join(root, '.staging', '20220605_2015'), { recursive: true });
    // Past every check, the helper execs rsync itself: the complaint is rsync's, about the missing client.
    const after = restricted(request);
    expect(after.stderr).not.toContain('difusion-helper');
    expect(after.stderr).toMatch(/rsync/);
    expect(after.code).not.toBe(0);
  }, T);
});

describe('difusion-helper: discard (what a failed run wrote into staging)', () => {
  const CUT = '20220605_2030';

  it('removes this run\'s staging, incoming directory and the files read for the cut; nothing else', () => {
    release('20220605_2015', { 'index.html': 'viejo' });
    symlinkSync('releases/20220605_2015', path.join(root, 'current'));
    put(`.staging/${CUT}/index.html`, 'nuevo');
    put(`.staging/${CUT}.in-run1/actas/1.jpg`, 'acta');
    put(`.staging/.manifest.${CUT}`, 'm');
    put(`.staging/${CUT}.in-otro/x`, 'de otro run');
    put('.staging/20220605_2045/x', 'otro corte');
    const kept = listing(path.join(root, 'releases'));
    const out = ok(helper('discard', [CUT, 'run1']));
    expect(out.split('\n').filter(Boolean).sort()).toEqual([`discarded ${CUT}`, `discarded ${CUT}.in-run1`, `discarded .manifest.${CUT}`].sort());
    expect(readdirSync(path.join(root, '.staging')).sort()).toEqual([`${CUT}.in-otro`, '20220605_2045']);
    expect(listing(path.join(root, 'releases'))).toEqual(kept);
    expect(readlinkSync(path.join(root, 'current'))).toBe('releases/20220605_2015');
  }, T);

  it('removes a notice\'s staging, never a notice in notices/', () => {
    put('.staging/notice-20220605_213000/index.html', 'aviso');
    put('notices/20220605_213000/index.html', 'aviso');
    expect(ok(helper('discard', ['--notice', '20220605_213000']))).toBe('discarded notice-20220605_213000\n');
    expect(existsSync(path.join(root, '.staging', 'notice-20220605_213000'))).toBe(false);
    expect(existsSync(path.join(root, 'notices', '20220605_213000', 'index.html'))).toBe(true);
  }, T);

  it('removes a symlink in staging, not what it points to', () => {
    put('fuera/dato', 'no se toca');
    mkdirSync(path.join(root, '.staging'));
    symlinkSync(path.join(root, 'fuera'), path.join(root, '.staging', CUT));
    expect(ok(helper('discard', [CUT]))).toBe(`discarded ${CUT}\n`);
    expect(readFileSync(path.join(root, 'fuera', 'dato'), 'utf8')).toBe('no se toca');
  }, T);

  it('with nothing there (or no .staging at all), succeeds and says nothing', () => {
    expect(helper('discard', [CUT])).toEqual({ code: 0, stdout: '', stderr: '' });
    mkdirSync(path.join(root, '.staging'));
    expect(helper('discard', [CUT, 'run1'])).toEqual({ code: 0, stdout: '', stderr: '' });
  }, T);

  it.each([
    [['../x'], 'not a cut id: ../x'],
    [['.staging'], 'not a cut id: .staging'],
    [[CUT, '../x'], 'not an incoming token: ../x'],
    [[CUT, 'run-1'], 'not an incoming token: run-1'],
    [['--notice', '../../releases'], 'not a notice stamp: ../../releases'],
    [['--notice', CUT], `not a notice stamp: ${CUT}`],
    [[CUT, 'run1', 'extra'], `refused: discard ${CUT} run1 extra`],
  ])('refuses %j', (args, said) => {
    release(CUT, { 'index.html': 'x' });
    const before = listing(root);
    expect(helper('discard', args)).toEqual({ code: 2, stdout: '', stderr: `difusion-helper: ${said}\n` });
    expect(listing(root)).toEqual(before);
  }, T);

  it('is a plain request on a restricted account', () => {
    put(`.staging/${CUT}.in-run1/x`, 'x');
    expect(restricted(`discard ${CUT} run1`)).toEqual({ code: 0, stdout: `discarded ${CUT}.in-run1\n`, stderr: '' });
  }, T);
});

describe('difusion-helper: rsync takes only what difusion\'s client sends (issue 19)', () => {
  beforeEach(() => {
    mkdirSync(path.join(root, '.staging', '20220605_2015'), { recursive: true });
  }, T);

  it.each([
    // rsync 3.5 as captured on this machine, for each client variant (files-from or whole source, compress or not).
    'rsync --server -WtprIRe.iLsfxCIvu --timeout=30 --stats . .staging/20220605_2015/',
    'rsync --server -WtprIe.iLsfxCIvu --timeout=30 --stats . .staging/20220605_2015/',
    'rsync --server -WtprIRze.iLsfxCIvu --timeout=30 --stats . .staging/20220605_2015/',
    // rsync 3.1 (options.c server_options): fewer capability letters; -zz as --new-compress.
    'rsync --server -WtprIRe.iLsfxC --timeout=600 --stats --new-compress . .staging/20220605_2015.in-run1/',
    // a pre-release protocol number before the capability letters; 3.2's --old-compress.
    'rsync --server -WtprIze31.12iLsfxCIvu --timeout=5 --old-compress . .staging/20220605_2015/',
  ])('passes %s to rsync', (request) => {
    const r = restricted(request);
    expect(r.stderr).not.toContain('difusion-helper');
    expect(r.stderr).toMatch(/rsync/);
  }, T);

  it.each([
    ['--daemon', 'rsync --server --daemon --config=.staging/20220605_2015/rsyncd.conf .staging/20220605_2015/', 'refused: rsync --daemon: daemon mode never runs through this account'],
    ['--config as two words', 'rsync --server --config .staging/x/rsyncd.conf --daemon .', 'refused: rsync --config .staging/x/rsyncd.conf: daemon mode never runs through this account'],
    ['--dparam', 'rsync --server --dparam=path=/ --daemon .', 'refused: rsync --dparam=path=/: daemon mode never runs through this account'],
    ['-M', 'rsync --server -WtM--daemon . .staging/20220605_2015/', 'refused: rsync -WtM--daemon: -M passes options on unchecked'],
    ['an option after the destination', 'rsync --server -Wte.iLsfxC . .staging/20220605_2015/ --daemon', "refused: rsync . .staging/20220605_2015/ --daemon: exactly one destination follows '.'"],
    ['a timeout that is not a number', 'rsync --server --timeout=1x . .staging/20220605_2015/', 'refused: rsync --timeout=1x: the timeout must be a number of seconds'],
    ['a timeout as two words', 'rsync --server --timeout 30 . .staging/20220605_2015/', 'refused: rsync --timeout'],
    ['an option the client never puts there', 'rsync --server --chmod=D755,F644 . .staging/20220605_2015/', 'refused: rsync --chmod=D755,F644'],
    ['owners', 'rsync --server -WtprIoge.iLsfxCIvu . .staging/20220605_2015/', 'refused: rsync -WtprIoge.iLsfxCIvu'],
    ['a capability string with an option in it', 'rsync --server -Wte.iL-sfx . .staging/20220605_2015/', "refused: rsync -Wte.iL-sfx: not the protocol's capability string after 'e'"],
    ['no capability string after e', 'rsync --server -Wte . .staging/20220605_2015/', "refused: rsync -Wte: not the protocol's capability string after 'e'"],
    ['a source other than .', 'rsync --server -Wt /etc .staging/20220605_2015/', "refused: rsync /etc: the receiving end's first argument is always '.'"],
    ['no source', 'rsync --server -Wt', 'refused: rsync without its source argument .'],
  ])('refuses %s, saying which', (_what, request, message) => {
    const r = restricted(request);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 2, stderr: `difusion-helper: ${message}\n` });
  }, T);

  it('the receiver applies the client\'s --chmod itself: a sender of its own making leaves no setuid or world-writable mode', () => {
    const src = path.join(work, 'src');
    mkdirSync(path.join(src, 'd'), { recursive: true });
    writeFileSync(path.join(src, 'suid'), 'x', { mode: 0o6777 });
    spawnSync('chmod', ['6777', path.join(src, 'suid')]);
    spawnSync('chmod', ['777', path.join(src, 'd')]);
    // The remote shell is the forced command: rsync's server request becomes SSH_ORIGINAL_COMMAND.
    const rsh = path.join(work, 'rsh');
    writeFileSync(rsh, `#!/bin/sh\nshift\nSSH_ORIGINAL_COMMAND="$*" exec sh ${JSON.stringify(path.join(work, 'helper.sh'))} ${JSON.stringify(root)}\n`, { mode: 0o755 });
    writeFileSync(path.join(work, 'helper.sh'), SCRIPT);
    const r = spawnSync('rsync', ['-rtpWI', '-e', rsh, `${src}/`, 'h:.staging/20220605_2015/'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect((statSync(path.join(root, '.staging/20220605_2015/suid')).mode & 0o7777).toString(8)).toBe('644');
    expect((statSync(path.join(root, '.staging/20220605_2015/d')).mode & 0o7777).toString(8)).toBe('755');
  }, T);
});

describe('difusion-helper: every verb takes only what the client sends (issue 19)', () => {
  beforeEach(() => {
    mkdirSync(path.join(root, 'releases'));
    release('20220605_2015', { 'index.html': 'vivo' });
    put('.staging/20220605_2030/index.html', 'nuevo');
  }, T);

  it.each([
    ['status', ['x'], 'refused: status takes at most 0 arguments, not: x'],
    ['throughput', ['x'], 'refused: throughput takes at most 0 arguments, not: x'],
    ['prepare', ['20220605_2030', '--stage', '--incoming', 'run1', 'x'], 'refused: prepare takes at most 4 arguments, not: 20220605_2030 --stage --incoming run1 x'],
    ['link', ['20220605_2030', '-', 'x'], 'refused: link takes at most 2 arguments, not: 20220605_2030 - x'],
    ['verify', ['20220605_2030', '--incoming', 'run1', 'x'], 'refused: verify takes at most 3 arguments, not: 20220605_2030 --incoming run1 x'],
    ['audit', ['20220605_2015', 'x'], 'refused: audit takes at most 1 arguments, not: 20220605_2015 x'],
    ['promote', ['20220605_2030', 'x'], 'refused: promote takes at most 1 arguments, not: 20220605_2030 x'],
    ['switch', ['20220605_2015', '--lift-notice', 'x'], 'refused: switch takes at most 2 arguments, not: 20220605_2015 --lift-notice x'],
    ['prune', ['1', 'x'], 'refused: prune takes at most 1 arguments, not: 1 x'],
    ['prune', ['1234567890123456'], 'keep is too large: 1234567890123456'],
  ])('%s %j is refused', (verb, args, message) => {
    const r = helper(verb, args);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 2, stderr: `difusion-helper: ${message}\n` });
  }, T);

  it.each([
    ['an absolute path', `${'a'.repeat(64)}  /etc/passwd`],
    ['a path climbing out', `${'a'.repeat(64)}  ../../../etc/passwd`],
    ['a path climbing out midway', `${'a'.repeat(64)}  actas/../../../../etc/passwd`],
    ['binary mode', `${'a'.repeat(64)} */etc/passwd`],
    ['a short hash', 'abc  index.html'],
  ])('verify and audit refuse a check line with %s, and sha256sum never runs', (_what, line) => {
    for (const [verb, cut] of [['verify', '20220605_2030'], ['audit', '20220605_2015']]) {
      const r = helper(verb as string, [cut as string], `${sha('nuevo')}  index.html\n${line}\n`);
      expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 2, stdout: '', stderr: `difusion-helper: refused check line: ${line}\n` });
    }
    expect(readdirSync(path.join(root, '.staging')).filter((f) => f.startsWith('.checks'))).toEqual([]);
  }, T);

  it('verify and audit accept sha256sum\'s escaped lines for names holding a backslash or newline', () => {
    put('.staging/20220605_2030/a\\b', 'x');
    const out = ok(helper('verify', ['20220605_2030'], `\\${sha('x')}  a\\\\b\n${sha('nuevo')}  index.html\n`));
    expect(out.split('\n')[0]).toBe('check 0');
    expect(ok(helper('audit', ['20220605_2015'], `${sha('vivo')}  index.html\n`)).split('\n')).toContain('check 0');
  }, T);

  it('throughput reads no more than preflight sends', () => {
    expect(SCRIPT).toContain('\nTHROUGHPUT_MAX_BYTES=67108864\n');
    expect(ok(helper('throughput', [], 'x'.repeat(1000)))).toBe('received 1000\n');
  }, T);
});

describe('difusion-helper: lease (one run at a time on a difusor, across publication hosts)', () => {
  const holderFile = (): string => path.join(root, '.lease', 'holder');
  const answer = (out: string): string[] => out.trim().split('\n').slice(1);
  const nowOf = (out: string): number => Number(/^now (\d+)$/m.exec(out)?.[1]);

  it('is taken when free, refused to another run while live, renewed and released only by its holder', () => {
    expect(answer(ok(helper('lease', ['show'])))).toEqual(['free']);
    const taken = ok(helper('lease', ['take', 'sitio-a', 'run1', '120']));
    const now = nowOf(taken);
    expect(answer(taken)[0]).toMatch(/^taken \d+ \d+$/);
    const [, since, expiry] = (answer(taken)[0] as string).split(' ').map(Number) as [string, number, number];
    expect(since).toBeGreaterThanOrEqual(now);
    expect(expiry - since).toBe(120);
    expect(readFileSync(holderFile(), 'utf8')).toBe(`sitio-a run1 ${since} ${expiry}\n`);

    const other = answer(ok(helper('lease', ['take', 'sitio-b', 'run2', '120'])));
    expect(other).toEqual([`held sitio-a run1 ${since} ${expiry}`]);
    expect(answer(ok(helper('lease', ['renew', 'sitio-b', 'run2', '120'])))).toEqual([`lost sitio-a run1 ${since} ${expiry}`]);
    expect(answer(ok(helper('lease', ['release', 'sitio-b', 'run2'])))).toEqual(['not-held']);
    // The same host's next run is another run: it waits like any other.
    expect(answer(ok(helper('lease', ['take', 'sitio-a', 'run3', '120'])))[0]).toMatch(/^held sitio-a run1 /);

    expect(answer(ok(helper('lease', ['renew', 'sitio-a', 'run1', '120'])))[0]).toMatch(new RegExp(`^renewed ${since} \\d+$`));
    expect(answer(ok(helper('lease', ['take', 'sitio-a', 'run1', '120'])))[0]).toMatch(new RegExp(`^taken ${since} \\d+$`));
    expect(answer(ok(helper('lease', ['release', 'sitio-a', 'run1'])))).toEqual(['released']);
    expect(existsSync(holderFile())).toBe(false);
    expect(answer(ok(helper('lease', ['take', 'sitio-b', 'run2', '120'])))[0]).toMatch(/^taken /);
    expect(readdirSync(path.join(root, '.lease'))).toEqual(['holder']);
  }, T);

  it('an expired lease is taken over and the answer names the dead holder', () => {
    put('.lease/holder', 'sitio-a run1 1000 1060\n');
    // show names the dead holder (preflight says a takeover would take it over) and writes nothing.
    expect(answer(ok(helper('lease', ['show', '120'])))).toEqual(['expired sitio-a run1 1000 1060']);
    expect(readFileSync(holderFile(), 'utf8')).toBe('sitio-a run1 1000 1060\n');
    const out = ok(helper('lease', ['take', 'sitio-b', 'run2', '120']));
    expect(answer(out)).toEqual(['takeover sitio-a run1 1000 1060', `taken ${nowOf(out)} ${nowOf(out) + 120}`]);
  }, T);

  it('a claim further ahead than the lease counts as the lease, from when the holder file was written', () => {
    put('.lease/holder', 'sitio-a run1 1000 99999999999\n');
    const old = new Date(Date.now() - 200_000);
    utimesSync(holderFile(), old, old);
    const out = ok(helper('lease', ['take', 'sitio-b', 'run2', '120']));
    expect(answer(out)[0]).toMatch(/^takeover sitio-a run1 1000 \d+$/);
    // Fresh, the far claim still counts only as lease_s ahead of the file's writing.
    put('.lease/holder', 'sitio-a run1 1000 99999999999\n');
    const held = ok(helper('lease', ['take', 'sitio-b', 'run2', '120']));
    const expiry = Number(answer(held)[0]?.split(' ')[4]);
    expect(expiry - nowOf(held)).toBeLessThanOrEqual(120);
    expect(expiry - nowOf(held)).toBeGreaterThan(100);
  }, T);

  it('a run of the same host that host knows died is taken over at once; another host\'s never', () => {
    ok(helper('lease', ['take', 'sitio-a', 'run1', '120']));
    expect(answer(ok(helper('lease', ['take', 'sitio-b', 'run2', '120', 'run1'])))[0]).toMatch(/^held sitio-a run1 /);
    const out = answer(ok(helper('lease', ['take', 'sitio-a', 'run3', '120', 'run1'])));
    expect(out[0]).toMatch(/^takeover sitio-a run1 \d+ \d+$/);
    expect(out[1]).toMatch(/^taken /);
    // Naming a dead run that does not hold it changes nothing.
    expect(answer(ok(helper('lease', ['take', 'sitio-a', 'run4', '120', 'run1'])))[0]).toMatch(/^held sitio-a run3 /);
    expect(helper('lease', ['take', 'sitio-a', 'run4', '120', '-x']).code).toBe(2);
    // --host-lock: the client holds its host's lock, so any other run of that host is over; another host's never.
    expect(answer(ok(helper('lease', ['take', 'sitio-a', 'run5', '120', '--host-lock'])))[0]).toMatch(/^takeover sitio-a run3 /);
    expect(answer(ok(helper('lease', ['take', 'sitio-b', 'run6', '120', '--host-lock'])))[0]).toMatch(/^held sitio-a run5 /);
  }, T);

  it('an unreadable holder file is an unknown holder\'s lease, for lease_s from its writing', () => {
    put('.lease/holder', 'rm -rf /; garbage\n');
    expect(answer(ok(helper('lease', ['take', 'sitio-b', 'run2', '60'])))[0]).toMatch(/^held unknown unknown \d+ \d+$/);
  }, T);

  it('a mutex left by a helper killed while reading the lease is broken once old', () => {
    mkdirSync(path.join(root, '.lease', 'lock'), { recursive: true });
    const old = new Date(Date.now() - 60_000);
    utimesSync(path.join(root, '.lease', 'lock'), old, old);
    expect(answer(ok(helper('lease', ['take', 'sitio-b', 'run2', '60'])))[0]).toMatch(/^taken /);
    expect(existsSync(path.join(root, '.lease', 'lock'))).toBe(false);
  }, T);

  it.each([
    [['take', '-rf', 'run1', '60'], 'not a lease host name: -rf'],
    [['take', 'a;b', 'run1', '60'], 'not a lease host name: a;b'],
    [['take', 'sitio-a', 'r/1', '60'], 'not a lease run name: r/1'],
    [['take', 'sitio-a', 'run1', '1e9'], 'seconds must be a number: 1e9'],
    [['take', 'sitio-a', 'run1', '0'], 'lease seconds must be 1 to 86400: 0'],
    [['take', 'sitio-a', 'run1', '86401'], 'lease seconds must be 1 to 86400: 86401'],
    [['take', 'sitio-a', 'run1', '60', 'dead', 'more'], 'refused: lease takes at most 5 arguments, not: take sitio-a run1 60 dead more'],
    [['renew', 'sitio-a', 'run1', '60', 'more'], 'refused: lease takes at most 4 arguments, not: renew sitio-a run1 60 more'],
    [['release', 'sitio-a', 'run1', '60'], 'refused: lease takes at most 3 arguments, not: release sitio-a run1 60'],
    [['steal'], 'refused: lease steal'],
    [[], 'refused: lease (none)'],
  ])('refuses lease %j', (args, message) => {
    const r = helper('lease', args);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 2, stderr: `difusion-helper: ${message}\n` });
    expect(existsSync(holderFile())).toBe(false);
  }, T);

  it('refuses a .lease that is a symlink: nothing is written outside ROOT', () => {
    const elsewhere = path.join(work, 'elsewhere');
    mkdirSync(elsewhere);
    symlinkSync(elsewhere, path.join(root, '.lease'));
    const r = helper('lease', ['take', 'sitio-a', 'run1', '60']);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 2, stderr: 'difusion-helper: .lease is not a directory\n' });
    expect(readdirSync(elsewhere)).toEqual([]);
  }, T);

  it('works through a restricted account, with the same checks', () => {
    expect(answer(ok(restricted('lease take sitio-a 20220605T201502Z-ab12cd 120')))[0]).toMatch(/^taken /);
    expect(answer(ok(restricted('lease take sitio-b 20220605T201503Z-cd34ef 120')))[0]).toMatch(/^held sitio-a 20220605T201502Z-ab12cd /);
    expect(restricted('lease take sitio-b $(id) 120').code).toBe(2);
    expect(answer(ok(restricted('lease release sitio-a 20220605T201502Z-ab12cd')))).toEqual(['released']);
  }, T);

  it('holds across concurrent takes: exactly one of many simultaneous runs gets it', async () => {
    const { spawn } = await import('node:child_process');
    const take = (i: number): Promise<string> =>
      new Promise((resolve) => {
        const p = spawn('sh', ['-c', SCRIPT, 'difusion-helper', root, 'lease', 'take', `host${i}`, `run${i}`, '60']);
        let out = '';
        p.stdout.on('data', (b: Buffer) => (out += b.toString()));
        p.on('close', () => resolve(out));
      });
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => take(i)));
    expect(answers.filter((a) => /^taken /m.test(a))).toHaveLength(1);
    expect(answers.filter((a) => /^held /m.test(a))).toHaveLength(7);
  }, T);
});

describe('difusion-helper hold: a rollback hold where every publication host sees it', () => {
  const HELD = '20220605_2015';
  const holdFile = (): string => path.join(root, '.lease', 'hold');
  const lines = (out: string): string[] => out.trim().split('\n').slice(1);
  beforeEach(() => {
    release(HELD, { 'index.html': 'a' });
    release('20220605_2030', { 'index.html': 'b' });
    symlinkSync('releases/20220605_2030', path.join(root, 'current'));
  });

  it('is set and lifted only by the run holding the lease; prepare and inspect report it, then its lifted trace', () => {
    expect(lines(ok(helper('hold', ['show'])))).toEqual(['none']);
    expect(helper('hold', ['set', HELD, 'sitio-a', 'run1']).stderr).toBe('difusion-helper: refused: hold set by sitio-a run1, which does not hold the lease\n');
    ok(helper('lease', ['take', 'sitio-a', 'run1', '60']));
    expect(lines(ok(helper('hold', ['set', HELD, 'sitio-a', 'run1'])))).toEqual([expect.stringMatching(new RegExp(`^hold ${HELD} sitio-a run1 \\d+$`))]);
    expect(ok(helper('inspect', ['20220605_2030']))).toMatch(new RegExp(`^live 20220605_2030\\nhold ${HELD} sitio-a run1 \\d+\\n`));
    ok(helper('lease', ['release', 'sitio-a', 'run1']));
    // Another host's run lifts it only under its own lease.
    expect(helper('hold', ['clear', 'sitio-b', 'run2']).code).toBe(2);
    ok(helper('lease', ['take', 'sitio-b', 'run2', '60']));
    expect(lines(ok(helper('hold', ['clear', 'sitio-b', 'run2'])))).toEqual([expect.stringMatching(new RegExp(`^lifted ${HELD} sitio-b run2 \\d+$`))]);
    const prepared = ok(helper('prepare', ['20220605_2030']));
    expect(prepared).not.toMatch(/^hold /m);
    expect(prepared).toMatch(new RegExp(`^lifted ${HELD} sitio-b run2 \\d+$`, 'm'));
  }, T);

  it.each([
    [['set', '../x', 'sitio-a', 'run1'], 'not a cut id: ../x'],
    [['set', '19700101_0000', 'sitio-a', 'run1'], 'refused: hold set 19700101_0000: releases/19700101_0000 is not a release here'],
    [['set', `20220605_2015_${'A'.repeat(65)}`, 'sitio-a', 'run1'], `not a cut id: 20220605_2015_${'A'.repeat(65)}`],
    [['set', HELD, '-rf', 'run1'], 'not a lease host name: -rf'],
    [['set', HELD, 'sitio-a', 'run1', 'more'], `refused: hold takes at most 4 arguments, not: set ${HELD} sitio-a run1 more`],
    [['clear', 'sitio-a', 'r/1'], 'not a lease run name: r/1'],
    [['clear', 'sitio-a', 'run1', 'more'], 'refused: hold takes at most 3 arguments, not: clear sitio-a run1 more'],
    [['show', 'more'], 'refused: hold takes at most 1 arguments, not: show more'],
    [['drop'], 'refused: hold drop'],
    [[], 'refused: hold (none)'],
  ])('refuses hold %j', (args, message) => {
    const r = helper('hold', args);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 2, stderr: `difusion-helper: ${message}\n` });
    expect(existsSync(holdFile())).toBe(false);
  }, T);

  it('takes a cut whose suffix is 64 characters, the longest a cut id has', () => {
    const long = `20220605_2045_${'A'.repeat(64)}`;
    expect(ok(helper('inspect', [long]))).toMatch(/^live 20220605_2030\n/);
  }, T);

  it('takes only the whitelisted form through a restricted account', () => {
    ok(restricted('lease take sitio-a 20220605T201502Z-ab12cd 120'));
    expect(restricted(`hold set ${HELD} sitio-a 20220605T201502Z-ab12cd $(id)`).code).toBe(2);
    expect(restricted(`hold set ${HELD};id sitio-a 20220605T201502Z-ab12cd`).stderr).toBe('difusion-helper: refused: not a difusion request\n');
    expect(restricted(`hold set ${HELD} sitio-a 20220605T201502Z-ab12cd extra`).code).toBe(2);
    expect(existsSync(holdFile())).toBe(false);
    expect(lines(ok(restricted(`hold set ${HELD} sitio-a 20220605T201502Z-ab12cd`)))).toEqual([expect.stringMatching(new RegExp(`^hold ${HELD} sitio-a 20220605T201502Z-ab12cd \\d+$`))]);
    expect(lines(ok(restricted('hold show')))[0]).toMatch(new RegExp(`^hold ${HELD} `));
  }, T);
});
