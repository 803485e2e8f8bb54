import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startLab, type Lab, type LabDifusor } from './lab/sshd.js';
import { writeCut } from '../../bench/prep-cut.js';
import { checkLive, liveCut, publish } from './support/publish.js';
import { connectSsh, type RemoteShell } from '../../src/adapters/ssh.js';
import { writeKeyPair } from '../../src/core/publish/signing.js';
import { StateStore } from '../../src/core/records/state.js';
import { runCli } from './support/cli.js';

const exec = promisify(execFile);
const T = 120_000;
const SHAPE = { casillas: 40, counted: 12, imageBytes: 4000, seed: 'restricted' };
const CUT_A = '20220605_2015_PREP_DGO';
const CUT_B = '20220605_2030_PREP_DGO';
const CUT_C = '20220605_2045_PREP_DGO';
const HELPER = path.resolve('templates/difusion-helper.sh');

let lab: Lab;
let d: LabDifusor;
let cuts: string;
let registry: string;

beforeAll(async () => {
  lab = await startLab({ difusores: 1 });
  d = lab.difusores[0];
  // What `difusion onboard` tells the admin to install, with the helper from this tree.
  await writeFile(d.authorizedKeysFile, `restrict,command="sh ${HELPER} ${d.path}" ${lab.clientPublicKey}\n`, { mode: 0o600 });
  registry = await lab.writeRegistry({ difusores: { [d.id]: { access: 'restricted' } } });
  cuts = await mkdtemp(path.join(os.tmpdir(), 'difusion-restricted-cuts-'));
  await writeCut(path.join(cuts, CUT_A), CUT_A, SHAPE);
  await writeCut(path.join(cuts, CUT_B), CUT_B, { ...SHAPE, counted: 18 }, path.join(cuts, CUT_A));
  await writeCut(path.join(cuts, CUT_C), CUT_C, { ...SHAPE, counted: 24 }, path.join(cuts, CUT_B));
}, T);

afterAll(async () => {
  await lab?.stop();
  if (cuts) await rm(cuts, { recursive: true, force: true });
}, T);

async function shell(): Promise<RemoteShell> {
  return connectSsh({ host: d.host, port: d.port, user: d.user, hostKey: d.hostKey, privateKey: lab.clientKey, connectTimeoutMs: 5000 });
}

