import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { fingerprint, parseHostKey, type HostKey } from '../../src/core/registry/hostkey.js';
import {
  connectSsh,
  ExecTimeoutError,
  HostKeyMismatchError,
  shCommand,
  shQuote,
  SshConnectionError,
  type RemoteShell,
  type SshTarget,
} from '../../src/adapters/ssh.js';
import { startApache } from './lab/apache.js';
import { startProxy } from './lab/proxy.js';
import { startLab, type Lab, type LabDifusor } from './lab/sshd.js';

const run = promisify(execFile);
const T = 30_000;

let lab: Lab;

beforeAll(async () => {
  lab = await startLab({ difusores: 3 });
}, T);

afterAll(async () => {
  await lab?.stop();
}, T);

function target(d: LabDifusor, over: Partial<SshTarget> = {}): SshTarget {
  return {
    host: d.host,
    port: d.port,
    user: d.user,
    hostKey: d.hostKey,
    privateKey: lab.clientKey,
    connectTimeoutMs: 5000,
    ...over,
  };
}

function blob(line: string): Buffer {
  return (parseHostKey(line) as HostKey).blob;
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe('the lab', () => {
  test('each difusor has its own address, port, host key and base directory', () => {
    const [a, b] = lab.difusores as [LabDifusor, LabDifusor];
    expect(a.host).not.toBe(b.host);
    expect(a.hostKey).not.toBe(b.hostKey);
    expect(a.hostKey).toMatch(/^ssh-ed25519 AAAA/);
    expect(statSync(a.path).isDirectory()).toBe(true);
    expect(a.path.startsWith(lab.dir + '/')).toBe(true);
    expect(a.sshdPid).toBeGreaterThan(0);
  });

  test("remote sessions get the difusor's own HOME, not this machine's root dotfiles", async () => {
    const d1 = lab.difusor('d1');
    const shell = await connectSsh(target(d1));
    try {
      expect((await shell.exec('echo "$HOME"')).stdout).toBe(d1.home + '\n');
    } finally {
      shell.close();
    }
  }, T);

  test('registryYaml pins every host key and keeps state inside the lab', () => {
    const doc = parse(lab.registryYaml({ difusores: { d2: { status: 'suspended' } } }));
    expect(doc.version).toBe(1);
    expect(doc.publication.timezone).toBe('America/Mexico_City');
    expect(doc.publication.window).toEqual({ start: '2022-06-05T20:00', end: '2022-06-06T20:00' });
    expect(doc.publication.ssh.identity_file).toBe(lab.clientKeyFile);
    expect(doc.publication.state_dir.startsWith(lab.dir + '/')).toBe(true);
    expect(doc.difusores.map((d: { id: string }) => d.id)).toEqual(['d1', 'd2', 'd3']);
    const d1 = lab.difusor('d1');
    expect(doc.difusores[0]).toMatchObject({ host: d1.host, port: d1.port, user: 'root', host_key: d1.hostKey, path: d1.path });
    expect(doc.difusores[1].status).toBe('suspended');

    const trimmed = parse(lab.registryYaml({ only: ['d3'], publication: { ssh: { connect_timeout_s: 3 }, keep_releases: undefined } }));
    expect(trimmed.difusores).toHaveLength(1);
    expect(trimmed.publication.ssh).toEqual({ identity_file: lab.clientKeyFile, connect_timeout_s: 3 });
    expect('keep_releases' in trimmed.publication).toBe(false);
  });
});

describe('connectSsh against a real sshd', () => {
  let shell: RemoteShell;
  beforeAll(async () => {
    shell = await connectSsh(target(lab.difusor('d1')));
  }, T);
  afterAll(() => shell?.close());

  test('runs a command and returns its output and exit code', async () => {
    expect(await shell.exec('echo hello')).toEqual({ code: 0, stdout: 'hello\n', stderr: '' });
    const failed = await shell.exec('echo oops >&2; exit 3');
    expect(failed).toEqual({ code: 3, stdout: '', stderr: 'oops\n' });
  }, T);

  test('a command killed by a signal counts as a failure', async () => {
    const killed = await shell.exec('kill -9 $$');
    expect(killed.code).toBe(-1);
  }, T);

  test('sends stdin, text or bytes, and closes it', async () => {
    expect((await shell.exec('cat', { stdin: 'línea uno\nlínea dos\n' })).stdout).toBe('línea uno\nlínea dos\n');
    const bytes = Buffer.from(Array.from({ length: 70_000 }, (_, i) => i % 256));
    const remote = await shell.exec('sha256sum', { stdin: bytes });
    const local = (await import('node:crypto')).createHash('sha256').update(bytes).digest('hex');
    expect(remote.stdout.split(' ')[0]).toBe(local);
    // Without stdin the command must see EOF at once rather than wait.
    expect(await shell.exec('cat; echo done', { timeoutMs: 5000 })).toMatchObject({ code: 0, stdout: 'done\n' });
  }, T);

  test('collects a large stdout whole', async () => {
    const result = await shell.exec('head -c 2097152 /dev/zero | tr "\\0" a');
    expect(result.code).toBe(0);
    expect(result.stdout.length).toBe(2 * 1024 * 1024);
    expect(/^a+$/.test(result.stdout)).toBe(true);
  }, T);

  test('one connection serves sequential and concurrent execs, more than sshd allows at once', async () => {
    for (let i = 0; i < 5; i++) expect((await shell.exec(`echo ${i}`)).stdout).toBe(`${i}\n`);
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 24 }, (_, i) => shell.exec(`sleep 0.3; echo ${i}`)));
    expect(results.map((r) => r.stdout)).toEqual(Array.from({ length: 24 }, (_, i) => `${i}\n`));
    // Serially this would take 7 s; in parallel a few rounds of 0.3 s.
    expect(Date.now() - started).toBeLessThan(5000);
  }, T);

  test('shQuote and shCommand survive the remote shell with hostile arguments', async () => {
    const args = ["it's", 'a b', '$(touch /tmp/never)', '`id`', '*', 'new\nline', '', '\\'];
    const result = await shell.exec(`printf '%s\\0' ${shCommand(args)}`);
    expect(result.stdout.split('\0').slice(0, -1)).toEqual(args);
    expect(shQuote("it's")).toBe(`'it'\\''s'`);
  }, T);

  test('a timed-out exec rejects, and the connection stays usable', async () => {
    const err = await rejection(shell.exec('sleep 20', { timeoutMs: 300 }));
    expect(err).toBeInstanceOf(ExecTimeoutError);
    expect(err.message).toContain(`${lab.difusor('d1').host}:${lab.difusor('d1').port}`);
    expect(err.message).toContain('sleep 20');
    expect((await shell.exec('echo still here')).stdout).toBe('still here\n');
  }, T);

  test('after close, exec rejects', async () => {
    const other = await connectSsh(target(lab.difusor('d1')));
    other.close();
    await expect(other.exec('true')).rejects.toThrow(/closed/);
  }, T);
});

