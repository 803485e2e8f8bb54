/**
 * An attacker holding only the publication key, against a difusor whose admin installed the
 * restricted account exactly as `difusion onboard` prints it. Each payload is refused, and nothing
 * is written outside ROOT: the lab around ROOT and the account's home are listed before and after.
 * The exploit of issue 19 (rsync's daemon mode with an uploaded rsyncd.conf) and its variants go
 * through real sshd; the generated pass over every option of the installed `rsync --help` runs the
 * helper directly with SSH_ORIGINAL_COMMAND set, as sshd would.
 */
import { execFile, spawnSync } from 'node:child_process';
import { chmod, lstat, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startLab, type Lab, type LabDifusor } from './lab/sshd.js';
import { writeCut } from '../../bench/prep-cut.js';
import { checkLive, liveCut, publish } from './support/publish.js';
import { authorizedKeysLine } from '../../src/core/registry/onboard.js';
import { loadRegistry } from '../../src/core/registry/registry.js';

const T = 180_000;
const HELPER = path.resolve('templates/difusion-helper.sh');
const CUT = '20220605_2100_PREP_DGO';
const TOKEN = 't0k3n';
const INCOMING = `.staging/${CUT}.in-${TOKEN}/`;
const STAMP = '20220606_010000';
const HASH = 'a'.repeat(64);
/** What the helper lets through to rsync: the short letters and long options difusion's client sends. */
const WHITELIST = new Set(['-W', '-t', '-p', '-r', '-I', '-R', '-z', '-e', '--stats', '--timeout', '--new-compress', '--old-compress']);

let lab: Lab;
let d: LabDifusor;
let registry: string;
/** The attacker's own workspace, never listed: only the difusor's side is. */
let attacker: string;
/** Where every payload tries to write: beside ROOT, in the lab. */
let outside: string;
let sshArgs: string[];
let before: string[];

interface Answer {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], input?: string | Buffer, env?: NodeJS.ProcessEnv): Promise<Answer> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { env: env ?? process.env, maxBuffer: 16 * 1024 * 1024, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error && typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code) : error ? null : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input ?? '');
  });
}

/** One request through the real sshd, as SSH_ORIGINAL_COMMAND; connections share one master. */
function ssh(request: string, input?: string | Buffer): Promise<Answer> {
  return run('ssh', [...sshArgs, request], input);
}

