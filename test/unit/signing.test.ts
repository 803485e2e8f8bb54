import { execFile } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  SigningKeyError,
  generateKeyPair,
  loadSigningKey,
  opensslVerifyCommand,
  signManifest,
  verifyManifest,
  writeKeyPair,
} from '../../src/core/publish/signing.js';

const exec = promisify(execFile);
const MANIFEST =
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  index.html\n' +
  '5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9  datos/resultados.csv\n';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'difusion-signing-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('signManifest / verifyManifest', () => {
  test('a signature verifies against its public key, not against an altered manifest or another key', () => {
    const pair = generateKeyPair();
    expect(pair.privatePem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(pair.publicPem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    const sig = signManifest(MANIFEST, createPrivateKey(pair.privatePem));
    expect(Buffer.from(sig, 'base64')).toHaveLength(64);
    expect(verifyManifest(MANIFEST, sig, createPublicKey(pair.publicPem))).toBe(true);
    expect(verifyManifest(MANIFEST, sig, pair.publicPem)).toBe(true);
    expect(verifyManifest(MANIFEST.replace('index', 'indice'), sig, pair.publicPem)).toBe(false);
    expect(verifyManifest(MANIFEST, sig, generateKeyPair().publicPem)).toBe(false);
    expect(verifyManifest(MANIFEST, 'bm90IGEgc2lnbmF0dXJl', pair.publicPem)).toBe(false);
  });
});

describe('stock OpenSSL checks our signatures', () => {
  test('openssl version supports pkeyutl -rawin (OpenSSL 3)', async () => {
    const { stdout } = await exec('openssl', ['version']);
    expect(stdout).toMatch(/^OpenSSL 3\./);
  });

  test('the exact command the README prints verifies a real signature, and rejects a tampered manifest', async () => {
    const keys = await writeKeyPair(path.join(dir, 'keys'));
    const release = path.join(dir, 'release');
    await exec('mkdir', [release]);
    await writeFile(path.join(release, 'MANIFEST.sha256'), MANIFEST);
    await writeFile(path.join(release, 'MANIFEST.sha256.sig'), signManifest(MANIFEST, await loadSigningKey(keys.privateKeyFile)));
    await exec('cp', [keys.publicKeyFile, path.join(release, 'pub.pem')]);

    const command = opensslVerifyCommand('pub.pem');
    expect(command).toBe(
      'base64 -d MANIFEST.sha256.sig > sig.bin && openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in MANIFEST.sha256 -sigfile sig.bin',
    );
    const ok = await exec('sh', ['-c', command], { cwd: release });
    expect(ok.stdout).toMatch(/Signature Verified Successfully/);

    await writeFile(path.join(release, 'MANIFEST.sha256'), MANIFEST.replace('5feceb', '6feceb'));
    const bad = await exec('sh', ['-c', command], { cwd: release }).then(
      () => ({ code: 0, out: '' }),
      (e: { code: number; stdout: string }) => ({ code: e.code, out: e.stdout }),
    );
    expect(bad.code).not.toBe(0);
    expect(bad.out).toMatch(/Signature Verification Failure/);
  });

  test('the default command names manifest.pub', () => {
    expect(opensslVerifyCommand()).toContain('-inkey manifest.pub -rawin -in MANIFEST.sha256 -sigfile sig.bin');
  });
});

describe('loadSigningKey', () => {
  test('refuses a key readable by group or others, naming the file, its mode and chmod 600, never the key', async () => {
    const { privateKeyFile } = await writeKeyPair(dir);
    const pem = await readFile(privateKeyFile, 'utf8');
    await chmod(privateKeyFile, 0o644);
    const error = await loadSigningKey(privateKeyFile).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SigningKeyError);
    const message = (error as Error).message;
    expect(message).toContain(privateKeyFile);
    expect(message).toContain('0644');
    expect(message).toContain(`chmod 600 ${privateKeyFile}`);
    const body = pem.split('\n')[1];
    expect(message).not.toContain(body);
    await chmod(privateKeyFile, 0o640);
    await expect(loadSigningKey(privateKeyFile)).rejects.toThrow(/mode 0640/);
  });

  test('loads a 0600 Ed25519 key', async () => {
    const { privateKeyFile } = await writeKeyPair(dir);
    const key = await loadSigningKey(privateKeyFile);
    expect(key.asymmetricKeyType).toBe('ed25519');
    expect(key.type).toBe('private');
  });

  test('a missing file or garbage is refused by name, without quoting the contents', async () => {
    await expect(loadSigningKey(path.join(dir, 'nope.key'))).rejects.toThrow(`signing key ${path.join(dir, 'nope.key')} cannot be read (ENOENT)`);
    const garbage = path.join(dir, 'garbage.key');
    await writeFile(garbage, 'SECRETO-NO-MOSTRAR\n', { mode: 0o600 });
    const message = await loadSigningKey(garbage).then(
      () => '',
      (e: Error) => e.message,
    );
    expect(message).toContain(garbage);
    expect(message).not.toContain('SECRETO');
  });

  test('an RSA key is refused: signatures are Ed25519 only', async () => {
    const file = path.join(dir, 'rsa.key');
    await exec('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024', '-out', file]);
    await chmod(file, 0o600);
    await expect(loadSigningKey(file)).rejects.toThrow(/rsa key; an Ed25519 key is required/);
  });
});

describe('writeKeyPair (keys generate)', () => {
  test('writes manifest.key 0600 and manifest.pub 0644, even under a permissive umask', async () => {
    const old = process.umask(0o000);
    try {
      const keys = await writeKeyPair(path.join(dir, 'new'));
      expect(keys.privateKeyFile).toBe(path.join(dir, 'new', 'manifest.key'));
      expect(keys.publicKeyFile).toBe(path.join(dir, 'new', 'manifest.pub'));
      expect((await stat(keys.privateKeyFile)).mode & 0o777).toBe(0o600);
      expect((await stat(keys.publicKeyFile)).mode & 0o777).toBe(0o644);
      const priv = createPrivateKey(await readFile(keys.privateKeyFile));
      const pub = createPublicKey(await readFile(keys.publicKeyFile));
      expect(verifyManifest(MANIFEST, signManifest(MANIFEST, priv), pub)).toBe(true);
    } finally {
      process.umask(old);
    }
  });

  test('refuses to overwrite an existing key and leaves it byte for byte', async () => {
    const first = await writeKeyPair(dir);
    const before = await readFile(first.privateKeyFile, 'utf8');
    await expect(writeKeyPair(dir)).rejects.toThrow(`${first.privateKeyFile} already exists; refusing to overwrite it`);
    expect(await readFile(first.privateKeyFile, 'utf8')).toBe(before);
  });

  test('refuses when only the private key exists (O_EXCL), without touching it', async () => {
    const file = path.join(dir, 'manifest.key');
    await writeFile(file, 'old\n', { mode: 0o600 });
    await expect(writeKeyPair(dir)).rejects.toThrow(SigningKeyError);
    expect(await readFile(file, 'utf8')).toBe('old\n');
  });
});