describe('host key pinning', () => {
  test('a wrong pinned key is refused before authenticating, with both fingerprints', async () => {
    const d1 = lab.difusor('d1');
    const d2 = lab.difusor('d2');
    const marker = join(lab.dir, 'must-not-exist');
    const logBefore = statSync(d1.logFile).size;

    const err = await rejection(connectSsh(target(d1, { hostKey: d2.hostKey })).then((s) => s.exec(`touch ${shQuote(marker)}`)));

    expect(err).toBeInstanceOf(HostKeyMismatchError);
    const mismatch = err as HostKeyMismatchError;
    expect(mismatch.expected).toBe(fingerprint(blob(d2.hostKey)));
    expect(mismatch.offered).toBe(fingerprint(blob(d1.hostKey)));
    expect(mismatch.message).toContain(`${d1.host}:${d1.port}`);
    expect(mismatch.message).toContain(mismatch.expected);
    expect(mismatch.message).toContain(mismatch.offered);
    expect(mismatch.message).toMatch(/admin/);
    expect(mismatch.message).toMatch(/host_key/);
    expect(existsSync(marker)).toBe(false);
    // sshd never saw a login attempt on that connection.
    const log = readFileSync(d1.logFile).subarray(logBefore).toString('utf8');
    expect(log).not.toMatch(/Accepted publickey|Failed publickey|userauth/);
  }, T);

  test('our fingerprint is the one ssh-keygen prints', async () => {
    const d1 = lab.difusor('d1');
    const { stdout } = await run('ssh-keygen', ['-lf', d1.hostKeyFile + '.pub']);
    expect(stdout.split(' ')[1]).toBe(fingerprint(blob(d1.hostKey)));
  }, T);

  test('an unusable pinned key is refused before connecting', async () => {
    await expect(connectSsh(target(lab.difusor('d1'), { hostKey: 'ssh-ed25519 not-base64!' }))).rejects.toThrow(/host_key is not usable/);
  }, T);

  test('a pinned key of a type the server does not have is refused, saying so', async () => {
    const ecdsa = join(lab.dir, 'other_ecdsa');
    await run('ssh-keygen', ['-q', '-t', 'ecdsa', '-N', '', '-f', ecdsa]);
    const err = await rejection(connectSsh(target(lab.difusor('d1'), { hostKey: readFileSync(ecdsa + '.pub', 'utf8') })));
    expect(err.message).toContain(`${lab.difusor('d1').host}:${lab.difusor('d1').port}`);
    expect(err.message).toMatch(/no host key of the pinned type/);
  }, T);

  test('a client key that is not authorized fails as authentication', async () => {
    const other = join(lab.dir, 'stranger_ed25519');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    const err = await rejection(connectSsh(target(lab.difusor('d1'), { privateKey: readFileSync(other) })));
    expect(err).toBeInstanceOf(SshConnectionError);
    expect((err as SshConnectionError).reason).toBe('auth');
    expect(err.message).toMatch(/authentication failed/);
  }, T);
});