/** The helper run as the forced command runs it, without sshd: for the generated pass. */
function direct(request: string): Answer {
  const r = spawnSync('sh', [HELPER, d.path], { input: '', encoding: 'utf8', env: { PATH: process.env.PATH, HOME: d.home, SSH_ORIGINAL_COMMAND: request }, timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every entry around ROOT (the lab) and in the account's home, ROOT itself and the lab's logs left out. */
async function listing(): Promise<string[]> {
  const out: string[] = [];
  async function walk(dir: string): Promise<void> {
    for (const name of (await readdir(dir)).sort()) {
      const p = path.join(dir, name);
      if (p === d.path || name.endsWith('.log') || name.startsWith('cm-')) continue;
      const st = await lstat(p);
      out.push(`${path.relative(lab.dir, p)} ${st.mode.toString(8)} ${st.isDirectory() ? '-' : `${st.size} ${st.mtimeMs}`}`);
      if (st.isDirectory()) await walk(p);
    }
  }
  await walk(lab.dir);
  return out;
}

/** Symlinks, setuid/setgid bits and group- or world-writable entries anywhere below ROOT. */
async function unsafeBelowRoot(): Promise<string[]> {
  const found: string[] = [];
  async function walk(dir: string): Promise<void> {
    for (const name of await readdir(dir)) {
      const p = path.join(dir, name);
      const st = await lstat(p);
      const rel = path.relative(d.path, p);
      if (st.isSymbolicLink()) {
        if (rel !== 'current') found.push(`${rel} is a symlink`);
      } else if ((st.mode & 0o6022) !== 0) found.push(`${rel} mode ${(st.mode & 0o7777).toString(8)}`);
      if (st.isDirectory()) await walk(p);
    }
  }
  await walk(d.path);
  return found;
}

beforeAll(async () => {
  lab = await startLab({ difusores: 1 });
  d = lab.difusores[0];
  outside = path.join(lab.dir, 'outside');
  await mkdir(outside);
  await mkdir(path.join(lab.dir, 'httpd'));
  await writeFile(path.join(lab.dir, 'httpd', 'access_log'), '127.0.0.1 - - [05/Jun/2022:21:00:00 -0500] "GET / HTTP/1.1" 200 1\n');
  registry = await lab.writeRegistry({ difusores: { [d.id]: { access: 'restricted', access_log: path.join(lab.dir, 'httpd', 'access*') } } });
  const loaded = await loadRegistry(registry);
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
  const difusor = loaded.registry.difusores.find((x) => x.id === d.id);
  if (!difusor) throw new Error('no lab difusor in the registry');
  // Exactly what `difusion onboard` tells the admin to install, with the helper from this tree.
  await writeFile(d.authorizedKeysFile, `${authorizedKeysLine(difusor, lab.clientPublicKey, HELPER)}\n`, { mode: 0o600 });

  attacker = await mkdtemp(path.join(os.tmpdir(), 'difusion-attacker-'));
  const knownHosts = path.join(attacker, 'known_hosts');
  await writeFile(knownHosts, lab.knownHosts());
  sshArgs = [
    '-F', '/dev/null', '-i', lab.clientKeyFile, '-p', String(d.port),
    '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'StrictHostKeyChecking=yes',
    '-o', 'ControlMaster=auto', '-o', `ControlPath=${path.join(attacker, 'cm-%C')}`, '-o', 'ControlPersist=120',
    `${d.user}@${d.host}`,
  ];

  // A live cut, published through the restricted account, for the verbs that act on one.
  const cuts = path.join(attacker, 'cuts');
  await writeCut(path.join(cuts, CUT), CUT, { casillas: 10, counted: 4, imageBytes: 1000, seed: 'attack' });
  const result = await publish(registry, path.join(cuts, CUT));
  expect(result.outcomes.map((o) => [o.result, o.error])).toEqual([['live', undefined]]);
  before = await listing();
}, T);

afterAll(async () => {
  if (sshArgs) await run('ssh', [...sshArgs.slice(0, -1), '-O', 'exit', sshArgs[sshArgs.length - 1] as string]);
  await lab?.stop();
  if (attacker) await rm(attacker, { recursive: true, force: true });
}, T);

describe('issue 19: rsync daemon mode through the forced command', () => {
  let wrapper: string;
  beforeAll(async () => {
    // Step 1 of the exploit is allowed, as any upload into this run's incoming directory is: a file in staging.
    const conf = path.join(attacker, 'rsyncd.conf');
    await writeFile(conf, `use chroot = no\nuid = root\ngid = root\n[all]\npath = ${outside}\nread only = no\n`);
    const up = await run('rsync', ['-e', ['ssh', ...sshArgs.slice(0, -1)].join(' '), conf, `${sshArgs[sshArgs.length - 1]}:${INCOMING}`]);
    expect(up).toMatchObject({ code: 0 });
    expect(existsSync(path.join(d.path, INCOMING, 'rsyncd.conf'))).toBe(true);
    // The remote shell rsync runs for host::module; it asks the forced command for whatever $EVIL says.
    wrapper = path.join(attacker, 'evil-ssh');
    await writeFile(wrapper, `#!/bin/sh\nexec ssh ${sshArgs.map((a) => `'${a}'`).join(' ')} "$EVIL"\n`);
    await chmod(wrapper, 0o755);
    await writeFile(path.join(attacker, 'payload'), 'ssh-ed25519 AAAA attacker\n');
  }, T);

  const config = `.staging/${CUT}.in-${TOKEN}/rsyncd.conf`;
  test.each([
    ['--config=FILE (the report)', `rsync --server --daemon --config=${config} ${INCOMING}`, 'refused: rsync --daemon: daemon mode never runs'],
    ['--config FILE as two words', `rsync --server --daemon --config ${config} .`, 'refused: rsync --daemon: daemon mode never runs'],
    ['--config before --daemon', `rsync --server --config ${config} --daemon .`, `refused: rsync --config ${config}: daemon mode never runs`],
    ['--dparam', `rsync --server --dparam=path=/ --daemon .`, 'refused: rsync --dparam=path='],
    ['daemon options after the path', `rsync --server -WtprIe.iLsfxCIvu . ${INCOMING} --daemon --config=${config}`, "exactly one destination follows '.'"],
    ['-M in a cluster', `rsync --server -WtprIMe.iLsfxCIvu . ${INCOMING}`, 'refused: rsync -WtprIMe.iLsfxCIvu: -M passes options on unchecked'],
  ])('%s is refused by name and writes nothing outside ROOT', async (_what, request, refusal) => {
    const r = await run('rsync', ['-e', wrapper, path.join(attacker, 'payload'), `${d.host}::all/`], undefined, { ...process.env, EVIL: request });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('difusion-helper: ');
    expect(r.stderr).toContain(refusal);
    expect(await readdir(outside)).toEqual([]);
  }, T);
});

describe('hostile rsync requests through sshd', () => {
  test.each([
    ['--sender reading /etc', 'rsync --server --sender -WtprIe.iLsfxCIvu . /etc/', 'refused: rsync --sender'],
    ['--files-from a file', `rsync --server --files-from=/etc/passwd --from0 -WtprIRe.iLsfxCIvu . ${INCOMING}`, 'refused: rsync --files-from=/etc/passwd'],
    ['--files-from as two words', `rsync --server --files-from /etc/passwd . ${INCOMING}`, 'refused: rsync --files-from'],
    ['--chmod with setuid bits', `rsync --server --chmod=u+s,a+rwx -WtprIe.iLsfxCIvu . ${INCOMING}`, 'refused: rsync --chmod=u+s,a+rwx'],
    ['--chmod even with the client\'s own value', `rsync --server --chmod=D755,F644 -WtprIe.iLsfxCIvu . ${INCOMING}`, 'refused: rsync --chmod=D755,F644'],
    ['--chown', `rsync --server --chown=root:root -WtprIe.iLsfxCIvu . ${INCOMING}`, 'refused: rsync --chown=root:root'],
    ['owner and group preservation', `rsync --server -WtprIoge.iLsfxCIvu . ${INCOMING}`, 'refused: rsync -WtprIoge.iLsfxCIvu'],
    ['device preservation', `rsync --server -WtprIDe.iLsfxCIvu . ${INCOMING}`, 'refused: rsync -WtprIDe.iLsfxCIvu'],
    ['--devices, --specials', `rsync --server --devices --specials . ${INCOMING}`, 'refused: rsync --devices'],
    ['--iconv', `rsync --server -WtprIe.iLsfxCIvu --iconv=UTF-8 . ${INCOMING}`, 'refused: rsync --iconv=UTF-8'],
    ['symlinks made in staging', `rsync --server -WtprlIe.iLsfxCIvu . ${INCOMING}`, 'refused: rsync -WtprlIe.iLsfxCIvu'],
    ['a temp dir outside', `rsync --server -WtprIe.iLsfxCIvu --temp-dir=OUTSIDE . ${INCOMING}`, `refused: rsync --temp-dir=OUTSIDE`],
    ['a log file outside', `rsync --server --log-file=OUTSIDE/log . ${INCOMING}`, `refused: rsync --log-file=OUTSIDE/log`],
    ['a batch file outside', `rsync --server --write-batch=OUTSIDE/b . ${INCOMING}`, `refused: rsync --write-batch=OUTSIDE/b`],
    ['--link-dest outside', `rsync --server --link-dest=OUTSIDE . ${INCOMING}`, `refused: rsync --link-dest=OUTSIDE`],
    ['--backup-dir outside', `rsync --server -b --backup-dir OUTSIDE . ${INCOMING}`, 'refused: rsync -b'],
    ['a path climbing out of staging', `rsync --server -WtprIe.iLsfxCIvu . .staging/${CUT}/../../../outside/`, `not a cut id: ${CUT}/../../../outside`],
    ['a path climbing out of the incoming name', `rsync --server -WtprIe.iLsfxCIvu . .staging/../../outside.in-${TOKEN}/`, 'not a cut id: ../../outside'],
    ['an absolute destination', `rsync --server -WtprIe.iLsfxCIvu . OUTSIDE/`, `refused: rsync into OUTSIDE/`],
    ['a second destination', `rsync --server -WtprIe.iLsfxCIvu . ${INCOMING} OUTSIDE/`, "exactly one destination follows '.'"],
    ['a source other than .', `rsync --server -WtprIe.iLsfxCIvu OUTSIDE ${INCOMING}`, "the receiving end's first argument is always '.'"],
    ['an empty capability string swallowing the next word', `rsync --server -WtprIe . ${INCOMING}`, "not the protocol's capability string after 'e'"],
    ['protected args hiding the rest', `rsync --server -sWtprIe.iLsfxCIvu . ${INCOMING}`, 'refused: rsync -sWtprIe.iLsfxCIvu'],
    ['--server twice', `rsync --server --server --sender . ${INCOMING}`, 'refused: rsync --server'],
    ['the end of options', `rsync --server -- --daemon ${INCOMING}`, 'refused: rsync --'],
  ])('%s', async (_what, template, refusal) => {
    const r = await ssh(template.replace(/OUTSIDE/g, outside));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^difusion-helper: /);
    expect(r.stderr).toContain(refusal.replace(/OUTSIDE/g, outside));
    expect(r.stdout).toBe('');
  }, T);

  test('the client\'s own upload lands, without symlinks, setuid bits or group- and world-writable modes', async () => {
    const src = path.join(attacker, 'hostile-src');
    await mkdir(path.join(src, 'd'), { recursive: true });
    await writeFile(path.join(src, 'suid'), 'x');
    await chmod(path.join(src, 'suid'), 0o6777);
    await chmod(path.join(src, 'd'), 0o777);
    await writeFile(path.join(src, 'd', 'f'), 'y');
    await chmod(path.join(src, 'd', 'f'), 0o666);
    await symlink(outside, path.join(src, 'out'));
    const rsh = ['ssh', ...sshArgs.slice(0, -1)].join(' ');
    const dest = `${sshArgs[sshArgs.length - 1]}:${INCOMING}`;
    // -p keeps modes, and the symlink is a non-regular file the receiver skips: the whitelist lets this through.
    const sent = await run('rsync', ['-e', rsh, '-rtpWI', `${src}/`, dest]);
    expect(sent).toMatchObject({ code: 0, stderr: '' });
    expect(existsSync(path.join(d.path, INCOMING, 'out'))).toBe(false);
    // -l asks for the symlink itself: refused.
    const links = await run('rsync', ['-e', rsh, '-rtplWI', `${src}/`, dest]);
    expect(links.code).not.toBe(0);
    expect(links.stderr).toMatch(/difusion-helper: refused: rsync -/);
    expect(existsSync(path.join(d.path, INCOMING, 'suid'))).toBe(true);
    expect(await unsafeBelowRoot()).toEqual([]);
  }, T);
});

describe('every other verb with hostile arguments', () => {
  test('each is refused, and the live cut keeps serving', async () => {
    const log = (p: string): string => p.replace(/\*/g, '=2A');
    const pinned = log(path.join(lab.dir, 'httpd', 'access*'));
    const cases: Array<[string, string, RegExp]> = [
      ['status extra', '', /refused: status takes at most 0 arguments, not: extra/],
      ['throughput extra', '', /refused: throughput takes at most 0 arguments/],
      [`prepare ${CUT} --stage --incoming ../x`, '', /not an incoming token: \.\.\/x/],
      [`prepare ${CUT} --stage --incoming ${TOKEN} extra`, '', /refused: prepare takes at most 4 arguments/],
      ['inspect ../../etc', '', /not a cut id: \.\.\/\.\.\/etc/],
      [`inspect ${CUT} --stage`, '', /refused: inspect --stage/],
      [`link ${CUT} ../../etc`, '', /not a cut id: \.\.\/\.\.\/etc/],
      [`link ${CUT} - extra`, '', /refused: link takes at most 2 arguments/],
      [`verify ${CUT} --incoming ${TOKEN} extra`, '', /refused: verify takes at most 3 arguments/],
      [`audit ${CUT}`, `${HASH}  /etc/shadow\n`, /refused check line: a+ {2}\/etc\/shadow/],
      [`audit ${CUT}`, `${HASH}  ../../../../etc/passwd\n`, /refused check line: a+ {2}\.\.\/\.\.\/\.\.\/\.\.\/etc\/passwd/],
      [`audit ${CUT}`, `${HASH}  a/../../../../etc/passwd\n`, /refused check line/],
      [`audit ${CUT}`, `${HASH} */etc/passwd\n`, /refused check line/],
      [`audit ${CUT} extra`, '', /refused: audit takes at most 1 arguments/],
      [`promote ${CUT}`, 'M ../../../outside/x\n', /refused path: \.\.\/\.\.\/\.\.\/outside\/x/],
      [`promote ${CUT} extra`, '', /refused: promote takes at most 1 arguments/],
      ['switch ../outside', '', /not a cut id: \.\.\/outside/],
      [`switch ${CUT} --force`, '', /refused: switch .* --force/],
      [`notice-put ${STAMP} ../../x`, 'x', /refused: notice-put \.\.\/\.\.\/x/],
      [`notice-put ${STAMP} index.html extra`, 'x', /refused: notice-put takes at most 2 arguments/],
      [`notice-switch ${STAMP} extra`, '', /refused: notice-switch takes at most 1 arguments/],
      ['prune 99999999999999999999', '', /keep is too large/],
      ['prune 1 extra', '', /refused: prune takes at most 1 arguments/],
      ['discard ../x', '', /not a cut id: \.\.\/x/],
      [`logs list ${log('/etc/*')}`, '', /is not the access log this account pins/],
      [`logs send ${pinned} /etc/passwd 0`, '', /refused: \/etc\/passwd is not one of the logs/],
      [`logs send ${pinned} ${path.join(lab.dir, 'httpd', 'access_log')} 0 extra`, '', /refused: logs takes at most 4 arguments/],
      [`logs sum ${pinned} ${path.join(lab.dir, 'httpd', 'access_log')} 0 99999999999999999999`, '', /length is too large/],
      ['sh -c id', '', /refused: unknown verb sh/],
    ];
    // A staging for the live cut (a repair's), so that promote reads its lines.
    expect(await ssh(`link ${CUT} -`)).toMatchObject({ code: 0 });
    for (const [request, input, refusal] of cases) {
      const r = await ssh(request, input);
      expect({ request, code: r.code, refused: refusal.test(r.stderr) ? 'yes' : r.stderr }).toEqual({ request, code: 2, refused: 'yes' });
    }
    // A notice whose manifest names a file outside: sha256sum never opens it.
    for (const name of ['index.html', 'aviso.json']) expect((await ssh(`notice-put ${STAMP} ${name}`, 'x')).code).toBe(0);
    expect((await ssh(`notice-put ${STAMP} MANIFEST.sha256`, `${HASH}  /etc/passwd\n`)).code).toBe(0);
    const sw = await ssh(`notice-switch ${STAMP}`);
    expect(sw.code).toBe(2);
    expect(sw.stderr).toMatch(/refused check line: a+ {2}\/etc\/passwd/);
    expect(await ssh(`discard ${CUT}`)).toMatchObject({ code: 0 });
    expect(await liveCut(d.path)).toBe(`releases/${CUT}`);
    expect(await checkLive(d.path)).toEqual({ ok: true, output: '' });
  }, T);

  test('throughput takes what preflight sends, and no byte more than 64 MiB', async () => {
    expect(await ssh('throughput', 'x'.repeat(1000))).toMatchObject({ code: 0, stdout: 'received 1000\n' });
    const over = await ssh('throughput', Buffer.alloc(64 * 1024 * 1024 + 1, 120));
    expect(over.code).toBe(2);
    expect(over.stderr).toContain('refused: throughput takes at most 67108864 bytes');
    expect(await readdir(path.join(d.path, '.staging'))).not.toContainEqual(expect.stringMatching(/^\.throughput/));
  }, T);
});

/** Every option the installed rsync lists, long and short, with whether it takes a value. */
function rsyncHelpOptions(): Array<{ option: string; value: boolean }> {
  const help = spawnSync('rsync', ['--help'], { encoding: 'utf8' }).stdout;
  const found = new Map<string, boolean>();
  for (const line of help.split('\n')) {
    const head = /^\s*(-\S.*?)(?:\s{2,}|$)/.exec(line)?.[1];
    if (!head) continue;
    const takesValue = /=|\s[A-Z]+\b/.test(head);
    for (const m of head.matchAll(/(?:^|[\s,])(--[a-zA-Z0-9][\w-]*|-[a-zA-Z0-9@])(?=[\s,=]|$)/g)) found.set(m[1] as string, takesValue);
  }
  return [...found].map(([option, value]) => ({ option, value }));
}

describe('the generated pass over every option of the installed rsync --help', () => {
  test('each option is refused unless on the whitelist, and nothing is written outside ROOT', () => {
    const options = rsyncHelpOptions();
    expect(options.length).toBeGreaterThan(100);
    const value = path.join(outside, 'v');
    const accepted = new Set<string>();
    let payloads = 0;
    for (const { option, value: takesValue } of options) {
      const forms = option.startsWith('--')
        ? [option, `${option}=${value}`, `${option} ${value}`, ...(takesValue ? [] : [`${option}=1`])]
        : [option, `${option}${value}`, `-WtprI${option.slice(1)}e.iLsfxCIvu`, `${option} ${value}`];
      for (const form of forms) {
        payloads++;
        const r = direct(`rsync --server ${form} . ${INCOMING}`);
        if (!r.stderr.startsWith('difusion-helper: ')) accepted.add(option);
        else expect(r.code).toBe(2);
      }
    }
    // Options after the destination, each one.
    for (const { option } of options) {
      payloads++;
      expect(direct(`rsync --server -WtprIe.iLsfxCIvu . ${INCOMING} ${option}`).stderr).toMatch(/^difusion-helper: refused: (rsync .*exactly one destination follows '.'|not a difusion request)/);
    }
    // The client's own forms, each version's: accepted.
    for (const request of [
      `rsync --server -WtprIRe.iLsfxCIvu --timeout=30 --stats . ${INCOMING}`,
      `rsync --server -WtprIze.iLsfxC --timeout=30 --stats . ${INCOMING}`,
      `rsync --server -WtprIRze.iLsfxCIvu --timeout=600 --stats --new-compress . ${INCOMING}`,
      `rsync --server -WtprIze.iLsfxCIvu --timeout=600 --old-compress . ${INCOMING}`,
    ]) {
      payloads++;
      expect(direct(request).stderr).not.toContain('difusion-helper');
    }
    const notWhitelisted = [...accepted].filter((o) => !WHITELIST.has(o));
    console.log(`generated pass: ${options.length} options of rsync --help, ${payloads} payloads; accepted in some form: ${[...accepted].sort().join(' ')}`);
    expect(notWhitelisted).toEqual([]);
  }, T);

  test('the lab around ROOT and the account\'s home are as before every attack', async () => {
    expect(await listing()).toEqual(before);
    expect(await readdir(outside)).toEqual([]);
    expect(await unsafeBelowRoot()).toEqual([]);
  }, T);
});
