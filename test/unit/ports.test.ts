import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Difusor } from '../../src/core/registry/types.js';
import { RsyncError, formatRsyncArgs, parseRsyncStats, runRsync } from '../../src/adapters/rsync.js';
import { formatKnownHosts, formatSshConfig, hostAlias } from '../../src/adapters/openssh.js';
import { helperCommand, remoteRsyncPath } from '../../src/adapters/difusor.js';

/** Generous: these tests spawn real processes (sh, rsync, sha256sum), and a loaded machine makes that slow. */
const T = 20_000;

let work: string;

beforeEach(() => {
  work = mkdtempSync(path.join(tmpdir(), 'difusion-ports-'));
});

afterEach(() => {
  rmSync(work, { recursive: true, force: true });
});

/** An OpenSSH public key line of the given type, built from a fresh key pair. */
function hostKeyLine(type: 'ed25519' | 'rsa', comment = 'root@difusor'): string {
  const { publicKey } = type === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('rsa', { modulusLength: 1024 });
  const jwk = publicKey.export({ format: 'jwk' });
  const str = (b: Buffer): Buffer => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    return Buffer.concat([len, b]);
  };
  const mpint = (b64url: string): Buffer => {
    const raw = Buffer.from(b64url, 'base64url');
    return str(raw[0] !== undefined && raw[0] & 0x80 ? Buffer.concat([Buffer.from([0]), raw]) : raw);
  };
  const blob =
    type === 'ed25519'
      ? Buffer.concat([str(Buffer.from('ssh-ed25519')), str(Buffer.from(jwk.x as string, 'base64url'))])
      : Buffer.concat([str(Buffer.from('ssh-rsa')), mpint(jwk.e as string), mpint(jwk.n as string)]);
  return `${type === 'ed25519' ? 'ssh-ed25519' : 'ssh-rsa'} ${blob.toString('base64')} ${comment}`;
}

function difusor(overrides: Partial<Difusor> = {}): Difusor {
  return {
    id: 'ujed',
    name: 'Universidad Juárez del Estado de Durango',
    transport: 'ssh',
    host: 'prep.ujed.mx',
    port: 22,
    user: 'prep',
    host_key: hostKeyLine('ed25519'),
    path: '/var/www/prep',
    public_url: 'https://prep.ujed.mx/',
    status: 'active',
    access: 'shell',
    ...overrides,
  };
}

describe('formatRsyncArgs', () => {
  const common = [
    '--recursive',
    '--times',
    '--perms',
    '--chmod=D755,F644',
    '--whole-file',
    '--ignore-times',
    '--files-from=-',
    '--from0',
    '--timeout=60',
    '--stats',
    '--info=progress2',
  ];

  it('writes into the local difusor\'s staging, with a trailing slash on the source', () => {
    expect(
      formatRsyncArgs({ sourceDir: '/srv/cortes/20220605_2015', cut: '20220605_2015', ioTimeoutS: 60, destination: { kind: 'local', root: '/srv/espejo' } }),
    ).toEqual([...common, '/srv/cortes/20220605_2015/', '/srv/espejo/.staging/20220605_2015/']);
  }, T);

  it('writes into this run\'s incoming directory when asked, locally and over ssh', () => {
    const local = formatRsyncArgs({ sourceDir: '/c', cut: '20220605_2015', incoming: 'run1', ioTimeoutS: 60, destination: { kind: 'local', root: '/e' } });
    expect(local.at(-1)).toBe('/e/.staging/20220605_2015.in-run1/');
    const ssh = formatRsyncArgs({
      sourceDir: '/c',
      cut: '20220605_2015',
      incoming: 'run1',
      ioTimeoutS: 60,
      destination: { kind: 'ssh', alias: 'd', sshConfigFile: '/f', remoteRsyncPath: 'rsync' },
    });
    expect(ssh.at(-1)).toBe('d:.staging/20220605_2015.in-run1/');
  }, T);

  it('does not double a trailing slash the source already has', () => {
    const args = formatRsyncArgs({ sourceDir: '/srv/c/', cut: '20220605_2015', ioTimeoutS: 60, destination: { kind: 'local', root: '/e' } });
    expect(args.at(-2)).toBe('/srv/c/');
  }, T);

  it('reaches an ssh difusor through the run\'s ssh_config, alias and the helper as rsync path', () => {
    expect(
      formatRsyncArgs({
        sourceDir: '/srv/cortes/20220605_2015',
        cut: '20220605_2015',
        ioTimeoutS: 30,
        destination: { kind: 'ssh', alias: 'difusor-ujed', sshConfigFile: '/tmp/difusion-ssh-x/ssh_config', remoteRsyncPath: "sh -c 'x' h" },
      }),
    ).toEqual([
      ...common.map((a) => (a === '--timeout=60' ? '--timeout=30' : a)),
      '--rsh',
      "ssh -F '/tmp/difusion-ssh-x/ssh_config'",
      '--rsync-path',
      "sh -c 'x' h",
      '/srv/cortes/20220605_2015/',
      'difusor-ujed:.staging/20220605_2015/',
    ]);
  }, T);
});