describe('servers that are down or links that stall', () => {
  test('a stopped sshd refuses the connection, naming host:port; start() brings it back', async () => {
    const d3 = lab.difusor('d3');
    const before = await connectSsh(target(d3));
    await d3.stop();
    // Stopping takes the open sessions down too, as a server going away would.
    await expect(before.exec('true')).rejects.toThrow(/lost|closed/);

    const err = await rejection(connectSsh(target(d3)));
    expect(err).toBeInstanceOf(SshConnectionError);
    expect((err as SshConnectionError).reason).toBe('refused');
    expect(err.message).toContain(`${d3.host}:${d3.port}`);
    expect(err.message).toMatch(/refused/);

    await d3.start();
    const after = await connectSsh(target(d3));
    expect((await after.exec('echo back')).stdout).toBe('back\n');
    after.close();
  }, T);

  test('a stalled link times the exec out; the connection recovers on resume and dies on a cut', async () => {
    const d1 = lab.difusor('d1');
    const proxy = await startProxy(d1);
    try {
      const shell = await connectSsh(target(d1, { host: proxy.host, port: proxy.port }));
      expect((await shell.exec('echo via proxy')).stdout).toBe('via proxy\n');

      proxy.stall();
      const err = await rejection(shell.exec('echo stuck', { timeoutMs: 500 }));
      expect(err).toBeInstanceOf(ExecTimeoutError);
      expect(err.message).toContain(`${proxy.host}:${proxy.port}`);
      expect(err.message).toMatch(/did not finish within 0\.5s/);

      proxy.resume();
      expect((await shell.exec('echo recovered', { timeoutMs: 5000 })).stdout).toBe('recovered\n');

      const pending = shell.exec('sleep 10', { timeoutMs: 15_000 });
      await new Promise((r) => setTimeout(r, 200));
      proxy.cut();
      await expect(pending).rejects.toThrow(/lost|closed/);
      shell.close();
    } finally {
      await proxy.close();
    }
  }, T);

  test('a stalled link during the handshake is a connect timeout', async () => {
    const d1 = lab.difusor('d1');
    const proxy = await startProxy(d1);
    try {
      proxy.stall();
      const err = await rejection(connectSsh(target(d1, { host: proxy.host, port: proxy.port, connectTimeoutMs: 700 })));
      expect(err).toBeInstanceOf(SshConnectionError);
      expect((err as SshConnectionError).reason).toBe('timeout');
      expect(err.message).toContain(`${proxy.host}:${proxy.port}`);
    } finally {
      await proxy.close();
    }
  }, T);
});

