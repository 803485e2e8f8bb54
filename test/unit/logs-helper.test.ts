import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { encodeLogArg, parseLogList } from '../../src/adapters/log-remote.js';

/** The helper's read-only `logs` verb, run locally as a shell account and as a restricted one. */
const SCRIPT = readFileSync(new URL('../../templates/difusion-helper.sh', import.meta.url), 'utf8');
const T = 20_000;

let work: string;
let logs: string;
beforeEach(() => {
  work = mkdtempSync(path.join(tmpdir(), 'difusion-logs-'));
  logs = path.join(work, 'log dir');
  mkdirSync(path.join(work, 'prep'));
  mkdirSync(logs);
  writeFileSync(path.join(logs, 'access_log'), 'line 1\nline 2\n');
  writeFileSync(path.join(logs, 'access_log.1.gz'), Buffer.from([0x1f, 0x8b, 0, 1, 2]));
  writeFileSync(path.join(logs, 'error_log'), 'secret\n');
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

/** restricted: the glob its authorized_keys pins (DIFUSION_ACCESS_LOG), '' for none; false for a shell account. */
function helper(args: string[], restricted: boolean | string = false) {
  const root = path.join(work, 'prep');
  const pinned = restricted === true ? `${logs}/access_log*` : restricted;
  const r = restricted !== false
    ? spawnSync('sh', ['-c', SCRIPT, 'difusion-helper', root], { env: { SSH_ORIGINAL_COMMAND: args.join(' '), ...(pinned ? { DIFUSION_ACCESS_LOG: pinned } : {}) } })
    : spawnSync('sh', ['-c', SCRIPT, 'difusion-helper', root, ...args]);
  return { code: r.status, stdout: r.stdout.toString('latin1'), stderr: r.stderr.toString() };
}

const glob = (): string => encodeLogArg(`${logs}/access_log*`);

test.each([false, true])('list: the files the glob matches, with size, inode and mtime (restricted: %s)', (restricted) => {
  const r = helper(['logs', 'list', glob()], restricted);
  expect(r.stderr).toBe('');
  const files = parseLogList(r.stdout);
  expect(files.map((f) => [path.basename(f.path), f.size])).toEqual([
    ['access_log', 14],
    ['access_log.1.gz', 5],
  ]);
  expect(files[0]!.inode).toBe(statSync(path.join(logs, 'access_log')).ino);
}, T);

test.each([false, true])('send: the bytes from an offset, binary-safe (restricted: %s)', (restricted) => {
  expect(helper(['logs', 'send', glob(), encodeLogArg(`${logs}/access_log`), '7'], restricted).stdout).toBe('line 2\n');
  expect(Buffer.from(helper(['logs', 'send', glob(), encodeLogArg(`${logs}/access_log.1.gz`), '0'], restricted).stdout, 'latin1')).toEqual(
    Buffer.from([0x1f, 0x8b, 0, 1, 2]),
  );
}, T);

test('sum: sha256 of a range, to check a copy before resuming it', () => {
  const r = helper(['logs', 'sum', glob(), encodeLogArg(`${logs}/access_log`), '2', '4']);
  expect(r.stdout.trim()).toBe(createHash('sha256').update('ne 1').digest('hex'));
}, T);

describe('refusals', () => {
  test.each([
    ['a file the glob does not match', () => ['logs', 'send', glob(), encodeLogArg(`${logs}/error_log`), '0'], /not one of the logs/],
    ['a path escaping through ..', () => ['logs', 'send', glob(), encodeLogArg(`${logs}/access_log/../error_log`), '0'], /not one of the logs/],
    ['/etc/passwd', () => ['logs', 'send', glob(), '/etc/passwd', '0'], /not one of the logs/],
    ['a relative glob', () => ['logs', 'list', 'access_log=2A'], /absolute path/],
    ['an offset that is not a number', () => ['logs', 'send', glob(), encodeLogArg(`${logs}/access_log`), '-1'], /offset must be a number/],
    ['an unknown sub-verb', () => ['logs', 'rm', glob()], /refused: logs rm/],
  ])('%s', (_name, args, message) => {
    const r = helper(args());
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe('');
  }, T);

  test('a symlink to a directory matching the glob is not listed', () => {
    symlinkSync('/etc', path.join(logs, 'access_log.etc'));
    expect(parseLogList(helper(['logs', 'list', glob()]).stdout).map((f) => path.basename(f.path))).toEqual(['access_log', 'access_log.1.gz']);
  }, T);

  test.each([
    ['/etc/passwd as a glob of its own', () => ['logs', 'send', '/etc/passwd', '/etc/passwd', '0'], true, /not the access log this account pins/],
    ['a wider glob than the pinned one', () => ['logs', 'list', encodeLogArg(`${logs}/*`)], true, /not the access log this account pins/],
    ['the pinned glob escaping through ..', () => ['logs', 'list', encodeLogArg(`${logs}/access_log*/../*`)], true, /not the access log this account pins/],
    ['any glob when the account pins none', () => ['logs', 'list', glob()], '', /pins no access log.*DIFUSION_ACCESS_LOG/],
  ])('a restricted account reads only the glob its authorized_keys pins: %s', (_name, args, pinned, message) => {
    const r = helper(args(), pinned);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe('');
  }, T);

  test('a restricted account gets no glob or quote through: only the encoded tokens', () => {
    const r = helper(['logs', 'list', `${logs}/access_log*`], true);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not a difusion request/);
  }, T);
});

test('encoding: every character the restricted account refuses travels as =XX', () => {
  expect(encodeLogArg('/var/log/httpd/prep access_log*?=')).toBe('/var/log/httpd/prep=20access_log=2A=3F=3D');
});

test('a symlink to a log is listed with its target\'s inode, so the pull reads the file once', () => {
  symlinkSync('access_log', path.join(logs, 'access_log.current'));
  const files = parseLogList(helper(['logs', 'list', glob()]).stdout);
  const inodes = new Map(files.map((f) => [path.basename(f.path), f.inode]));
  expect(inodes.get('access_log.current')).toBe(inodes.get('access_log'));
}, T);