describe('parseRsyncStats', () => {
  it('reads bytes sent and files transferred from a --stats report with thousands separators', () => {
    const sample = [
      '',
      'Number of files: 2,614 (reg: 2,401, dir: 213)',
      'Number of created files: 180 (reg: 180)',
      'Number of deleted files: 0',
      'Number of regular files transferred: 1,204',
      'Total file size: 812,345,678 bytes',
      'Total transferred file size: 98,765,432 bytes',
      'Literal data: 98,765,432 bytes',
      'Matched data: 0 bytes',
      'File list size: 65,432',
      'File list generation time: 0.003 seconds',
      'File list transfer time: 0.000 seconds',
      'Total bytes sent: 98,912,345',
      'Total bytes received: 23,456',
      '',
      'sent 98,912,345 bytes  received 23,456 bytes  9,893,580.10 bytes/sec',
      'total size is 812,345,678  speedup is 8.21',
    ].join('\n');
    expect(parseRsyncStats(sample)).toEqual({ bytesSent: 98_912_345, filesSent: 1204 });
  }, T);

  it('gives zeros when there is no report', () => {
    expect(parseRsyncStats('')).toEqual({ bytesSent: 0, filesSent: 0 });
  }, T);
});

describe('runRsync (real rsync, local destination)', () => {
  function setup(): { src: string; root: string } {
    const src = path.join(work, '20220605_2015');
    const root = path.join(work, 'espejo');
    mkdirSync(path.join(src, 'actas'), { recursive: true });
    writeFileSync(path.join(src, 'index.html'), 'hola');
    writeFileSync(path.join(src, 'actas', "0001 B'A.jpg"), 'x'.repeat(5000));
    writeFileSync(path.join(src, 'not-listed.txt'), 'no');
    chmodSync(path.join(src, 'index.html'), 0o600);
    mkdirSync(path.join(root, '.staging', '20220605_2015'), { recursive: true });
    return { src, root };
  }

  it('sends exactly the listed files into the cut\'s staging with the served modes, and reports the stats', async () => {
    const { src, root } = setup();
    const result = await runRsync(
      { sourceDir: src, cut: '20220605_2015', ioTimeoutS: 30, destination: { kind: 'local', root } },
      ['index.html', "actas/0001 B'A.jpg"],
      { timeoutMs: 30_000 },
    );
    const staged = path.join(root, '.staging', '20220605_2015');
    expect(result.filesSent).toBe(2);
    expect(result.bytesSent).toBeGreaterThan(5004);
    expect(readFileSync(path.join(staged, 'index.html'), 'utf8')).toBe('hola');
    expect(readFileSync(path.join(staged, 'actas', "0001 B'A.jpg"), 'utf8')).toHaveLength(5000);
    expect(existsSync(path.join(staged, 'not-listed.txt'))).toBe(false);
    expect(statSync(path.join(staged, 'index.html')).mode & 0o777).toBe(0o644);
    expect(statSync(path.join(staged, 'actas')).mode & 0o777).toBe(0o755);
  }, T);

  it('replaces a file the staging shares with the live release by a rename: the live inode is never written', async () => {
    const { src, root } = setup();
    const live = path.join(root, 'releases', '20220605_2000');
    mkdirSync(live, { recursive: true });
    // Same size and the same mtime as the source: rsync's quick check would skip it, --ignore-times sends it.
    // (That the helper refuses --inplace and --append, which would write into it, is helper.test's.)
    writeFileSync(path.join(live, 'index.html'), 'viej');
    linkSync(path.join(live, 'index.html'), path.join(root, '.staging', '20220605_2015', 'index.html'));
    utimesSync(path.join(live, 'index.html'), statSync(path.join(src, 'index.html')).atime, statSync(path.join(src, 'index.html')).mtime);
    const inode = statSync(path.join(live, 'index.html')).ino;
    await runRsync(
      { sourceDir: src, cut: '20220605_2015', ioTimeoutS: 30, destination: { kind: 'local', root } },
      ['index.html'],
      { timeoutMs: 30_000 },
    );
    expect(readFileSync(path.join(root, '.staging', '20220605_2015', 'index.html'), 'utf8')).toBe('hola');
    expect(readFileSync(path.join(live, 'index.html'), 'utf8')).toBe('viej');
    expect(statSync(path.join(live, 'index.html'))).toMatchObject({ ino: inode, nlink: 1 });
  }, T);

  it('fails with exit 23 named and explained when a listed file does not exist', async () => {
    const { src, root } = setup();
    const error = await runRsync(
      { sourceDir: src, cut: '20220605_2015', ioTimeoutS: 30, destination: { kind: 'local', root } },
      ['index.html', 'actas/no-existe.jpg'],
      { timeoutMs: 30_000 },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RsyncError);
    expect((error as RsyncError).exitCode).toBe(23);
    expect((error as RsyncError).message).toMatch(/^rsync exit 23 \(some files could not be transferred\): .*no-existe\.jpg/);
  }, T);

  it('fails when the staging parent is missing, naming rsync\'s own complaint', async () => {
    const { src } = setup();
    const error = await runRsync(
      { sourceDir: src, cut: '20220605_2015', ioTimeoutS: 30, destination: { kind: 'local', root: path.join(work, 'nowhere') } },
      ['index.html'],
      { timeoutMs: 30_000 },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RsyncError);
    expect((error as RsyncError).message).toMatch(/^rsync exit \d+ \(.+\): .+/);
    expect((error as RsyncError).exitCode).not.toBe(0);
  }, T);

  it('through the helper as rsync path (the ssh route, with a stand-in for ssh), lands in staging', async () => {
    const { src, root } = setup();
    // A stand-in for ssh: drops "-F FILE HOST" and runs the rest with sh, as sshd runs the joined command line.
    const bin = path.join(work, 'bin');
    mkdirSync(bin);
    writeFileSync(path.join(bin, 'ssh'), '#!/bin/sh\nshift 3\nexec sh -c "$*"\n', { mode: 0o755 });
    const d = difusor({ path: root });
    const oldPath = process.env.PATH;
    process.env.PATH = `${bin}:${oldPath}`;
    try {
      const result = await runRsync(
        {
          sourceDir: src,
          cut: '20220605_2015',
          ioTimeoutS: 30,
          destination: { kind: 'ssh', alias: hostAlias(d), sshConfigFile: path.join(work, 'ssh_config'), remoteRsyncPath: remoteRsyncPath(d) },
        },
        ['index.html'],
        { timeoutMs: 30_000 },
      );
      expect(result.filesSent).toBe(1);
    } finally {
      process.env.PATH = oldPath;
    }
    expect(readFileSync(path.join(root, '.staging', '20220605_2015', 'index.html'), 'utf8')).toBe('hola');
  }, T);
});