describe("OpenSSH's own client against the lab", () => {
  async function sshWith(knownHostsLine: string, d: LabDifusor) {
    const file = join(lab.dir, `known_hosts_${Date.now()}_${Math.random().toString(36).slice(2)}`);
    await writeFile(file, knownHostsLine + '\n');
    const args = [
      '-F', '/dev/null',
      '-i', lab.clientKeyFile,
      '-p', String(d.port),
      '-o', 'IdentitiesOnly=yes',
      '-o', 'StrictHostKeyChecking=yes',
      '-o', 'BatchMode=yes',
      '-o', `UserKnownHostsFile=${file}`,
      '-o', 'GlobalKnownHostsFile=/dev/null',
      '-o', 'ConnectTimeout=5',
      `${d.user}@${d.host}`,
      'echo from-openssh',
    ];
    try {
      const { stdout } = await run('ssh', args);
      return { code: 0, stdout, stderr: '' };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  }

  test('connects with the pinned key in known_hosts and refuses another', async () => {
    const d1 = lab.difusor('d1');
    const d2 = lab.difusor('d2');
    const good = await sshWith(`[${d1.host}]:${d1.port} ${d1.hostKey}`, d1);
    expect(good).toMatchObject({ code: 0, stdout: 'from-openssh\n' });

    const all = await sshWith(lab.knownHosts().trim(), d1);
    expect(all).toMatchObject({ code: 0, stdout: 'from-openssh\n' });

    const bad = await sshWith(`[${d1.host}]:${d1.port} ${d2.hostKey}`, d1);
    expect(bad.code).toBe(255);
    expect(bad.stderr).toMatch(/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/);
    expect(bad.stdout).toBe('');
  }, T);
});

describe('Apache in the lab', () => {
  test('serves the release that current points to, follows a switch at once, and lists no directories', async () => {
    const base = lab.difusor('d2').path;
    for (const [cut, body] of [['20220605_2015', 'corte 20:15'], ['20220605_2030', 'corte 20:30']] as const) {
      await mkdir(join(base, 'releases', cut, 'actas'), { recursive: true });
      await writeFile(join(base, 'releases', cut, 'index.html'), `<h1>${body}</h1>\n`);
    }
    await symlink('releases/20220605_2015', join(base, 'current'));

    const apache = await startApache({ docRoot: join(base, 'current') });
    try {
      const first = await fetch(apache.url);
      expect(first.status).toBe(200);
      expect(await first.text()).toBe('<h1>corte 20:15</h1>\n');

      await symlink('releases/20220605_2030', join(base, '.current.new'));
      await rename(join(base, '.current.new'), join(base, 'current'));
      expect(await (await fetch(apache.url + 'index.html')).text()).toBe('<h1>corte 20:30</h1>\n');

      const listing = await fetch(apache.url + 'actas/');
      expect([403, 404]).toContain(listing.status);
      expect(await listing.text()).not.toMatch(/Index of/);
      expect((await fetch(apache.url + 'nope.html')).status).toBe(404);
      expect(readFileSync(apache.accessLog, 'utf8')).toMatch(/"GET \/index.html HTTP\/1.1" 200/);
    } finally {
      await apache.stop();
    }
    if (process.env.DIFUSION_LAB_KEEP !== '1') expect(existsSync(apache.dir)).toBe(false);
  }, T);
});