describe('a restricted account (authorized_keys command= pinning the helper)', () => {
  test('a cut goes live through the helper alone and passes sha256sum -c', async () => {
    const result = await publish(registry, path.join(cuts, CUT_A));
    expect(result.outcomes.map((o) => [o.id, o.result, o.error])).toEqual([[d.id, 'live', undefined]]);
    expect(await liveCut(d.path)).toBe(`releases/${CUT_A}`);
    expect(await checkLive(d.path)).toEqual({ ok: true, output: '' });
  }, T);

  test('the next cut switches, sharing unchanged files', async () => {
    const result = await publish(registry, path.join(cuts, CUT_B));
    expect(result.exitCode).toBe(0);
    expect(result.outcomes[0]).toMatchObject({ result: 'live' });
    expect(result.outcomes[0].filesLinked).toBeGreaterThan(0);
    expect(await liveCut(d.path)).toBe(`releases/${CUT_B}`);
    expect(await checkLive(d.path)).toEqual({ ok: true, output: '' });
  }, T);

  describe('the same key can do nothing else', () => {
    let sh: RemoteShell;
    beforeAll(async () => {
      sh = await shell();
    }, T);
    afterAll(() => sh?.close());

    test('cat /etc/shadow is refused, and no shadow line comes back', async () => {
      const r = await sh.exec('cat /etc/shadow', { timeoutMs: 10_000 });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/difusion-helper: refused: unknown verb cat/);
      expect(r.stdout).toBe('');
      expect(r.stderr).not.toMatch(/root:/);
    }, T);

    test('shell syntax never reaches a shell', async () => {
      const r = await sh.exec('status; cat /etc/shadow', { timeoutMs: 10_000 });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/refused: not a difusion request/);
      expect(r.stdout).not.toMatch(/root:/);
    }, T);

    test('rsync as sender (reading /etc/) is refused', async () => {
      const r = await sh.exec('rsync --server --sender -logDtpre.iLsfxC . /etc/', { timeoutMs: 10_000 });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/refused: rsync --sender/);
    }, T);

    test('rsync into anywhere but staging is refused', async () => {
      const r = await sh.exec('rsync --server -WtprIRe.iLsfxCIvu . /tmp/elsewhere/', { timeoutMs: 10_000 });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/refused: rsync into \/tmp\/elsewhere\//);
      expect(existsSync('/tmp/elsewhere')).toBe(false);
    }, T);

    test('rsync that would make symlinks in staging, follow them, or keep temp files elsewhere is refused', async () => {
      for (const [args, refused] of [
        ['-rlte.iLsfxCIvu', '-rlte.iLsfxCIvu'],
        ['-rKte.iLsfxCIvu', '-rKte.iLsfxCIvu'],
        ['-rte.iLsfxCIvu -T /tmp', '-T'],
      ]) {
        const r = await sh.exec(`rsync --server ${args} . .staging/20220605_2015_PREP_DGO/`, { timeoutMs: 10_000 });
        expect({ code: r.code, stderr: r.stderr.trim() }).toEqual({ code: 2, stderr: `difusion-helper: refused: rsync ${refused}` });
      }
    }, T);

    test('path escapes in cut ids and in link paths are refused', async () => {
      const asCut = await sh.exec('link ../../etc', { timeoutMs: 10_000 });
      expect(asCut.code).not.toBe(0);
      expect(asCut.stderr).toMatch(/not a cut id: \.\.\/\.\.\/etc/);
      const asBase = await sh.exec(`link ${CUT_C} ../../etc`, { timeoutMs: 10_000 });
      expect(asBase.code).not.toBe(0);
      expect(asBase.stderr).toMatch(/not a cut id: \.\.\/\.\.\/etc/);
      await sh.exec(`prepare ${CUT_C}`, { timeoutMs: 10_000 });
      const inStdin = await sh.exec(`link ${CUT_C} -`, { stdin: '../../../etc/passwd\n', timeoutMs: 10_000 });
      expect(inStdin.code).not.toBe(0);
      expect(inStdin.stderr).toMatch(/refused path: \.\.\/\.\.\/\.\.\/etc\/passwd/);
      // The manifest travels with link; there is no verb to write a file by name.
      const put = await sh.exec(`put ${CUT_C} ../../x`, { stdin: 'x', timeoutMs: 10_000 });
      expect(put.code).not.toBe(0);
      expect(put.stderr).toMatch(/refused: unknown verb put/);
      // The live cut is untouched by all of it.
      expect(await liveCut(d.path)).toBe(`releases/${CUT_B}`);
      expect(await checkLive(d.path)).toEqual({ ok: true, output: '' });
    }, T);
  });

  test('with signing_key, the release carries MANIFEST.sha256.sig that stock OpenSSL verifies', async () => {
    const keys = await writeKeyPair(path.join(lab.dir, 'keys'));
    const signed = await lab.writeRegistry(
      { publication: { signing_key: keys.privateKeyFile }, difusores: { [d.id]: { access: 'restricted' } } },
      path.join(lab.dir, 'signed.yaml'),
    );
    const result = await publish(signed, path.join(cuts, CUT_C));
    expect(result.outcomes[0]).toMatchObject({ result: 'live' });
    const release = path.join(d.path, 'releases', CUT_C);
    expect(existsSync(path.join(release, 'MANIFEST.sha256.sig'))).toBe(true);
    expect(await checkLive(d.path)).toEqual({ ok: true, output: '' });

    const check = await mkdtemp(path.join(os.tmpdir(), 'difusion-sigcheck-'));
    try {
      for (const f of ['MANIFEST.sha256', 'MANIFEST.sha256.sig']) await copyFile(path.join(release, f), path.join(check, f));
      await copyFile(keys.publicKeyFile, path.join(check, 'pub.pem'));
      const command =
        'base64 -d MANIFEST.sha256.sig > sig.bin && openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in MANIFEST.sha256 -sigfile sig.bin';
      const { stdout } = await exec('sh', ['-c', command], { cwd: check });
      expect(stdout).toMatch(/Signature Verified Successfully/);
      // The state dir keeps the same signature beside its copy of the manifest.
      const kept = `${new StateStore(lab.stateDir).manifestFile(CUT_C)}.sig`;
      expect(await readFile(kept, 'utf8')).toBe(await readFile(path.join(release, 'MANIFEST.sha256.sig'), 'utf8'));
    } finally {
      await rm(check, { recursive: true, force: true });
    }
  }, T);

  test('a difusor holding the institute\'s public key goes live only on a manifest that key signed', async () => {
    const trusted = await writeKeyPair(path.join(lab.dir, 'trusted'));
    const impostor = await writeKeyPair(path.join(lab.dir, 'impostor'));
    await exec('mkdir', ['-p', path.join(d.path, '.difusion')]);
    await copyFile(trusted.publicKeyFile, path.join(d.path, '.difusion', 'manifest.pub'));
    const cutD = '20220605_2100_PREP_DGO';
    const cutE = '20220605_2115_PREP_DGO';
    await writeCut(path.join(cuts, cutD), cutD, { ...SHAPE, counted: 30 }, path.join(cuts, CUT_C));
    await writeCut(path.join(cuts, cutE), cutE, { ...SHAPE, counted: 36 }, path.join(cuts, cutD));
    const registryWith = (key: string, name: string): Promise<string> =>
      lab.writeRegistry({ publication: { signing_key: key }, difusores: { [d.id]: { access: 'restricted' } } }, path.join(lab.dir, name));
    try {
      const good = await publish(await registryWith(trusted.privateKeyFile, 'trusted.yaml'), path.join(cuts, cutD));
      expect(good.outcomes[0]).toMatchObject({ result: 'live', signatureCheck: 'ok' });

      const bad = await publish(await registryWith(impostor.privateKeyFile, 'impostor.yaml'), path.join(cuts, cutE));
      expect(bad.outcomes[0]).toMatchObject({ result: 'failed', failedPhase: 'verifying' });
      expect(bad.outcomes[0].error).toMatch(/signature.*bad|says bad/);
      expect(await liveCut(d.path)).toBe(`releases/${cutD}`);

      const unsigned = await publish(registry, path.join(cuts, cutE));
      expect(unsigned.outcomes[0]).toMatchObject({ result: 'failed', failedPhase: 'verifying' });
      expect(unsigned.outcomes[0].error).toMatch(/missing/);
      expect(await liveCut(d.path)).toBe(`releases/${cutD}`);
    } finally {
      await rm(path.join(d.path, '.difusion'), { recursive: true, force: true });
    }
  }, T);

  test('a signing key others can read refuses the run before anything is sent (exit 2)', async () => {
    const liveBefore = await liveCut(d.path);
    const dir = await mkdtemp(path.join(lab.dir, 'loose-'));
    const keys = await writeKeyPair(dir);
    await exec('chmod', ['644', keys.privateKeyFile]);
    const loose = await lab.writeRegistry(
      { publication: { signing_key: keys.privateKeyFile }, difusores: { [d.id]: { access: 'restricted' } } },
      path.join(lab.dir, 'loose.yaml'),
    );
    const error = await publish(loose, path.join(cuts, CUT_A)).then(
      () => undefined,
      (e: { message: string; exitCode?: number }) => e,
    );
    expect(error?.exitCode).toBe(2);
    expect(error?.message).toContain(`chmod 600 ${keys.privateKeyFile}`);
    expect(await liveCut(d.path)).toBe(liveBefore);
  }, T);
});