describe('formatKnownHosts', () => {
  it('pins one key per ssh difusor under its alias, without the comment, and skips local ones', () => {
    const a = difusor();
    const b = difusor({ id: 'itd', host: 'prep.itdurango.edu.mx', host_key: hostKeyLine('rsa') });
    const local = difusor({ id: 'espejo', transport: 'local', host: undefined, host_key: undefined });
    const text = formatKnownHosts([a, local, b]);
    const [typeA, b64A] = (a.host_key as string).split(' ');
    const [typeB, b64B] = (b.host_key as string).split(' ');
    expect(text).toBe(`difusor-ujed ${typeA} ${b64A}\ndifusor-itd ${typeB} ${b64B}\n`);
    // Keyed by alias only: never by the host name, so DNS can't point the key elsewhere.
    expect(text).not.toContain('prep.ujed.mx');
  }, T);

  it('refuses a host key that does not parse, naming the difusor', () => {
    expect(() => formatKnownHosts([difusor({ host_key: 'ssh-ed25519 AAAA' })])).toThrow(/^difusor ujed: host_key: /);
  }, T);
});

describe('formatSshConfig', () => {
  const config = (over: Partial<Parameters<typeof formatSshConfig>[0]> = {}): string =>
    formatSshConfig({
      difusores: [difusor(), difusor({ id: 'espejo', transport: 'local' })],
      knownHostsFile: '/tmp/difusion-ssh-x/known_hosts',
      identityFile: '/home/prep/.ssh/prep ed25519',
      connectTimeoutS: 10,
      ...over,
    });

  it('one block per ssh difusor: host, port, user, the alias as HostKeyAlias, only the pinned key type', () => {
    const text = config({ difusores: [difusor({ port: 2222 })] });
    expect(text.startsWith(
      [
        'Host difusor-ujed',
        '  HostName prep.ujed.mx',
        '  Port 2222',
        '  User prep',
        '  HostKeyAlias difusor-ujed',
        '  HostKeyAlgorithms ssh-ed25519',
        '',
        'Host *',
      ].join('\n'),
    )).toBe(true);
    expect(text).not.toContain('Host difusor-espejo');
  }, T);

  it('clients ride on a master when one is up (ControlPath) but never become one; keepalives as asked', () => {
    const text = config({ controlPath: '/tmp/difusion-ssh-x/%n.sock', keepaliveS: 1, keepaliveCount: 4 });
    expect(text).toContain('\n  ControlMaster no\n  ControlPath "/tmp/difusion-ssh-x/%n.sock"\n');
    expect(text).toContain('\n  ServerAliveInterval 1\n  ServerAliveCountMax 4\n');
    expect(config()).not.toContain('ControlPath');
  }, T);

  it('never trusts on first use, never asks, and consults nothing from ~/.ssh or /etc/ssh', () => {
    const lines = config().split('\n').map((l) => l.trim());
    for (const wanted of [
      'StrictHostKeyChecking yes',
      'BatchMode yes',
      'UpdateHostKeys no',
      'GlobalKnownHostsFile /dev/null',
      'UserKnownHostsFile "/tmp/difusion-ssh-x/known_hosts"',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'IdentityFile "/home/prep/.ssh/prep ed25519"',
      'IdentitiesOnly yes',
      'ConnectTimeout 10',
      'ForwardAgent no',
    ]) {
      expect(lines).toContain(wanted);
    }
    expect(config()).not.toMatch(/accept-new|StrictHostKeyChecking (no|ask)|BatchMode no/);
  }, T);

  it('leaves the identity out when none is set', () => {
    expect(config({ identityFile: undefined })).not.toMatch(/IdentityFile|IdentitiesOnly/);
  }, T);

  it('refuses a path that cannot be quoted in an ssh_config', () => {
    expect(() => config({ identityFile: '/home/x/"key"' })).toThrow(/cannot use .* in an ssh_config/);
    expect(() => config({ knownHostsFile: '/tmp/a\nHost *' })).toThrow(/cannot use/);
  }, T);

  it('is a config OpenSSH itself accepts, resolving the alias to the real host (ssh -G)', () => {
    const file = path.join(work, 'ssh_config');
    writeFileSync(file, config({ difusores: [difusor({ port: 2222 })] }));
    const r = spawnSync('ssh', ['-G', '-F', file, 'difusor-ujed'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const g = r.stdout.split('\n');
    expect(g).toContain('hostname prep.ujed.mx');
    expect(g).toContain('port 2222');
    expect(g).toContain('stricthostkeychecking true');
    expect(g).toContain('batchmode yes');
    expect(g).toContain('hostkeyalias difusor-ujed');
  }, T);

  // OpenSSH 8.8+ servers no longer sign with ssh-rsa (SHA-1): they offer an RSA key as rsa-sha2-512/256 only,
  // so "HostKeyAlgorithms ssh-rsa" fails with "no matching host key type found". The ssh2 side
  // (src/adapters/ssh.ts hostKeyAlgorithms) already lists the SHA-2 names. See the report.
  test('lets an ssh-rsa pinned key be negotiated as rsa-sha2-512/256, as current servers offer it', () => {
    const text = config({ difusores: [difusor({ host_key: hostKeyLine('rsa') })] });
    expect(text).toMatch(/^ {2}HostKeyAlgorithms rsa-sha2-512,rsa-sha2-256(,ssh-rsa)?$/m);
  }, T);
});

describe('helperCommand', () => {
  it('on a shell account, runs the inline helper with a root holding quotes, spaces and $(...)', () => {
    const root = path.join(work, `it's "the" $(espejo) \\ dir`);
    mkdirSync(root);
    const cmd = helperCommand(difusor({ path: root }), 'status', []);
    expect(cmd.startsWith("'sh' '-c' '#!/bin/sh")).toBe(true);
    const out = execFileSync('sh', ['-c', cmd], { encoding: 'utf8' });
    expect(out).toMatch(/^free \d+$/m);
    expect(out).toContain('writable yes');
    expect(existsSync(path.join(work, 'espejo'))).toBe(false);
  }, T);

  it('on a shell account, passes verb arguments through intact (prepare creates the layout in that root)', () => {
    const root = path.join(work, "o'brien");
    mkdirSync(root);
    const out = execFileSync('sh', ['-c', helperCommand(difusor({ path: root }), 'prepare', ['20220605_2015'])], { encoding: 'utf8' });
    expect(out).toMatch(/^free \d+$/m);
    expect(statSync(path.join(root, 'releases')).isDirectory()).toBe(true);
    expect(statSync(path.join(root, '.staging')).isDirectory()).toBe(true);
  }, T);

  it('on a restricted account, sends plain tokens only', () => {
    const d = difusor({ access: 'restricted' });
    expect(helperCommand(d, 'prepare', ['20220605_2015'])).toBe('prepare 20220605_2015');
    expect(helperCommand(d, 'put', ['20220605_2015', 'MANIFEST.sha256'])).toBe('put 20220605_2015 MANIFEST.sha256');
    expect(remoteRsyncPath(d)).toBe('rsync');
  }, T);

  it.each([['a b'], ["it's"], ['$(id)'], ['a;b'], ['']])('on a restricted account, refuses the token %j', (token) => {
    expect(() => helperCommand(difusor({ access: 'restricted' }), 'prepare', [token])).toThrow(
      `cannot send ${JSON.stringify(token)} to a restricted account`,
    );
  }, T);
});
