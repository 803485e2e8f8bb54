import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** The notice verbs of templates/difusion-helper.sh (notice-put, notice-switch) and what switch, prune and status do around a notice. */
const T = 20_000;
const SCRIPT = readFileSync(new URL('../../templates/difusion-helper.sh', import.meta.url), 'utf8');
const STAMP = '20220605_211000';
const CUT = '20220605_2015_PREP_DGO';
const sha = (data: string): string => createHash('sha256').update(data).digest('hex');

let work: string;
let root: string;

beforeEach(() => {
  work = mkdtempSync(path.join(tmpdir(), 'difusion-helper-notice-'));
  root = path.join(work, 'prep');
  mkdirSync(path.join(root, 'releases', CUT), { recursive: true });
  writeFileSync(path.join(root, 'releases', CUT, 'index.html'), 'corte');
  symlinkSync(`releases/${CUT}`, path.join(root, 'current'));
});

afterEach(() => rmSync(work, { recursive: true, force: true }));

function run(args: string[], input = '', env?: NodeJS.ProcessEnv): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('sh', ['-c', SCRIPT, 'difusion-helper', root, ...args], { input, encoding: 'utf8', env });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function stage(stamp = STAMP, files = { 'index.html': '<p>aviso</p>', 'aviso.json': '{"aviso":"suspension"}' }, manifest?: string): void {
  for (const [name, content] of Object.entries(files)) expect(run(['notice-put', stamp, name], content).code).toBe(0);
  const lines = manifest ?? Object.entries(files).map(([n, c]) => `${sha(c)}  ${n}\n`).join('');
  expect(run(['notice-put', stamp, 'MANIFEST.sha256'], lines).code).toBe(0);
}

const current = (): string => readlinkSync(path.join(root, 'current'));

describe('difusion-helper: the notice', () => {
  test('staged, checked, moved into notices/ and switched over current; status names it', () => {
    stage();
    expect(current()).toBe(`releases/${CUT}`);
    const r = run(['notice-switch', STAMP]);
    expect(r).toEqual({ code: 0, stdout: `live notices/${STAMP}\n`, stderr: '' });
    expect(current()).toBe(`notices/${STAMP}`);
    expect(readFileSync(path.join(root, 'current', 'aviso.json'), 'utf8')).toBe('{"aviso":"suspension"}');
    expect(existsSync(path.join(root, '.staging', `notice-${STAMP}`))).toBe(false);
    const status = run(['status']).stdout;
    expect(status).toContain(`notice ${STAMP}\n`);
    expect(status).not.toContain('current-invalid');
    expect(status).toContain(`release ${CUT}\n`);
  }, T);

  test('a staged notice that does not match its manifest is refused and current stays on the cut', () => {
    stage(STAMP, { 'index.html': '<p>aviso</p>', 'aviso.json': '{}' }, `${sha('other')}  index.html\n${sha('{}')}  aviso.json\n`);
    const r = run(['notice-switch', STAMP]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('does not match its MANIFEST.sha256');
    expect(current()).toBe(`releases/${CUT}`);
  }, T);

  test('refuses other names, bad stamps and a notice that was never staged', () => {
    expect(run(['notice-put', STAMP, '../x'], 'x').stderr).toContain('refused: notice-put ../x');
    expect(run(['notice-put', STAMP, 'MANIFEST.sha256.sig'], 'x').code).toBe(2);
    expect(run(['notice-put', '2022-06-05', 'index.html'], 'x').stderr).toContain('not a notice stamp');
    expect(run(['notice-put', '../20220605_211000', 'index.html'], 'x').code).toBe(2);
    expect(run(['notice-switch', '20220605_999999']).stderr).toContain('notices/20220605_999999 is not there');
    expect(current()).toBe(`releases/${CUT}`);
  }, T);

  test('switch refuses to replace a notice unless reinstate asks, then prune removes the lifted notice', () => {
    stage();
    run(['notice-switch', STAMP]);
    const refused = run(['switch', CUT]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`current shows the notice notices/${STAMP}: the difusor is suspended; only difusion reinstate replaces it`);
    expect(current()).toBe(`notices/${STAMP}`);
    expect(run(['switch', CUT, '--force']).stderr).toContain('refused: switch');
    // While live, prune keeps it.
    expect(run(['prune', '1']).stdout).toBe('');
    expect(existsSync(path.join(root, 'notices', STAMP))).toBe(true);
    expect(run(['switch', CUT, '--lift-notice'])).toMatchObject({ code: 0, stdout: `live releases/${CUT}\n` });
    expect(run(['prune', '5']).stdout).toBe(`pruned notices/${STAMP}\n`);
    expect(existsSync(path.join(root, 'notices', STAMP))).toBe(false);
  }, T);

  test('the live notice cannot be overwritten under its own stamp; another stamp replaces it', () => {
    stage();
    run(['notice-switch', STAMP]);
    stage(STAMP, { 'index.html': 'nuevo', 'aviso.json': '{"n":2}' });
    expect(run(['notice-switch', STAMP]).stderr).toContain(`notices/${STAMP} is live`);
    expect(readFileSync(path.join(root, 'current', 'index.html'), 'utf8')).toBe('<p>aviso</p>');
    stage('20220605_211001', { 'index.html': 'nuevo', 'aviso.json': '{"n":2}' });
    expect(run(['notice-switch', '20220605_211001']).stdout).toBe('live notices/20220605_211001\n');
    expect(readFileSync(path.join(root, 'current', 'index.html'), 'utf8')).toBe('nuevo');
  }, T);

  test('a restricted account runs the notice verbs from plain tokens', () => {
    const env = { PATH: process.env.PATH, SSH_ORIGINAL_COMMAND: `notice-put ${STAMP} index.html` };
    const r = spawnSync('sh', ['-c', SCRIPT, 'difusion-helper', root], { input: 'x', encoding: 'utf8', env });
    expect(r.status).toBe(0);
    expect(readFileSync(path.join(root, '.staging', `notice-${STAMP}`, 'index.html'), 'utf8')).toBe('x');
  }, T);
});