test('an installed helper older than the client: preflight names it, a publish fails there and keeps the live cut', async () => {
  // The helper as installed before this client's protocol: no HELPER_PROTOCOL, and link without the manifest.
  const current = await readFile(HELPER, 'utf8');
  const older = path.join(lab.dir, 'difusion-helper-old.sh');
  await writeFile(older, current.replace(/^HELPER_PROTOCOL=\d+\n/m, '').replace(/^\techo "protocol \$HELPER_PROTOCOL"\n/m, '').replace('\tdrop=".staging/.drop.$cut"', '\tif grep -q "^/" /dev/stdin; then die "refused path: /MANIFEST.sha256"; fi\n\tdrop=".staging/.drop.$cut"'));
  await writeFile(d.authorizedKeysFile, `restrict,command="sh ${older} ${d.path}" ${lab.clientPublicKey}\n`, { mode: 0o600 });
  try {
    const live = await liveCut(d.path);
    const pre = await runCli(['preflight', '--registry', registry, '--json']);
    expect(pre.code).toBe(3);
    const row = JSON.parse(pre.stdout).difusores[0];
    expect(row.checks.find((c: { name: string }) => c.name === 'helper')).toEqual({
      name: 'helper',
      ok: false,
      detail: expect.stringMatching(/^the installed helper speaks protocol 1, this difusion needs \d+: the difusor's admin reinstalls it \(difusion onboard d1 prints it\)/),
    });
    // A cut the difusor holds with other content, so the publish repairs it through link.
    const next = '20220605_2100_PREP_DGO';
    await writeCut(path.join(cuts, next), next, { ...SHAPE, counted: 30 }, path.join(cuts, CUT_C));
    const run = await publish(registry, path.join(cuts, next));
    expect(run.outcomes[0]).toMatchObject({ result: 'failed', failedPhase: 'linking', error: expect.stringContaining('refused path: /MANIFEST.sha256') });
    // And the failure says where the fix is.
    expect(run.outcomes[0]?.error).toContain('the helper installed there may be older than this difusion: `difusion preflight` checks it; `difusion onboard d1`');
    expect(await liveCut(d.path)).toBe(live);
    expect(await checkLive(d.path)).toEqual({ ok: true, output: '' });
  } finally {
    await writeFile(d.authorizedKeysFile, `restrict,command="sh ${HELPER} ${d.path}" ${lab.clientPublicKey}\n`, { mode: 0o600 });
  }
}, T);
